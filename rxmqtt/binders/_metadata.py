"""Application metadata: the user properties that are not AIO's reserved ``__`` ones, and the
context a command handler may ask for (:class:`CommandRequest`) or answer with
(:class:`CommandResult`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from rxmqtt.message import Message

from ._errors import configuration_error
from ._protocol import RESERVED_PREFIX

T = TypeVar("T")


def application_metadata(message: Message) -> dict[str, str]:
    """``message``'s user properties except the reserved ones (the last value of a repeat)."""
    return {
        name: value
        for name, value in message.properties.user_properties
        if not name.startswith(RESERVED_PREFIX)
    }


def outgoing_metadata(metadata: Mapping[str, str] | None) -> list[tuple[str, str]]:
    """``metadata`` as user properties; an ``invalid configuration`` error for a non-str entry
    or a reserved (``__``) name."""
    user: list[tuple[str, str]] = []
    for name, text in (metadata or {}).items():
        if not isinstance(name, str) or not isinstance(text, str):
            raise configuration_error("metadata", {name: text}, "must map str to str")
        if name.startswith(RESERVED_PREFIX):
            raise configuration_error("metadata", name, "names starting '__' are reserved")
        user.append((name, text))
    return user


@dataclass(frozen=True, slots=True)
class CommandRequest(Generic[T]):
    """What a handler of a ``CommandExecutor(..., with_context=True)`` receives."""

    value: T
    """The decoded request."""
    metadata: Mapping[str, str]
    """The invoker's application user properties."""
    tokens: Mapping[str, str]
    """Every ``{token}`` of the request topic pattern with its value in this request's topic."""
    invoker_id: str | None
    """The invoker's client id (``__srcId``), when it said."""
    message: Message
    """The raw MQTT request."""


@dataclass(frozen=True, slots=True)
class CommandResult(Generic[T]):
    """A handler's answer with application metadata for the response's user properties."""

    value: T
    metadata: Mapping[str, str] = field(default_factory=dict)
