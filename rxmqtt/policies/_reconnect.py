"""When and how the connection reconnects after losing (or failing to open) its connection."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .._checks import check_bool, check_callable, check_count, check_instance, check_seconds
from ._backoff import Backoff
from ._reason_codes import ReasonPacket, is_fatal_reason_code

__all__ = ["ReconnectPolicy"]


@dataclass(frozen=True)
class ReconnectPolicy:
    """How the connection reconnects; a value, validated on construction.

    Args:
        backoff: the delays between attempts.
        max_attempts: how many reconnect attempts follow a failure before the connection gives
            up (state ``FAILED``); ``None`` retries forever. The count restarts together with the
            backoff (see ``reset_after``).
        reset_after: seconds a connection must stay up before the backoff and the attempt count
            restart from the beginning. A connection that lived long enough starts over with a
            short delay; one that flaps (connects, drops at once) keeps backing off. ``math.inf``
            never restarts them.
        retry_first_connect: whether a failing first connect is retried like a lost connection
            (``True``), or ends the connection at once (``False``: fail fast at start-up, e.g.
            to let a supervisor restart the process).
        is_fatal: given a CONNACK/DISCONNECT reason code, whether retrying is pointless (the
            connection gives up at once, state ``FAILED``). The default is
            :func:`~rxmqtt.policies.is_fatal_reason_code`, the one documented table.

    Raises:
        TypeError: an argument has the wrong type (the message names it).
        ValueError: an argument is out of range (the message names it).
    """

    backoff: Backoff = Backoff()  # noqa: RUF009 -- frozen, so sharing the default is safe
    max_attempts: int | None = None
    reset_after: float = 30.0
    retry_first_connect: bool = True
    is_fatal: Callable[[int], bool] = is_fatal_reason_code

    def __post_init__(self) -> None:
        check_instance("backoff", self.backoff, Backoff, "a Backoff")
        check_count("max_attempts", self.max_attempts, optional=True)
        check_seconds("reset_after", self.reset_after, allow_inf=True)
        check_bool("retry_first_connect", self.retry_first_connect)
        check_callable("is_fatal", self.is_fatal)

    def is_fatal_in(self, code: int, packet: ReasonPacket) -> bool:
        """Whether ``code`` arriving in ``packet`` ("CONNACK" or "DISCONNECT") ends reconnecting.

        With the default ``is_fatal`` this consults the table for that packet (a few codes, such
        as 0x95 Packet too large, are fatal in a CONNACK but not in a DISCONNECT); a custom
        ``is_fatal`` is called with the code alone.
        """
        if self.is_fatal is is_fatal_reason_code:
            return is_fatal_reason_code(code, packet)
        return bool(self.is_fatal(code))
