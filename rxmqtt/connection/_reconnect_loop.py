"""The reconnect loop: the :class:`ReconnectPolicy` applied to the engine as one Rx pipeline.

    Observable(round)                a round: the attempt under way (adopted), or one attempt per
                                     endpoint, failing over at once (each end judged -> next
                                     endpoint; what ``defer`` and ``catch`` did, in one object)
      .pipe(retry_with_backoff(...)) wait per the policy after a failed round or a lost link
                                     (``Connected`` resets the backoff), then defer again

An attempt is ``Engine.attempt(endpoint)``: it emits ``Connected`` on CONNACK success and errors
with ``AttemptEnded`` when the attempt fails or its link is lost, so a loss is just the end of
the attempt observable, and the retry re-subscribes (a new round) after the backoff wait.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from reactivex import Observable, abc
from reactivex.scheduler.eventloop import AsyncIOScheduler

from ..engine import AttemptEnded, Engine
from ..errors import RetriesExhausted
from ..lifecycle import (
    Connected,
    ConnectFailed,
    Connecting,
    Disconnect,
    Disconnected,
    DisconnectSource,
    GaveUp,
    LifecycleEvent,
)
from ..operators import RetryAttempt, retry_with_backoff
from ..policies import ReasonPacket, ReconnectPolicy
from ..settings import ConnectionSettings, Endpoint

log = logging.getLogger("rxmqtt.connection")

REDIRECT_CODES = frozenset({0x9C, 0x9D})
"""0x9C Use another server, 0x9D Server moved: followed when they carry a Server Reference."""

MAX_REDIRECTS = 5
"""Redirections followed in a row without a successful connection before giving up (a broker
pair sending the client back and forth must not keep it busy forever)."""


class ReconnectLoop:
    """Opens connection attempts on the engine and retries them per the policy, reporting each
    step (``Connecting``, ``ConnectFailed``, ``Disconnected`` with its retry delay, ``GaveUp``)
    through ``emit``. It hears how each attempt went from the attempt observable alone."""

    def __init__(
        self,
        settings: ConnectionSettings,
        policy: ReconnectPolicy,
        emit: Callable[[LifecycleEvent], None],
    ) -> None:
        self._policy = policy
        self._endpoints = settings.all_endpoints()
        self._clean_start = settings.clean_start
        self._emit = emit
        self._engine: Engine | None = None
        self._scheduler: AsyncIOScheduler | None = None
        self._subscription: abc.DisposableBase | None = None
        self._attempts_since_connected = 0
        self._endpoint_index = 0
        self._round_failures = 0
        """Endpoints that failed since the retry loop last (re)subscribed: a backoff step is a
        round over every endpoint, so failing over to the next one costs no extra wait."""
        self._redirect: Endpoint | None = None
        """Where the next attempt goes instead of the configured endpoints (once)."""
        self._redirects = 0

    @property
    def ever_connected(self) -> bool:
        """Whether any attempt reached CONNACK success."""
        return self._engine is not None and self._engine.connections > 0

    # ------------------------------------------------------------------ control

    def start(self, engine: Engine, scheduler: AsyncIOScheduler) -> None:
        """Begin attempting on ``engine``; the backoff waits run on ``scheduler``."""
        self._engine = engine
        self._scheduler = scheduler
        self._subscribe()

    def set_policy(self, policy: ReconnectPolicy) -> None:
        """Take over with ``policy`` now: a live connection or an attempt under way is adopted,
        a pending backoff wait is cut short, and a loop that gave up starts again."""
        self._policy = policy
        self.stop()
        if self._engine is not None:
            self._subscribe()

    def stop(self) -> None:
        """Stop retrying (the engine is left as it is)."""
        if self._subscription is not None:
            self._subscription.dispose()
            self._subscription = None

    def _subscribe(self) -> None:
        policy = self._policy
        self._subscription = (
            Observable(self._round)
            .pipe(
                retry_with_backoff(
                    policy.backoff,
                    policy.max_attempts,
                    self._is_retriable,
                    self._scheduler,
                    reset_after=policy.reset_after,
                    on_retry=self._on_retry,
                )
            )
            .subscribe(
                on_next=self._on_connected, on_error=self._on_gave_up, scheduler=self._scheduler
            )
        )

    # ------------------------------------------------------------------ one round

    def _round(
        self, observer: abc.ObserverBase[Connected], _scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        """One backoff step: the attempt under way when there is one (a new policy takes it
        over), else a round over the endpoints."""
        engine = self._engine
        assert engine is not None
        if engine.link_up or engine.attempt_in_progress:
            return _Round(self, observer).follow(engine.watch_current_attempt)
        self._round_failures = 0
        return _Round(self, observer).follow(self._next_attempt)

    def _next_attempt(self, observer: abc.ObserverBase[Connected]) -> abc.DisposableBase:
        """Start the next attempt, watched by ``observer``."""
        engine = self._engine
        assert engine is not None
        self._attempts_since_connected += 1
        endpoint = self._redirect or self._endpoints[self._endpoint_index % len(self._endpoints)]
        self._redirect = None  # a transient endpoint: the configured ones come next
        self._emit(Connecting(self._attempts_since_connected, str(endpoint)))
        return engine.watch_new_attempt(
            observer, endpoint, clean_start=self._clean_start and engine.connections == 0
        )

    def _after_end(self, error: Exception) -> Exception | None:
        """An attempt ended: judge it (fatal? a redirection?). ``None``: fail over to the next
        endpoint at once; else the error that ends the round, for the retry to judge."""
        if not isinstance(error, AttemptEnded):
            return error
        if error.was_connected:
            disconnect = self._with_fatality(error.disconnect, "DISCONNECT")
            return AttemptEnded(disconnect, was_connected=True)
        ended = AttemptEnded(self._with_fatality(error.disconnect, "CONNACK"), was_connected=False)
        if self._redirect is None:
            self._endpoint_index += 1
            self._round_failures += 1
        if not ended.disconnect.fatal and (
            self._redirect is not None or self._round_failures < len(self._endpoints)
        ):
            # Fail over (or follow a redirection) at once: the backoff waits between rounds
            # over all endpoints.
            self._emit(_failure_event(ended, self._attempts_since_connected, 0.0))
            return None
        return ended

    def _on_connected(self, _event: Connected) -> None:
        self._attempts_since_connected = 0
        self._redirects = 0

    def _is_retriable(self, error: Exception) -> bool:
        if not isinstance(error, AttemptEnded):
            return False
        if error.disconnect.fatal:
            return False
        return self.ever_connected or self._policy.retry_first_connect

    def _with_fatality(self, disconnect: Disconnect, packet: ReasonPacket) -> Disconnect:
        if (
            disconnect.source is DisconnectSource.SERVER
            and disconnect.reason_code in REDIRECT_CODES
            and disconnect.server_reference
        ):
            return self._follow(disconnect, disconnect.server_reference)
        code = disconnect.reason_code  # (None: MQTT 3.1.1 gave no code, nothing to judge)
        fatal = disconnect.fatal or (
            disconnect.source is DisconnectSource.SERVER
            and code is not None
            and self._policy.is_fatal_in(code, packet)
        )
        return dataclasses.replace(disconnect, fatal=fatal)

    def _follow(self, disconnect: Disconnect, reference: str) -> Disconnect:
        """Aim the next attempt at the broker's Server Reference; fatal when it cannot be used
        or after ``MAX_REDIRECTS`` redirections in a row."""
        engine = self._engine
        current = engine.endpoint if engine is not None else None
        default_port = current.port if current is not None else self._endpoints[0].port
        if self._redirects >= MAX_REDIRECTS:
            problem = f"redirected {self._redirects} times in a row without connecting"
        else:
            try:
                self._redirect = parse_server_reference(reference, default_port)
            except ValueError as exc:
                problem = f"cannot follow the server reference: {exc}"
            else:
                self._redirects += 1
                return dataclasses.replace(disconnect, fatal=False)
        return dataclasses.replace(disconnect, reason=f"{disconnect.reason}; {problem}", fatal=True)

    def _on_retry(self, attempt: RetryAttempt) -> None:
        error = attempt.error
        assert isinstance(error, AttemptEnded)
        self._emit(_failure_event(error, self._attempts_since_connected, attempt.delay))

    def _on_gave_up(self, error: Exception) -> None:
        if isinstance(error, RetriesExhausted):
            ended = error.last_error
            reason = f"gave up after {error.attempts} retries"
        else:
            ended = error
            reason = "fatal"
        if not isinstance(ended, AttemptEnded):
            log.error("reconnect loop failed unexpectedly", exc_info=ended)
            self._emit(GaveUp(f"internal error: {ended!r}"))
            return
        if reason == "fatal" and not ended.disconnect.fatal:
            reason = "the first connection failed and retry_first_connect is False"
        self._emit(_failure_event(ended, self._attempts_since_connected, None))
        self._emit(GaveUp(f"{reason}: {ended.disconnect}", ended.disconnect))


class _Round(abc.ObserverBase[Connected], abc.DisposableBase):
    """One round's subscription: it follows the attempt under way, has each end judged
    (``ReconnectLoop._after_end``) and follows the next endpoint's attempt, or ends the round
    with the error. A connection holds one for its life: one small object where ``defer`` and
    ``catch`` held a dozen, each with its lock."""

    __slots__ = ("_attempt", "_done", "_loop", "_observer")

    def __init__(self, loop: ReconnectLoop, observer: abc.ObserverBase[Connected]) -> None:
        self._loop = loop
        self._observer = observer
        self._attempt: abc.DisposableBase | None = None
        self._done = False

    def follow(self, watch: Callable[[_Round], abc.DisposableBase]) -> _Round:
        """Watch the attempt ``watch(self)`` starts or adopts (the one watched before is let
        go); what it raises ends the round, as an Rx subscription's error would."""
        previous, self._attempt = self._attempt, None
        if previous is not None:
            previous.dispose()
        try:
            subscription = watch(self)
        except Exception as error:
            self.on_error(error)
            return self
        if self._done:  # (ended or disposed while subscribing)
            subscription.dispose()
        elif self._attempt is None:
            self._attempt = subscription
        return self

    def dispose(self) -> None:
        self._done = True
        attempt, self._attempt = self._attempt, None
        if attempt is not None:
            attempt.dispose()

    def on_next(self, value: Connected) -> None:
        if not self._done:
            self._observer.on_next(value)

    def on_error(self, error: Exception) -> None:
        if self._done:
            return
        ended = self._loop._after_end(error)  # noqa: SLF001  (the loop's own round)
        if ended is None:
            self.follow(self._loop._next_attempt)  # noqa: SLF001
            return
        self._done = True
        self._observer.on_error(ended)

    def on_completed(self) -> None:
        if not self._done:
            self._done = True
            self._observer.on_completed()


def _failure_event(
    error: AttemptEnded, attempt: int, retry_in: float | None
) -> ConnectFailed | Disconnected:
    disconnect = error.disconnect
    if error.was_connected:
        return Disconnected(disconnect, retry_in)
    return ConnectFailed(disconnect.reason_code, disconnect.reason, attempt, retry_in, disconnect)


def parse_server_reference(reference: str, default_port: int) -> Endpoint:
    """The endpoint a Server Reference names. MQTT 5 leaves its format open: the first of
    space-separated references is used, as ``host``, ``host:port`` or ``[v6]:port``, with any
    ``scheme://`` prefix ignored (the connection's own TLS settings apply, never weaker ones)."""
    first = reference.split()[0] if reference.split() else ""
    if "://" in first:
        first = first.split("://", 1)[1]
    return Endpoint.parse(first.rstrip("/"), default_port=default_port, argument="reference")
