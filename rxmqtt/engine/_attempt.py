"""One connection attempt as an Observable: it emits ``Connected`` on CONNACK success, then errors
with :class:`AttemptEnded` when the attempt fails or the link it made is lost."""

from __future__ import annotations

from dataclasses import dataclass, field

from reactivex import abc

from ..lifecycle import Connected, Disconnect


class AttemptEnded(Exception):
    """How an attempt observable ends: the attempt failed (``was_connected`` False) or the link
    it made was lost (True); ``disconnect`` says why."""

    def __init__(self, disconnect: Disconnect, *, was_connected: bool) -> None:
        super().__init__(str(disconnect))
        self.disconnect = disconnect
        self.was_connected = was_connected


@dataclass(eq=False)
class AttemptWatcher:
    """One subscriber of the attempt under way; ``disposed`` once it unsubscribed (a late end is
    then delivered to nobody)."""

    observer: abc.ObserverBase[Connected]
    disposed: bool = field(default=False)

    def connected(self, event: Connected) -> None:
        if not self.disposed:
            self.observer.on_next(event)

    def ended(self, error: AttemptEnded) -> None:
        if not self.disposed:
            self.disposed = True
            self.observer.on_error(error)
