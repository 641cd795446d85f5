"""AIO topic patterns: topics written with ``{token}`` levels, resolved per envoy and per call.

A pattern such as ``vehicles/{modelId}/{executorId}/command/{commandName}`` names some levels by
token. Tokens given a value (at construction, or per call for senders/invokers) become literal
levels; on the receiving side, tokens left open become ``+`` in the subscription filter and are
read back from each arriving topic. Custom tokens are spelled ``{ex:name}``. An optional
``topic_namespace`` (plain levels, no tokens) is prepended to the whole pattern.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ._errors import AioError, ErrorKind, configuration_error

_LEVEL = re.compile(r"^[!-~]+$")
_FORBIDDEN = set('+#{}"/')
_TOKEN = re.compile(r"^\{([^{}/+#]+)\}$")


def is_valid_level(level: str) -> bool:
    """A literal level: printable ASCII without space, ``+ # { } " /``, and not empty."""
    return bool(_LEVEL.match(level)) and not _FORBIDDEN.intersection(level)


def is_valid_namespace(namespace: str) -> bool:
    """Plain levels separated by ``/``: no tokens, no wildcards, no empty level."""
    return bool(namespace) and all(is_valid_level(level) for level in namespace.split("/"))


def check_token_map(tokens: object, argument: str) -> dict[str, str]:
    """``tokens`` as a dict of token name to value; an ``invalid configuration`` error naming
    ``argument`` when it is not a str-to-str mapping (values are checked where they are used)."""
    if tokens is None:
        return {}
    if not isinstance(tokens, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in tokens.items()
    ):
        raise configuration_error(argument, tokens, "must be a mapping of str token to str value")
    return dict(tokens)


def _check_value(name: str, value: str) -> str:
    if not is_valid_level(value):
        raise configuration_error(name, value, "must be a single valid topic level")
    return value


@dataclass(frozen=True, slots=True)
class TopicPattern:
    """A validated pattern: its levels, each a literal or ``("token", name)``."""

    pattern: str
    levels: tuple[str | tuple[str], ...]

    @staticmethod
    def parse(
        pattern: object,
        *,
        namespace: object = None,
        argument: str,
        name: str = "topicpattern",
        tokens: Mapping[str, str] | None = None,
        wildcards: bool = False,
    ) -> TopicPattern:
        """Validate ``pattern`` (and ``namespace``) and resolve the given ``tokens`` into it;
        errors name AIO's property ``name`` and the Python ``argument``. With ``wildcards``,
        MQTT's ``+`` and ``#`` levels are allowed too (a receiving pattern)."""
        if namespace is not None and (
            not isinstance(namespace, str) or not is_valid_namespace(namespace)
        ):
            raise configuration_error(
                "topicnamespace", namespace, "must be plain topic levels without tokens"
            )
        if not isinstance(pattern, str) or not pattern:
            raise configuration_error(
                name, pattern, "must be a non-empty topic pattern", argument=argument
            )
        levels: list[str | tuple[str]] = []
        for level in pattern.split("/"):
            match = _TOKEN.match(level)
            if match is not None:
                token = match.group(1)
                value = (tokens or {}).get(token)
                levels.append(_check_value(token, value) if value is not None else (token,))
            elif is_valid_level(level) or (wildcards and level in ("+", "#")):
                levels.append(level)
            else:
                raise configuration_error(
                    name, pattern, f"has an invalid level {level!r}", argument=argument
                )
        full = pattern if namespace is None else f"{namespace}/{pattern}"
        prefix: list[str | tuple[str]] = (
            [] if namespace is None else list(str(namespace).split("/"))
        )
        return TopicPattern(full, tuple(prefix + levels))

    def require(self, *names: str) -> None:
        """An ``invalid configuration`` error naming the first of ``names`` still open (tokens
        that must be known when the envoy is created)."""
        for token in self.open_tokens:
            if token in names:
                raise AioError(
                    ErrorKind.INVALID_CONFIGURATION,
                    f"the token {{{token}}} of {self.pattern!r} needs a value at construction",
                    is_shallow=True,
                    property_name=token,
                )

    def resolve(self, tokens: Mapping[str, str]) -> TopicPattern:
        """This pattern with more tokens filled in (values checked)."""
        levels = tuple(
            _check_value(level[0], tokens[level[0]])
            if isinstance(level, tuple) and level[0] in tokens
            else level
            for level in self.levels
        )
        return TopicPattern(self.pattern, levels)

    @property
    def open_tokens(self) -> tuple[str, ...]:
        """Tokens still without a value."""
        return tuple(level[0] for level in self.levels if isinstance(level, tuple))

    def topic(self, tokens: Mapping[str, str] | None = None, *, argument: str) -> str:
        """The concrete topic with ``tokens`` filled in; ``invalid configuration`` naming the
        first token still open."""
        parts: list[str] = []
        for level in self.levels:
            if isinstance(level, tuple):
                value = (tokens or {}).get(level[0])
                if value is None:
                    raise AioError(
                        ErrorKind.INVALID_CONFIGURATION,
                        f"{argument}: the token {{{level[0]}}} of {self.pattern!r} has no value",
                        is_shallow=True,
                        property_name=level[0],
                        property_value=None,
                    )
                parts.append(_check_value(level[0], value))
            else:
                parts.append(level)
        return "/".join(parts)

    def filter(self) -> str:
        """The subscription filter: open tokens become ``+``."""
        return "/".join("+" if isinstance(level, tuple) else level for level in self.levels)

    def tokens_of(self, topic: str, resolved: Mapping[str, str]) -> dict[str, str] | None:
        """Every token's value in ``topic`` (resolved ones included), or ``None`` when
        ``topic`` does not match."""
        parts = topic.split("/")
        if self.levels and self.levels[-1] == "#":
            parts = [*parts[: len(self.levels) - 1], "#"]
        if len(parts) != len(self.levels):
            return None
        found = dict(resolved)
        for level, part in zip(self.levels, parts, strict=True):
            if isinstance(level, tuple):
                found[level[0]] = part
            elif level not in (part, "+"):
                return None
        return found
