"""MQTT 5 topic names and filters: validation, matching, and a topic trie for dispatch.

Pure: no I/O. Validation runs at the call site so a bad topic raises immediately with a message
naming the argument, instead of the broker closing the connection later.
"""

from __future__ import annotations

import re
from typing import Any, Generic, TypeVar

__all__ = [
    "MAX_TOPIC_BYTES",
    "InvalidTopicError",
    "TopicTrie",
    "matches",
    "split_shared",
    "validate_filter",
    "validate_topic",
]

V = TypeVar("V")

MAX_TOPIC_BYTES = 65535
"""A topic is a UTF-8 Encoded String: a 2-byte length prefix caps it at 65535 bytes."""

_SHARE_PREFIX = "$share/"

# Code points the spec forbids (U+0000, surrogates: not well-formed UTF-8) or says SHOULD NOT be
# sent (controls, non-characters) -- Mosquitto 2 treats the latter as malformed and disconnects,
# so they are refused here rather than turning into a reconnect loop.
_NONCHARACTERS = "".join(
    f"{chr(plane * 0x10000 + 0xFFFE)}{chr(plane * 0x10000 + 0xFFFF)}" for plane in range(17)
)
_BAD_CHAR = re.compile(
    "[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef" + re.escape(_NONCHARACTERS) + "]"
)
_WILDCARD = re.compile("[+#]")


class InvalidTopicError(ValueError):
    """A topic name or topic filter breaks the MQTT 5 rules; the message names the argument."""


def _bad_char_problem(char: str) -> str:
    """Describe why ``char`` may not appear in a topic."""
    code = ord(char)
    if code == 0:
        return "must not contain the null character U+0000"
    if 0xD800 <= code <= 0xDFFF:
        return f"must be valid UTF-8, found a lone surrogate U+{code:04X}"
    if code <= 0x9F:
        return f"must not contain the control character U+{code:04X}"
    return f"must not contain the non-character U+{code:04X}"


def _check_string(value: object, argument: str) -> str:
    """The checks shared by names and filters: type, non-empty, characters, encoded length."""
    if not isinstance(value, str):
        raise TypeError(f"{argument}: must be a str, got {type(value).__name__}")
    if not value:
        raise InvalidTopicError(f"{argument}: must not be empty")
    bad = _BAD_CHAR.search(value)
    if bad is not None:
        raise InvalidTopicError(f"{argument}: {_bad_char_problem(bad.group())}: {value!r}")
    # Every code point is at most 4 bytes, so short strings need no encoding to check the bound.
    if len(value) * 4 > MAX_TOPIC_BYTES:
        size = len(value.encode("utf-8"))
        if size > MAX_TOPIC_BYTES:
            raise InvalidTopicError(
                f"{argument}: must be at most {MAX_TOPIC_BYTES} UTF-8 bytes, got {size}"
            )
    return value


def validate_topic(topic: object, *, argument: str = "topic") -> str:
    """Return ``topic`` if it is a valid publish topic name, else raise naming ``argument``.

    Raises ``TypeError`` for a non-``str`` and :class:`InvalidTopicError` for an empty name, one
    over 65535 UTF-8 bytes, one with a ``+``/``#`` wildcard, or with U+0000 (or another code point
    the spec forbids or discourages: lone surrogates, controls, non-characters).
    """
    if type(topic) is str and topic in _VALID_TOPICS:  # (a str subclass is checked anew)
        return topic
    value = _check_string(topic, argument)
    if _WILDCARD.search(value) is not None:
        raise InvalidTopicError(
            f"{argument}: wildcards '+' and '#' are not allowed in a publish topic: {value!r}"
        )
    if len(value) <= REMEMBERED_TOPIC_LENGTH:
        if len(_VALID_TOPICS) >= VALID_TOPICS_REMEMBERED:
            _VALID_TOPICS.clear()
        _VALID_TOPICS.add(value)
    return value


VALID_TOPICS_REMEMBERED = 4096
"""Topic names ``validate_topic`` remembers as valid: an application publishes to a few topics
over and over, and each is checked once (a set lookup after that)."""

REMEMBERED_TOPIC_LENGTH = 512
"""Longer topics are not remembered (by ``validate_topic`` or a trie's matches), so the memory
the remembering takes stays small (a topic may be 65,535 bytes long)."""

_VALID_TOPICS: set[str] = set()


def _check_filter_levels(topic_filter: str, shown: str, argument: str) -> None:
    """Enforce the wildcard placement rules on the (non-shared) filter ``topic_filter``."""
    if _WILDCARD.search(topic_filter) is None:
        return
    levels = topic_filter.split("/")
    last = len(levels) - 1
    for index, level in enumerate(levels):
        if "#" in level:
            if level != "#":
                raise InvalidTopicError(f"{argument}: '#' must occupy a whole level: {shown!r}")
            if index != last:
                raise InvalidTopicError(f"{argument}: '#' must be the last level: {shown!r}")
        elif "+" in level and level != "+":
            raise InvalidTopicError(f"{argument}: '+' must occupy a whole level: {shown!r}")


def validate_filter(topic_filter: object, *, argument: str = "topic_filter") -> str:
    """Return ``topic_filter`` if it is a valid MQTT 5 subscription filter, else raise.

    ``#`` must be alone in the last level, ``+`` alone in its level; ``$share/{group}/{filter}``
    needs a non-empty group without ``/``, ``+`` or ``#`` and a valid filter after it.
    """
    value = _check_string(topic_filter, argument)
    if value.startswith(_SHARE_PREFIX):
        group, separator, inner = value[len(_SHARE_PREFIX) :].partition("/")
        if not group:
            raise InvalidTopicError(
                f"{argument}: a shared subscription needs a non-empty group name: {value!r}"
            )
        if _WILDCARD.search(group) is not None:
            raise InvalidTopicError(
                f"{argument}: a shared subscription group must not contain '+' or '#': {value!r}"
            )
        if not separator or not inner:
            raise InvalidTopicError(
                f"{argument}: a shared subscription needs a filter after the group: {value!r}"
            )
        _check_filter_levels(inner, value, argument)
    else:
        _check_filter_levels(value, value, argument)
    return value


def split_shared(topic_filter: str) -> tuple[str | None, str]:
    """Split ``$share/{group}/{filter}`` into ``(group, filter)``; other filters give ``(None, f)``.

    The filter part is what incoming topics are matched against. Raises
    :class:`InvalidTopicError` for a ``$share/`` filter with no group or no filter part.
    """
    if not topic_filter.startswith(_SHARE_PREFIX):
        return None, topic_filter
    group, separator, inner = topic_filter[len(_SHARE_PREFIX) :].partition("/")
    if not group or not separator or not inner:
        raise InvalidTopicError(
            f"topic_filter: malformed shared subscription {topic_filter!r} "
            "(expected '$share/{group}/{filter}')"
        )
    return group, inner


def matches(topic_filter: str, topic: str) -> bool:
    """Whether ``topic`` matches ``topic_filter`` (a ``$share/`` prefix is ignored).

    ``+`` matches exactly one level (possibly empty), ``#`` the parent level and any number of
    levels below it; topics starting with ``$`` are not matched by a first-level ``+`` or ``#``.
    """
    _, pattern = split_shared(topic_filter)
    filter_levels = pattern.split("/")
    if topic.startswith("$") and filter_levels[0] in ("+", "#"):
        return False
    topic_levels = topic.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[index]:
            return False
    return len(filter_levels) == len(topic_levels)


MATCH_CACHE_SIZE = 4096
"""Topics whose matches a ``TopicTrie`` remembers at once (see ``TopicTrie.match``)."""


_NO_CHILDREN: dict[str, Any] = {}
"""The children of every node that has none yet (never written to: a node gets a dict of its own
with its first child). A connection's trie is mostly leaves; empty containers cost memory."""

_NONE_HERE: tuple[()] = ()
"""The values of a node where no filter ends (a node gets a list with its first value)."""


class _Node(Generic[V]):
    """One level of the trie: literal children, a ``+`` child, and values ending here."""

    __slots__ = ("children", "hash_values", "plus", "values")

    def __init__(self) -> None:
        self.children: dict[str, _Node[V]] = _NO_CHILDREN
        self.plus: _Node[V] | None = None
        self.values: list[V] | tuple[()] = _NONE_HERE  # filters ending at this node
        self.hash_values: list[V] | tuple[()] = _NONE_HERE  # filters ending with '/#' below it

    def is_empty(self) -> bool:
        return not (self.children or self.plus or self.values or self.hash_values)


def _with(bucket: list[V] | tuple[()], value: V) -> list[V]:
    """``bucket`` with ``value`` added: the node's own list (made on its first value)."""
    if isinstance(bucket, list):
        bucket.append(value)
        return bucket
    return [value]


class TopicTrie(Generic[V]):
    """Maps topic filters to values; ``match(topic)`` finds every value whose filter matches.

    A trie over topic levels with separate ``+`` and ``#`` branches, so the cost of a match
    depends on the topic's depth and the matching branches, not on how many filters are stored.
    The same value may be added under several filters (it is then returned once per matching
    filter) or several times under one filter. Shared filters are keyed by their filter part.

    Matches are remembered per topic until the next ``add``/``remove`` (at most
    :data:`MATCH_CACHE_SIZE` topics, none longer than :data:`REMEMBERED_TOPIC_LENGTH`): a
    stream of messages on a few topics costs one dict lookup each, however many filters are
    stored.
    """

    __slots__ = ("_matched", "_root", "_size")

    def __init__(self) -> None:
        self._root: _Node[V] = _Node()
        self._size = 0
        self._matched: dict[str, list[V]] = {}

    def add(self, topic_filter: str, value: V) -> None:
        """Store ``value`` under ``topic_filter`` (validated; raises :class:`InvalidTopicError`)."""
        validate_filter(topic_filter)
        _, pattern = split_shared(topic_filter)
        node = self._root
        levels = pattern.split("/")
        if levels[-1] == "#":
            for level in levels[:-1]:
                node = self._child(node, level)
            node.hash_values = _with(node.hash_values, value)
        else:
            for level in levels:
                node = self._child(node, level)
            node.values = _with(node.values, value)
        self._size += 1
        self._matched.clear()

    @staticmethod
    def _child(node: _Node[V], level: str) -> _Node[V]:
        """The child of ``node`` for ``level``, created if missing."""
        if level == "+":
            if node.plus is None:
                node.plus = _Node()
            return node.plus
        children = node.children
        child = children.get(level)
        if child is None:
            if children is _NO_CHILDREN:
                children = node.children = {}
            child = children[level] = _Node()
        return child

    def _find(
        self, topic_filter: str
    ) -> tuple[list[tuple[_Node[V], str]], list[V] | tuple[()]] | None:
        """The path of (parent, level) steps to ``topic_filter``'s value list, or ``None``."""
        try:
            _, pattern = split_shared(topic_filter)
        except InvalidTopicError:
            return None
        levels = pattern.split("/")
        is_hash = levels[-1] == "#"
        if is_hash:
            levels = levels[:-1]
        path: list[tuple[_Node[V], str]] = []
        node = self._root
        for level in levels:
            child = node.plus if level == "+" else node.children.get(level)
            if child is None:
                return None
            path.append((node, level))
            node = child
        return path, (node.hash_values if is_hash else node.values)

    def remove(self, topic_filter: str, value: V) -> bool:
        """Remove one ``value`` stored under ``topic_filter``; ``False`` if it was not there."""
        found = self._find(topic_filter)
        if found is None:
            return False
        path, bucket = found
        if not isinstance(bucket, list) or value not in bucket:
            return False
        bucket.remove(value)
        self._size -= 1
        self._matched.clear()
        # Prune nodes left empty, deepest first, so removed filters do not leak memory.
        for parent, level in reversed(path):
            child = parent.plus if level == "+" else parent.children[level]
            if child is None or not child.is_empty():
                break
            if level == "+":
                parent.plus = None
            else:
                del parent.children[level]
        return True

    def match(self, topic: str) -> list[V]:
        """Every value whose filter matches the topic name ``topic`` (not validated). The list
        is shared with later calls for the same topic: read it, never change it."""
        found = self._matched.get(topic)
        if found is None:
            found = self._walk(topic)
            if len(topic) <= REMEMBERED_TOPIC_LENGTH:
                matched = self._matched
                if len(matched) >= MATCH_CACHE_SIZE:
                    matched.clear()  # (a topic space wider than the cache: start over)
                matched[topic] = found
        return found

    def _walk(self, topic: str) -> list[V]:
        """``match`` without the cache: the trie walk."""
        levels = topic.split("/")
        depth = len(levels)
        dollar = topic.startswith("$")
        found: list[V] = []
        stack: list[tuple[_Node[V], int]] = [(self._root, 0)]
        while stack:
            node, index = stack.pop()
            wild_ok = index > 0 or not dollar
            if node.hash_values and wild_ok:
                found.extend(node.hash_values)
            if index == depth:
                found.extend(node.values)
                continue
            child = node.children.get(levels[index])
            if child is not None:
                stack.append((child, index + 1))
            if node.plus is not None and wild_ok:
                stack.append((node.plus, index + 1))
        return found

    def __len__(self) -> int:
        """The number of (filter, value) entries stored."""
        return self._size

    def __contains__(self, topic_filter: object) -> bool:
        """Whether at least one value is stored under ``topic_filter`` (or its filter part)."""
        if not isinstance(topic_filter, str) or not topic_filter:
            return False
        found = self._find(topic_filter)
        return found is not None and bool(found[1])

    def filters(self) -> list[str]:
        """The distinct filters (shared ones by their filter part) with at least one value."""
        result: list[str] = []
        # Iterative, sharing one path list: a filter may have tens of thousands of levels.
        path: list[str] = []
        stack: list[tuple[_Node[V], str | None, int]] = [(self._root, None, 0)]
        while stack:
            node, level, depth = stack.pop()
            del path[depth:]
            if level is not None:
                path.append(level)
            if node.values:
                result.append("/".join(path))
            if node.hash_values:
                result.append("/".join([*path, "#"]))
            depth = len(path)
            if node.plus is not None:
                stack.append((node.plus, "+", depth))
            stack.extend((child, name, depth) for name, child in node.children.items())
        return result
