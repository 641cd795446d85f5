"""Re-authentication of a live connection: on the application's demand
(``Connection.reauthenticate()``) and on its authenticator's requests (a rotated token), each
success reported on ``lifecycle`` as :class:`Reauthenticated`."""

from __future__ import annotations

import logging
from collections.abc import Callable

from reactivex import abc

from .._outcome import Outcome, settle_error, settle_value
from ..engine import Engine
from ..errors import ConnectionClosedError, NotStartedError
from ..lifecycle import LifecycleEvent, Reauthenticated
from ..settings import Authenticator

log = logging.getLogger("rxmqtt.connection")


class Reauthentication:
    """Starts re-authentications on the engine and reports how each ended."""

    def __init__(
        self, authenticator: Authenticator | None, emit: Callable[[LifecycleEvent], None]
    ) -> None:
        self.authenticator = authenticator
        self._emit = emit
        self._engine: Engine | None = None
        self._closed = False
        self._requests: abc.DisposableBase | None = None
        """The authenticator's requests followed (none without an authenticator)."""
        self._waiting: dict[Outcome[int], Outcome[Reauthenticated]] = {}
        """Each exchange's outcome (the engine's) and the one handed to the application."""

    def start(self, engine: Engine, scheduler: abc.SchedulerBase) -> None:
        """Follow the authenticator's requests from now on, on ``scheduler``."""
        self._engine = engine
        if self.authenticator is not None:
            self._requests = self.authenticator.reauthentication_requests(scheduler).subscribe(
                lambda _: self._requested(),
                self._requests_failed,
            )

    def stop(self) -> None:
        """The connection closes: no more requests (the engine fails what is under way)."""
        self._closed = True
        if self._requests is not None:
            self._requests.dispose()

    def reauthenticate(self, result: Outcome[Reauthenticated]) -> None:
        """Settle ``result`` with the next re-authentication's end (on the loop)."""
        if self._closed:
            settle_error(result, ConnectionClosedError("reauthenticate: the connection is closed"))
            return
        if self._engine is None:
            settle_error(result, NotStartedError("reauthenticate: start() the connection first"))
            return
        self._follow(self._engine.reauthenticate()).subscribe(
            lambda event: settle_value(result, event), lambda error: settle_error(result, error)
        )

    def _requested(self) -> None:
        engine = self._engine
        if engine is None or self._closed or not engine.link_up:
            return  # the next CONNECT carries fresh data
        log.info("the authenticator asks to re-authenticate")
        self._follow(engine.reauthenticate()).subscribe(
            lambda _: None, lambda error: log.warning("%s", error)
        )

    def _requests_failed(self, error: Exception) -> None:
        log.warning("the authenticator's re-authentication requests failed: %s", error)

    def _follow(self, exchange: Outcome[int]) -> Outcome[Reauthenticated]:
        """The application's view of ``exchange``: one per exchange, however many asked for it,
        so each success is emitted once."""
        known = self._waiting.get(exchange)
        if known is not None:
            return known
        result: Outcome[Reauthenticated] = Outcome()
        self._waiting[exchange] = result

        def succeeded(rounds: int) -> None:
            del self._waiting[exchange]
            assert self._engine is not None
            event = Reauthenticated(str(self._engine.endpoint), rounds)
            self._emit(event)
            settle_value(result, event)

        def failed(error: Exception) -> None:
            self._waiting.pop(exchange, None)
            settle_error(result, error)

        exchange.subscribe(succeeded, failed)
        return result
