"""The shortcuts the per-message path takes must be invisible: the same objects, the same
errors, as the long way round."""

from __future__ import annotations

import dataclasses
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rxmqtt import Message, PublishProperties
from rxmqtt._outcome import Outcome, settle_value
from rxmqtt.message import NO_PROPERTIES, checked_message, packet_id_of
from rxmqtt.topics import InvalidTopicError, validate_topic


@given(
    topic=st.text(min_size=1, max_size=20),
    payload=st.binary(max_size=20),
    qos=st.sampled_from([0, 1, 2]),
    retain=st.booleans(),
    properties=st.sampled_from(
        [NO_PROPERTIES, PublishProperties(content_type="json", subscription_identifiers=(3,))]
    ),
    packet_id=st.integers(0, 65535),
)
def test_checked_message_is_the_message_the_dataclass_builds(
    topic: str,
    payload: bytes,
    qos: int,
    retain: bool,
    properties: PublishProperties,
    packet_id: int,
) -> None:
    fast = checked_message(topic, payload, qos, retain, properties, packet_id)
    slow = Message(topic, payload, qos, retain, properties, _packet_id=packet_id)
    assert fast == slow
    assert repr(fast) == repr(slow)
    assert hash(fast) == hash(slow)
    assert packet_id_of(fast) == packet_id
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.topic = "changed"  # type: ignore[misc]


def test_checked_message_sets_every_field_message_has() -> None:
    """A field added to Message must be added to checked_message too."""
    fast = checked_message("t", b"p", 1, True, NO_PROPERTIES, 7)
    for field in dataclasses.fields(Message):
        getattr(fast, field.name)  # (an unset slot raises AttributeError)


def test_a_valid_topic_is_remembered_and_an_invalid_one_still_refused_each_time() -> None:
    assert validate_topic("hot/path") == "hot/path"
    assert validate_topic("hot/path") == "hot/path"
    for _ in range(2):
        with pytest.raises(InvalidTopicError, match="wildcards"):
            validate_topic("hot/+")
        with pytest.raises(TypeError, match="topic: must be a str"):
            validate_topic(b"hot/path")


def test_a_str_subclass_is_checked_even_when_its_text_was_seen() -> None:
    class Sneaky(str):
        pass

    validate_topic("seen/topic")
    assert validate_topic(Sneaky("seen/topic")) == "seen/topic"


def test_outcomes_share_one_settle_lock_and_still_serve_other_threads() -> None:
    """Outcomes skip reactivex's per-observable RLock and share one settle lock; a subscriber
    on another thread still gets the value exactly once, before or after it settles."""
    outcomes: list[Outcome[int]] = [Outcome() for _ in range(200)]
    got: list[int] = []
    lock = threading.Lock()

    def subscribe_all() -> None:
        for outcome in outcomes:
            outcome.subscribe(lambda value: _append(value))

    def _append(value: int) -> None:
        with lock:
            got.append(value)

    thread = threading.Thread(target=subscribe_all)
    thread.start()
    for index, outcome in enumerate(outcomes):
        settle_value(outcome, index)
    thread.join(10)
    assert not thread.is_alive()
    assert sorted(got) == list(range(200))


def test_remembering_topics_stays_bounded() -> None:
    """Every distinct topic published is remembered only up to a count and a length: a long
    or endless stream of new topics does not grow memory without bound."""
    from rxmqtt import topics

    for index in range(topics.VALID_TOPICS_REMEMBERED + 10):
        validate_topic(f"many/{index}")
    assert len(topics._VALID_TOPICS) <= topics.VALID_TOPICS_REMEMBERED
    long_topic = "x" * (topics.REMEMBERED_TOPIC_LENGTH + 1)
    assert validate_topic(long_topic) == long_topic
    assert long_topic not in topics._VALID_TOPICS
    trie: topics.TopicTrie[int] = topics.TopicTrie()
    trie.add("#", 1)
    for index in range(topics.MATCH_CACHE_SIZE + 10):
        assert trie.match(f"t/{index}") == [1]
    assert trie.match(long_topic) == [1]
    assert len(trie._matched) <= topics.MATCH_CACHE_SIZE
    assert long_topic not in trie._matched


@pytest.mark.parametrize(
    "block",
    [
        b"\x02\x0b\x05",  # Subscription Identifier 5 alone: remembered
        b"\x04\x03\x00\x01a",  # Content Type "a": paho's, never remembered
        b"\x02\x01\x01",  # Payload Format Indicator 1: paho's, never remembered
    ],
)
def test_a_remembered_property_block_decodes_as_it_did_the_first_time(block: bytes) -> None:
    """Property blocks of identifiers alone are remembered by their bytes: decoding one again
    gives the same properties, and no other block is taken for one."""
    from rxmqtt.engine._publish_codec import decode_publish

    body = b"\x00\x01t" + block + b"payload"
    first = decode_publish(0x30, body, True).message
    again = decode_publish(0x30, body, True).message
    assert again == first
    assert again.payload == b"payload"
    if block == b"\x02\x0b\x05":
        assert again.properties.subscription_identifiers == (5,)
    else:
        assert again.properties.subscription_identifiers == ()
