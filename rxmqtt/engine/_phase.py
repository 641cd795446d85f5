"""The engine's life as a table: its phases and the transitions allowed between them (h11's way).

One attempt goes ``IDLE -> OPENING`` (socket and TLS) ``-> AWAITING_CONNACK`` (CONNECT sent)
``-> CONNECTED``, and from any of them back to ``IDLE`` when it fails, is lost or is closed.
Anything else is a bug in the engine, reported as such instead of leaving it half-way.
"""

from __future__ import annotations

import enum


class Phase(enum.Enum):
    """Where the engine is in one attempt's life."""

    IDLE = "idle"
    """No attempt: never opened, or the last one failed, was lost or was closed."""
    OPENING = "opening"
    """Opening the socket (TCP connect, TLS handshake); paho has not seen it yet."""
    AWAITING_CONNACK = "awaiting CONNACK"
    """paho has the socket and sent CONNECT; the broker's answer is due."""
    CONNECTED = "connected"
    """A CONNACK accepted the attempt and the link has not been lost since."""


TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.IDLE: frozenset({Phase.OPENING}),
    Phase.OPENING: frozenset({Phase.AWAITING_CONNACK, Phase.IDLE}),
    Phase.AWAITING_CONNACK: frozenset({Phase.CONNECTED, Phase.IDLE}),
    Phase.CONNECTED: frozenset({Phase.IDLE}),
}
"""Every allowed change of phase; the engine moves only along these."""


class PhaseError(RuntimeError):
    """The engine was asked to move along a transition the table does not allow (a bug)."""


def checked(current: Phase, new: Phase) -> Phase:
    """``new``, after checking the table allows ``current -> new``.

    >>> checked(Phase.IDLE, Phase.OPENING)
    <Phase.OPENING: 'opening'>
    >>> checked(Phase.IDLE, Phase.CONNECTED)
    Traceback (most recent call last):
    ...
    rxmqtt.engine._phase.PhaseError: engine: idle -> connected is not a transition
    """
    if new not in TRANSITIONS[current]:
        raise PhaseError(f"engine: {current.value} -> {new.value} is not a transition")
    return new
