"""rxmqtt's test suite.

A regular package, so an installed top-level ``tests`` package (gmqtt 0.8 ships one with the
``bench`` extra) cannot shadow it.
"""
