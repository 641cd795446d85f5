"""Topic names, filters, matching and the topic trie (pure; table and property tests)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rxmqtt.topics import (
    InvalidTopicError,
    TopicTrie,
    matches,
    split_shared,
    validate_filter,
    validate_topic,
)

# ---------------------------------------------------------------------------------------------
# validate_topic


@pytest.mark.parametrize(
    "topic",
    [
        "a",
        "a/b/c",
        "/",
        "/a",
        "a/",
        "a//b",
        "$SYS/broker",
        "caf\u00e9/\U0001f600",
        "a b",
        "x" * 65535,
    ],
)
def test_valid_topics_are_returned(topic: str) -> None:
    assert validate_topic(topic) == topic


@pytest.mark.parametrize(
    ("topic", "message"),
    [
        ("", "topic: must not be empty"),
        (
            "a/+/b",
            "topic: wildcards '+' and '#' are not allowed in a publish topic: 'a/+/b'",
        ),
        ("a/#", "topic: wildcards '+' and '#' are not allowed in a publish topic: 'a/#'"),
        ("a+b", "topic: wildcards '+' and '#' are not allowed in a publish topic: 'a+b'"),
        ("a\x00b", "topic: must not contain the null character U+0000: 'a\\x00b'"),
        ("a\tb", "topic: must not contain the control character U+0009: 'a\\tb'"),
        ("a\x7f", "topic: must not contain the control character U+007F: 'a\\x7f'"),
        ("a\x85", "topic: must not contain the control character U+0085: 'a\\x85'"),
        ("a\ufffe", "topic: must not contain the non-character U+FFFE: 'a\\ufffe'"),
        ("a\ufdd0", "topic: must not contain the non-character U+FDD0: 'a\\ufdd0'"),
        ("\U0010ffff", "topic: must not contain the non-character U+10FFFF: '\\U0010ffff'"),
        ("a\ud800", "topic: must be valid UTF-8, found a lone surrogate U+D800: 'a\\ud800'"),
        ("x" * 65536, "topic: must be at most 65535 UTF-8 bytes, got 65536"),
        ("\u00e9" * 32768, "topic: must be at most 65535 UTF-8 bytes, got 65536"),
    ],
)
def test_invalid_topics_raise_with_exact_message(topic: str, message: str) -> None:
    with pytest.raises(InvalidTopicError) as info:
        validate_topic(topic)
    assert str(info.value) == message


def test_invalid_topic_error_is_a_value_error() -> None:
    assert issubclass(InvalidTopicError, ValueError)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "topic: must be a str, got NoneType"),
        (b"a/b", "topic: must be a str, got bytes"),
        (42, "topic: must be a str, got int"),
    ],
)
def test_non_string_topic_is_a_type_error(value: object, message: str) -> None:
    with pytest.raises(TypeError) as info:
        validate_topic(value)
    assert str(info.value) == message


def test_topic_messages_name_the_argument() -> None:
    with pytest.raises(InvalidTopicError, match=r"^will\.topic: wildcards"):
        validate_topic("a/#", argument="will.topic")
    with pytest.raises(TypeError, match=r"^response_topic: must be a str"):
        validate_topic(1, argument="response_topic")


# ---------------------------------------------------------------------------------------------
# validate_filter and split_shared


@pytest.mark.parametrize(
    "topic_filter",
    [
        "#",
        "+",
        "a/#",
        "a/+/b",
        "+/+",
        "/+",
        "+/",
        "a//#",
        "$SYS/#",
        "$share/g/a/#",
        "$share/g/#",
        "$share/group-1/+/x",
        "$share/g/$SYS/x",
        "$sharefoo/a",  # not a shared subscription: an ordinary filter
        "$share",  # likewise
    ],
)
def test_valid_filters_are_returned(topic_filter: str) -> None:
    assert validate_filter(topic_filter) == topic_filter


@pytest.mark.parametrize(
    ("topic_filter", "message"),
    [
        ("", "topic_filter: must not be empty"),
        ("a/#/b", "topic_filter: '#' must be the last level: 'a/#/b'"),
        ("#/", "topic_filter: '#' must be the last level: '#/'"),
        ("a#", "topic_filter: '#' must occupy a whole level: 'a#'"),
        ("a/b#", "topic_filter: '#' must occupy a whole level: 'a/b#'"),
        ("a/##", "topic_filter: '#' must occupy a whole level: 'a/##'"),
        ("a+", "topic_filter: '+' must occupy a whole level: 'a+'"),
        ("a/+b/c", "topic_filter: '+' must occupy a whole level: 'a/+b/c'"),
        ("++", "topic_filter: '+' must occupy a whole level: '++'"),
        ("a\x00", "topic_filter: must not contain the null character U+0000: 'a\\x00'"),
        ("x" * 65536, "topic_filter: must be at most 65535 UTF-8 bytes, got 65536"),
        (
            "$share//a",
            "topic_filter: a shared subscription needs a non-empty group name: '$share//a'",
        ),
        (
            "$share/",
            "topic_filter: a shared subscription needs a non-empty group name: '$share/'",
        ),
        (
            "$share/g+/a",
            "topic_filter: a shared subscription group must not contain '+' or '#': '$share/g+/a'",
        ),
        (
            "$share/#/a",
            "topic_filter: a shared subscription group must not contain '+' or '#': '$share/#/a'",
        ),
        (
            "$share/g",
            "topic_filter: a shared subscription needs a filter after the group: '$share/g'",
        ),
        (
            "$share/g/",
            "topic_filter: a shared subscription needs a filter after the group: '$share/g/'",
        ),
        ("$share/g/a/#/b", "topic_filter: '#' must be the last level: '$share/g/a/#/b'"),
        ("$share/g/a+", "topic_filter: '+' must occupy a whole level: '$share/g/a+'"),
    ],
)
def test_invalid_filters_raise_with_exact_message(topic_filter: str, message: str) -> None:
    with pytest.raises(InvalidTopicError) as info:
        validate_filter(topic_filter)
    assert str(info.value) == message


def test_non_string_filter_is_a_type_error() -> None:
    with pytest.raises(TypeError) as info:
        validate_filter(["a"], argument="filter")
    assert str(info.value) == "filter: must be a str, got list"


@pytest.mark.parametrize(
    ("topic_filter", "expected"),
    [
        ("a/b", (None, "a/b")),
        ("$share/g/a/b", ("g", "a/b")),
        ("$share/g/#", ("g", "#")),
        ("$share/g//", ("g", "/")),
        ("$SYS/x", (None, "$SYS/x")),
        ("$sharex/a", (None, "$sharex/a")),
    ],
)
def test_split_shared(topic_filter: str, expected: tuple[str | None, str]) -> None:
    assert split_shared(topic_filter) == expected


@pytest.mark.parametrize("topic_filter", ["$share/", "$share/g", "$share//a", "$share/g/"])
def test_split_shared_rejects_malformed(topic_filter: str) -> None:
    with pytest.raises(InvalidTopicError, match=r"^topic_filter: malformed shared subscription"):
        split_shared(topic_filter)


# ---------------------------------------------------------------------------------------------
# matches (examples from the MQTT 5 specification, section 4.7)


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("sport/tennis/player1/#", "sport/tennis/player1", True),
        ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
        ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
        ("sport/#", "sport", True),
        ("#", "sport/tennis", True),
        ("#", "/", True),
        ("sport/tennis/+", "sport/tennis/player1", True),
        ("sport/tennis/+", "sport/tennis/player1/ranking", False),
        ("sport/+", "sport", False),
        ("sport/+", "sport/", True),
        ("+/+", "/finance", True),
        ("/+", "/finance", True),
        ("+", "/finance", False),
        ("a/b", "a/b", True),
        ("a/b", "a/b/c", False),
        ("a/b/c", "a/b", False),
        ("A/b", "a/b", False),
        ("#", "$SYS/broker", False),
        ("+/monitor/Clients", "$SYS/monitor/Clients", False),
        ("$SYS/#", "$SYS/monitor/Clients", True),
        ("$SYS/monitor/+", "$SYS/monitor/Clients", True),
        ("$share/g/sport/+", "sport/tennis", True),
        ("$share/g/#", "$SYS/x", False),
        ("a/+/#", "a/b", True),
        ("a/+/#", "a", False),
    ],
)
def test_matches(topic_filter: str, topic: str, expected: bool) -> None:
    assert matches(topic_filter, topic) is expected


# ---------------------------------------------------------------------------------------------
# TopicTrie


def test_trie_matches_literal_plus_and_hash() -> None:
    trie: TopicTrie[str] = TopicTrie()
    trie.add("a/b", "literal")
    trie.add("a/+", "plus")
    trie.add("a/#", "hash")
    trie.add("#", "all")
    trie.add("x/y", "other")
    assert sorted(trie.match("a/b")) == ["all", "hash", "literal", "plus"]
    assert sorted(trie.match("a")) == ["all", "hash"]
    assert sorted(trie.match("a/c/d")) == ["all", "hash"]
    assert trie.match("$SYS/a") == []


def test_trie_dollar_topics_only_match_explicit_first_levels() -> None:
    trie: TopicTrie[int] = TopicTrie()
    trie.add("#", 1)
    trie.add("+/x", 2)
    trie.add("$SYS/#", 3)
    trie.add("$SYS/+", 4)
    assert sorted(trie.match("$SYS/x")) == [3, 4]
    assert sorted(trie.match("y/x")) == [1, 2]


def test_trie_keeps_duplicates_and_removes_one_at_a_time() -> None:
    trie: TopicTrie[str] = TopicTrie()
    trie.add("a/+", "v")
    trie.add("a/+", "v")
    trie.add("a/b", "v")
    assert len(trie) == 3
    assert trie.match("a/b") == ["v", "v", "v"]
    assert trie.remove("a/+", "v") is True
    assert len(trie) == 2
    assert trie.match("a/b") == ["v", "v"]
    assert "a/+" in trie
    assert trie.remove("a/+", "v") is True
    assert "a/+" not in trie
    assert trie.remove("a/+", "v") is False
    assert trie.remove("a/+", "missing") is False
    assert trie.remove("never/added", "v") is False
    assert trie.remove("$share/", "v") is False
    assert len(trie) == 1


def test_trie_prunes_empty_branches() -> None:
    trie: TopicTrie[int] = TopicTrie()
    trie.add("a/b/c/d", 1)
    trie.add("a/+/#", 2)
    trie.remove("a/b/c/d", 1)
    trie.remove("a/+/#", 2)
    assert len(trie) == 0
    assert trie.filters() == []
    assert trie._root.is_empty()


def test_trie_shared_filters_are_keyed_by_their_filter_part() -> None:
    trie: TopicTrie[str] = TopicTrie()
    trie.add("$share/g1/s/+", "shared")
    trie.add("s/+", "plain")
    assert sorted(trie.match("s/1")) == ["plain", "shared"]
    assert "$share/other/s/+" in trie
    assert trie.filters() == ["s/+"]
    assert trie.remove("$share/g1/s/+", "shared") is True
    assert trie.match("s/1") == ["plain"]


def test_trie_contains_and_filters() -> None:
    trie: TopicTrie[int] = TopicTrie()
    for index, topic_filter in enumerate(["a", "a/b", "a/#", "+/+", "#", "/", "$SYS/#"]):
        trie.add(topic_filter, index)
    assert sorted(trie.filters()) == sorted(["a", "a/b", "a/#", "+/+", "#", "/", "$SYS/#"])
    assert "a/#" in trie
    assert "a/+" not in trie
    assert "b" not in trie
    assert "" not in trie
    assert 42 not in trie


def test_trie_add_validates_the_filter() -> None:
    trie: TopicTrie[int] = TopicTrie()
    with pytest.raises(InvalidTopicError, match=r"'#' must be the last level"):
        trie.add("a/#/b", 1)
    assert len(trie) == 0


def test_trie_handles_very_deep_filters() -> None:
    trie: TopicTrie[int] = TopicTrie()
    deep = "/".join(["x"] * 20000)
    trie.add(deep, 1)
    trie.add(deep + "/#", 2)
    assert sorted(trie.match(deep)) == [1, 2]
    assert sorted(trie.filters()) == [deep, deep + "/#"]
    assert trie.remove(deep, 1)


def test_trie_match_does_not_visit_unrelated_branches() -> None:
    """The cost of a match follows the matching branches, not the number of filters."""
    trie: TopicTrie[int] = TopicTrie()
    for index in range(5000):
        trie.add(f"devices/{index}/telemetry", index)
    trie.add("alerts/+", -1)

    visited = 0
    real_get = dict.get

    class CountingDict(dict[str, object]):
        def get(self, key: str, default: object = None) -> object:
            nonlocal visited
            visited += 1
            return real_get(self, key, default)

    def instrument(node: object) -> None:
        children = node.children  # type: ignore[attr-defined]
        node.children = CountingDict(children)  # type: ignore[attr-defined]
        for child in children.values():
            instrument(child)

    instrument(trie._root)
    assert trie.match("alerts/fire") == [-1]
    assert visited <= 3


# ---------------------------------------------------------------------------------------------
# property tests

_LEVELS = st.sampled_from(["a", "b", "c", "", "$x", "$SYS", "é"])
_topics = st.lists(_LEVELS, min_size=1, max_size=5).map("/".join).filter(bool)


@st.composite
def _filters(draw: st.DrawFn) -> str:
    levels = draw(st.lists(st.one_of(_LEVELS, st.just("+")), min_size=0, max_size=5))
    if not "/".join(levels) or draw(st.booleans()):  # an empty filter is invalid
        levels.append("#")
    text = "/".join(levels)
    if draw(st.integers(0, 4)) == 0:
        group = draw(st.sampled_from(["g", "group-1", "$g"]))
        text = f"$share/{group}/{text}"
    return text


@given(_filters())
def test_generated_filters_are_valid(topic_filter: str) -> None:
    assert validate_filter(topic_filter) == topic_filter


@given(_topics)
def test_generated_topics_are_valid(topic: str) -> None:
    assert validate_topic(topic) == topic


@settings(max_examples=300)
@given(st.lists(_filters(), max_size=12), st.lists(_topics, min_size=1, max_size=8))
def test_trie_match_agrees_with_matches(filters: list[str], topics: list[str]) -> None:
    trie: TopicTrie[int] = TopicTrie()
    for index, topic_filter in enumerate(filters):
        trie.add(topic_filter, index)
    for topic in topics:
        expected = sorted(i for i, f in enumerate(filters) if matches(f, topic))
        assert sorted(trie.match(topic)) == expected


@settings(max_examples=200)
@given(st.lists(_filters(), min_size=1, max_size=10), st.data())
def test_trie_remove_restores_agreement(filters: list[str], data: st.DataObject) -> None:
    trie: TopicTrie[int] = TopicTrie()
    for index, topic_filter in enumerate(filters):
        trie.add(topic_filter, index)
    removed = data.draw(st.sets(st.integers(0, len(filters) - 1)))
    for index in removed:
        assert trie.remove(filters[index], index)
    assert len(trie) == len(filters) - len(removed)
    kept = [i for i in range(len(filters)) if i not in removed]
    for topic in data.draw(st.lists(_topics, min_size=1, max_size=5)):
        expected = sorted(i for i in kept if matches(filters[i], topic))
        assert sorted(trie.match(topic)) == expected


_any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=30)
_topicish_text = st.text(st.sampled_from("ab/+#$\x00\t\ud800\ufffe"), max_size=12)


@given(st.one_of(_any_text, _topicish_text))
def test_random_strings_validate_or_raise_invalid_topic_error(text: str) -> None:
    for validate in (validate_topic, validate_filter):
        with contextlib.suppress(InvalidTopicError):
            assert validate(text) == text


@given(_topicish_text)
def test_a_valid_topic_is_also_a_valid_filter(text: str) -> None:
    try:
        validate_topic(text)
    except InvalidTopicError:
        return
    assert validate_filter(text) == text


@settings(max_examples=300)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("add"), _filters()),
            st.tuples(st.just("remove"), st.integers(0, 20)),
            st.tuples(st.just("match"), _topics),
        ),
        max_size=30,
    )
)
def test_trie_matches_stay_right_between_changes(ops: list[tuple[str, object]]) -> None:
    """Matches are remembered per topic: every add and remove must forget them."""
    trie: TopicTrie[int] = TopicTrie()
    stored: list[tuple[str, int]] = []
    for index, (op, arg) in enumerate(ops):
        if op == "add":
            assert isinstance(arg, str)
            trie.add(arg, index)
            stored.append((arg, index))
        elif op == "remove" and stored:
            assert isinstance(arg, int)
            topic_filter, value = stored.pop(arg % len(stored))
            assert trie.remove(topic_filter, value)
        elif op == "match":
            assert isinstance(arg, str)
            expected = sorted(v for f, v in stored if matches(f, arg))
            assert sorted(trie.match(arg)) == expected
            assert sorted(trie.match(arg)) == expected  # (the remembered answer)


def test_trie_remembers_a_topics_matches_until_it_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stream of messages on one topic walks the trie once, however many filters it holds."""
    trie: TopicTrie[int] = TopicTrie()
    for index in range(1000):
        trie.add(f"devices/{index}/+", index)
    walks = 0
    real_walk = TopicTrie._walk

    def counting_walk(self: TopicTrie[int], topic: str) -> list[int]:
        nonlocal walks
        walks += 1
        return real_walk(self, topic)

    monkeypatch.setattr(TopicTrie, "_walk", counting_walk)
    for _ in range(100):
        assert trie.match("devices/7/temp") == [7]
    assert walks == 1
    trie.add("devices/#", -1)
    assert sorted(trie.match("devices/7/temp")) == [-1, 7]
    assert walks == 2


def test_leaves_share_their_empty_containers_and_never_write_to_them() -> None:
    """A connection's trie is mostly leaves: they share one empty children dict and one empty
    value tuple until they need their own, and the shared ones stay empty."""
    from rxmqtt import topics

    trie: TopicTrie[int] = TopicTrie()
    trie.add("a/b", 1)
    trie.add("a/c/#", 2)
    leaf = trie._root.children["a"].children["b"]
    assert leaf.children is topics._NO_CHILDREN
    assert leaf.hash_values is topics._NONE_HERE
    trie.add("a/b/d", 3)  # the leaf gets children of its own
    trie.add("a/b/#", 4)
    assert leaf.children is not topics._NO_CHILDREN
    assert topics._NO_CHILDREN == {}
    assert topics._NONE_HERE == ()
    assert sorted(trie.match("a/b")) == [1, 4]
    assert sorted(trie.match("a/b/d")) == [3, 4]
    assert not trie.remove("a/b/x", 9)
    assert trie.remove("a/b/d", 3)
    assert sorted(trie.match("a/b/d")) == [4]
