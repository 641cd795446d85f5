"""The executor's bookkeeping: a request on its way (:class:`Job`), a response kept for
re-sending (:class:`CachedResponse`), and why a request did not run (:class:`SkippedRequest`)."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from reactivex import abc

from rxmqtt.message import Message, PublishProperties


class SkipReason(enum.Enum):
    """Why a request did not run the handler."""

    NO_RESPONSE_TOPIC = "no_response_topic"
    """It has no (valid) Response Topic, so it cannot be answered; dropped."""
    NO_EXPIRY = "no_expiry"
    """It has no Message Expiry Interval; answered with status 400."""
    BAD_REQUEST = "bad_request"
    """Its payload could not be decoded; answered with status 400."""
    EXPIRED = "expired"
    """Its expiry passed while it waited for a free handler slot; dropped, no answer."""
    DUPLICATE = "duplicate"
    """A re-delivery of a request already executed (answered again from the cache) or still
    running (its one answer follows)."""


@dataclass(frozen=True, slots=True)
class SkippedRequest:
    """A request the executor did not hand to the handler, and why."""

    reason: SkipReason
    message: Message
    detail: str

    @property
    def correlation_data(self) -> bytes | None:
        """The request's Correlation Data."""
        return self.message.properties.correlation_data


@dataclass(frozen=True, slots=True)
class CachedResponse:
    """A response as cached for re-sending: its expiry is recomputed from ``deadline``."""

    topic: str
    payload: bytes
    properties: PublishProperties
    deadline: float


class Running:
    """Cache marker: the handler for this request has not finished yet."""


RUNNING: Final = Running()


@dataclass(eq=False, slots=True)
class Job:
    """One request on its way through the executor."""

    message: Message
    response_topic: str
    key: tuple[str, bytes] | None
    deadline: float
    ack: Callable[[], None]
    execution_deadline: float | None = None
    timer: abc.DisposableBase | None = None
    work: abc.DisposableBase | None = None
    started: bool = False
    done: bool = False
