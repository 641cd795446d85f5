"""Chaos tests: real Mosquitto, FaultProxies and a seeded random fault schedule.

``test_chaos.py`` is the long-running "nothing lost under fire" run (``RXMQTT_CHAOS_SECONDS``,
``RXMQTT_CHAOS_SEED``; ``nox -s soak -- --minutes N`` runs it longer); ``test_ordering.py``
holds deterministic reproductions of what the chaos run can only find by chance.
"""
