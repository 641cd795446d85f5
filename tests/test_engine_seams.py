"""The paho internals the engine hooks into are present, and they do what the engine needs.

The engine subclasses paho's client in two places (``_create_socket``: the socket is opened by
us, asynchronously, TLS included; ``_handle_pubrec``: the PUBREC reason code paho throws away is
kept, so a refused QoS 2 publish errors with the broker's code). A paho upgrade that moves them
must fail loudly, naming the paho version, not degrade silently.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import itertools
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt import _packet as paho_packet
from paho.mqtt.packettypes import PacketTypes

from rxmqtt import (
    Connection,
    ConnectionSettings,
    ConnectionState,
    LifecycleEvent,
    Message,
    PublishError,
    PublishProperties,
)
from rxmqtt import engine as rxmqtt_engine
from rxmqtt.engine._adapter_events import MessageReceived
from rxmqtt.engine._paho_client import QOS0_IDS_FROM, _plain_puback_code
from rxmqtt.testing import BrokerConfig, MosquittoBroker
from rxmqtt.testing._raw import mqtt_str, packet
from rxmqtt.testing.plugin import BrokerFactory
from rxmqtt.testing.recorder import Recorder

PAHO_VERSION = importlib.metadata.version("paho-mqtt")

_ids = itertools.count()

NOT_AUTHORIZED = 0x87

# user "writer" may write only allowed/#; everyone may read everything.
ACL = """\
user writer
topic write allowed/#
topic read #
"""


def test_paho_seams_present() -> None:
    assert rxmqtt_engine.paho_seams_present(), (
        f"paho-mqtt {PAHO_VERSION}: the internals rxmqtt.engine relies on "
        "(see paho_seams_present) are gone or renamed; adapt rxmqtt/engine/_paho_client.py "
        "or pin paho-mqtt to a version that has them"
    )


@pytest.mark.parametrize(
    "target",
    [
        "paho.mqtt.client.Client._create_socket",
        "paho.mqtt.client.Client._handle_pubrec",
        "paho.mqtt._packet.decode_pubrec",
        "paho.mqtt.client.Client._handle_pubackcomp",
        "paho.mqtt.client.Client._do_on_publish",
    ],
)
def test_paho_seams_present_notices_a_missing_seam(
    monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    monkeypatch.delattr(target)
    assert not rxmqtt_engine.paho_seams_present()
    name = target.rsplit(".", 1)[1]
    assert any(name in problem for problem in rxmqtt_engine.missing_paho_seams())


def test_every_method_the_adapter_overrides_is_checked() -> None:
    """A new override of a paho private method must be listed in the seam check."""
    from rxmqtt.engine._paho_client import _PahoClient
    from rxmqtt.engine._seam_check import ADAPTER_NAMES, METHODS

    own = {name for name in vars(_PahoClient) if not name.startswith("__")}
    assert own - set(METHODS) - set(ADAPTER_NAMES) == set()


def test_a_changed_signature_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import paho.mqtt.client as paho

    def send_puback(self: Any, mid: int, reason_code: int) -> None:
        raise AssertionError("never called")

    monkeypatch.setattr(paho.Client, "_send_puback", send_puback)
    assert rxmqtt_engine.missing_paho_seams() == [
        "Client._send_puback('mid', 'reason_code') no longer takes ('mid')"
    ]


def test_a_changed_packet_record_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import paho.mqtt.client as paho

    queue = paho.Client._packet_queue

    def packet_queue(
        self: Any, command: int, packet: Any, mid: int, qos: int, info: Any = None
    ) -> Any:
        rc = queue(self, command, packet, mid, qos, info)
        self._out_packet[-1]["retries"] = 0
        return rc

    monkeypatch.setattr(paho.Client, "_packet_queue", packet_queue)
    (problem,) = rxmqtt_engine.missing_paho_seams()
    assert problem.startswith("Client._out_packet entries have keys")
    assert "retries" in problem


def test_a_new_field_of_pahos_message_record_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """The adapter builds paho's session records (MQTTMessage) itself: a field paho adds would
    be left unset, so the seam check names it."""
    import paho.mqtt.client as paho

    monkeypatch.setattr(paho.MQTTMessage, "__slots__", (*paho.MQTTMessage.__slots__, "expiry"))
    (problem,) = rxmqtt_engine.missing_paho_seams()
    assert problem.startswith("MQTTMessage has the slots")
    assert "expiry" in problem


def test_the_adapters_session_record_is_the_one_paho_makes() -> None:
    import paho.mqtt.client as paho

    from rxmqtt.engine._paho_client import _session_message

    ours = _session_message(5, b"t/x", b"p", 1, True, None)
    theirs = paho.MQTTMessage(5, b"t/x")
    theirs.payload, theirs.qos, theirs.retain, theirs.properties = b"p", 1, True, None
    for name in paho.MQTTMessage.__slots__:
        if name not in ("timestamp", "info"):
            assert getattr(ours, name) == getattr(theirs, name), name
    assert ours.topic == "t/x"


def test_a_paho_name_the_adapter_would_shadow_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import paho.mqtt.client as paho

    monkeypatch.setattr(paho.Client, "send_publish", None, raising=False)
    assert rxmqtt_engine.missing_paho_seams() == [
        "Client.send_publish now exists in paho (the adapter would shadow it)"
    ]


@pytest.mark.parametrize(
    "module",
    [
        "_engine",
        "_socket_pump",
        "_publish_codec",
        "_watchdog",
        "_linger",
        "_phase",
        "_attempt",
        "_disconnects",
        "_adapter_events",
        "_sockets",
        "_websocket",
        "_nonblocking",
        "_auth_exchange",
        "_auth_driver",
    ],
)
def test_only_the_adapter_imports_paho(module: str) -> None:
    """The state machine, the socket pump and the codec read paho only through the adapter's
    events and methods: none of them imports paho itself."""
    import ast
    from pathlib import Path

    path = Path(rxmqtt_engine.__file__).parent / f"{module}.py"
    imported: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            imported.append(node.module)
    assert [name for name in imported if name.split(".")[0] == "paho"] == []


def test_engine_knows_the_paho_version() -> None:
    major, minor = (int(part) for part in PAHO_VERSION.split(".")[:2])
    assert (major, minor) == rxmqtt_engine.PAHO_VERSION


async def test_starting_without_the_seams_fails_loudly_naming_the_paho_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr("paho.mqtt.client.Client._create_socket")
    conn = Connection(ConnectionSettings(host="127.0.0.1", port=1, client_id="seamless"))
    try:
        with pytest.raises(RuntimeError, match=rf"paho-mqtt {PAHO_VERSION}") as raised:
            conn.start()
        assert "Client._create_socket() is gone" in str(raised.value)
    finally:
        await conn.close()


# ---------------------------------------------------------------- behaviour through the seams


def _writer(broker: MosquittoBroker) -> ConnectionSettings:
    return ConnectionSettings(
        host=broker.host,
        port=broker.port,
        client_id=f"seams-{next(_ids)}",
        username="writer",
        password="pw",
    )


@pytest.mark.broker
@pytest.mark.parametrize("qos", [1, 2])
async def test_publish_refused_by_acl_errors_with_not_authorized(
    rxmqtt_mosquitto_factory: BrokerFactory, qos: int
) -> None:
    """Mosquitto 2.0 answers an MQTT 5 PUBLISH to a topic the ACL denies with PUBACK (QoS 1) or
    PUBREC (QoS 2) 0x87 Not authorized. paho ignores the PUBREC code; the engine's seam keeps it."""
    broker = rxmqtt_mosquitto_factory(BrokerConfig(users={"writer": "pw"}, acl=ACL))
    conn = Connection(_writer(broker))
    events: Recorder[LifecycleEvent] = Recorder(conn.lifecycle)
    async with conn:
        await conn.wait_for(ConnectionState.CONNECTED, 5)
        with pytest.raises(PublishError) as info:
            await asyncio.wait_for(conn.publish("denied/x", b"no", qos=qos), 5)
        assert info.value.reason_code == NOT_AUTHORIZED, info.value
        assert info.value.topic == "denied/x"
        assert "0x87" in str(info.value)

        ok = await asyncio.wait_for(conn.publish("allowed/x", b"yes", qos=qos), 5)
        assert ok.reason_code in (0x00, 0x10)
        assert conn.state is ConnectionState.CONNECTED, "a refused publish is not a lost link"
    kinds = [type(e).__name__ for e in events.items]
    assert kinds == ["Connecting", "Connected", "Disconnected", "Closed"], kinds


@pytest.mark.broker
async def test_refused_qos2_publish_is_not_delivered_and_later_ones_are(
    rxmqtt_mosquitto_factory: BrokerFactory,
) -> None:
    broker = rxmqtt_mosquitto_factory(BrokerConfig(users={"writer": "pw"}, acl=ACL))
    async with Connection(_writer(broker)) as pub, Connection(_writer(broker)) as sub:
        got: Recorder[Message] = Recorder(sub.messages("#", qos=2))
        await sub.wait_for(ConnectionState.CONNECTED, 5)
        await pub.wait_for(ConnectionState.CONNECTED, 5)
        for attempt in range(50):  # until the subscription is live
            await pub.publish("allowed/probe", str(attempt).encode(), qos=1)
            try:
                await got.wait_for_item(lambda m: m.topic == "allowed/probe", 0.1)
                break
            except TimeoutError:
                continue
        results = await asyncio.gather(
            *(pub.publish("denied/q2", str(i).encode(), qos=2) for i in range(5)),
            return_exceptions=True,
        )
        assert all(isinstance(r, PublishError) and r.reason_code == 0x87 for r in results), results
        done = await asyncio.wait_for(pub.publish("allowed/after", b"after", qos=2), 5)
        assert done.reason_code == 0
        await got.wait_for_item(lambda m: m.topic == "allowed/after", 5)
        assert not [m for m in got.items if m.topic.startswith("denied/")]
        assert sum(m.topic == "allowed/after" for m in got.items) == 1


@pytest.mark.broker
async def test_qos0_publish_to_a_denied_topic_resolves_as_written(
    rxmqtt_mosquitto_factory: BrokerFactory,
) -> None:
    """QoS 0 has no acknowledgement: Mosquitto drops it silently, so the result is 'written'."""
    broker = rxmqtt_mosquitto_factory(BrokerConfig(users={"writer": "pw"}, acl=ACL))
    async with Connection(_writer(broker)) as conn:
        await conn.wait_for(ConnectionState.CONNECTED, 5)
        result = await asyncio.wait_for(conn.publish("denied/q0", b"lost", qos=0), 5)
        assert (result.qos, result.reason_code) == (0, 0)


@pytest.mark.broker
async def test_no_paho_thread_and_everything_on_the_loop_thread(
    rxmqtt_mosquitto: MosquittoBroker,
) -> None:
    """The socket seam means paho never runs its own network thread: every stream emits on the
    loop's thread, and connecting adds no thread."""
    loop_thread = threading.get_ident()
    threads_before = {t.ident for t in threading.enumerate()}
    seen: set[int] = set()
    conn = Connection(
        ConnectionSettings(
            host=rxmqtt_mosquitto.host, port=rxmqtt_mosquitto.port, client_id="seams-thread"
        )
    )
    conn.lifecycle.subscribe(lambda _: seen.add(threading.get_ident()))
    async with conn:
        got: Recorder[Message] = Recorder(conn.messages("loop/#", qos=1))
        await conn.wait_for(ConnectionState.CONNECTED, 5)
        conn.messages("loop/#", qos=1).subscribe(lambda _: seen.add(threading.get_ident()))
        for _ in range(50):
            await conn.publish("loop/x", b"1", qos=1)
            try:
                await got.wait_for_item(lambda m: True, 0.1)
                break
            except TimeoutError:
                continue
        await got.wait_for_item(lambda m: True, 1)
        new_threads = [
            t.name
            for t in threading.enumerate()
            if t.ident not in threads_before and not t.name.startswith("asyncio_")
        ]
        assert new_threads == [], f"unexpected threads: {new_threads}"
    assert seen == {loop_thread}


# ---------------------------------------------------------------- the PUBACK fast path


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"\x00\x07", 0x00),  # packet id only: success
        (b"\x00\x07\x10", 0x10),  # No matching subscribers
        (b"\x00\x07\x87\x00", 0x87),  # Not authorized, empty properties
        (b"\x00\x07\x00\x00", 0x00),
    ],
)
def test_plain_puback_bodies_are_decoded_without_paho(body: bytes, code: int) -> None:
    reason = _plain_puback_code(body)
    assert reason is not None
    assert reason.value == code
    assert reason.packetType == PacketTypes.PUBACK


@pytest.mark.parametrize(
    "body",
    [
        b"\x00\x07\x00\x03\x1f\x00\x00",  # a Reason String property: paho decodes it
        b"\x00\x07\x05",  # 0x05 is no PUBACK code: paho's decoder reports it malformed
        b"\x00\x07\x00\x01",  # a property length with no property
    ],
)
def test_pubacks_with_properties_or_odd_codes_are_left_to_paho(body: bytes) -> None:
    assert _plain_puback_code(body) is None


@pytest.mark.broker
async def test_pubacks_resolve_publishes_without_paho_decoding_them(
    rxmqtt_mosquitto_factory: BrokerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mosquitto's PUBACKs carry no properties: each is decoded by the fast path (paho's
    decode_puback, which builds a Properties and two ReasonCodes per ack, is never called), and
    every code still reaches the publish's outcome."""
    calls: list[bytes] = []
    paho_decode = paho_packet.decode_puback

    def counting_decode(header: int, packet: bytes, protocol: Any) -> object:
        calls.append(bytes(packet))
        return paho_decode(header, packet, protocol)

    monkeypatch.setattr(paho_packet, "decode_puback", counting_decode)
    broker = rxmqtt_mosquitto_factory(BrokerConfig(users={"writer": "pw"}, acl=ACL))
    async with Connection(_writer(broker)) as pub, Connection(_writer(broker)) as sub:
        got: Recorder[Message] = Recorder(sub.messages("allowed/fast", qos=1))
        await sub.wait_for(ConnectionState.CONNECTED, 5)
        await pub.wait_for(ConnectionState.CONNECTED, 5)
        nobody = await asyncio.wait_for(pub.publish("allowed/nobody", b"x", qos=1), 5)
        assert (nobody.reason_code, nobody.reason) == (0x10, "No matching subscribers")
        with pytest.raises(PublishError) as refused:
            await asyncio.wait_for(pub.publish("denied/fast", b"x", qos=1), 5)
        assert refused.value.reason_code == NOT_AUTHORIZED
        for attempt in range(50):  # until the subscription is live
            result = await asyncio.wait_for(pub.publish("allowed/fast", b"%d" % attempt, qos=1), 5)
            if result.reason_code == 0:
                break
        assert (result.reason_code, result.reason) == (0x00, "Success")
        await got.wait_for_item(lambda m: True, 5)
    assert calls == [], "a plain PUBACK went through paho's decoder"


# ---------------------------------------------------------------- the whole-packet reader


def _publish_packet(topic: str, payload: bytes) -> bytes:
    """A QoS 0 MQTT 5 PUBLISH without properties."""
    return packet(0x30, mqtt_str(topic) + b"\x00" + payload)


def _client_with_buffer(data: bytes) -> tuple[Any, list[tuple[str, bytes]]]:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from rxmqtt.engine._paho_client import _PahoClient

    client = _PahoClient(CallbackAPIVersion.VERSION2, client_id="reader", protocol=paho.MQTTv5)
    got: list[tuple[str, bytes]] = []

    def events(event: object) -> None:
        assert isinstance(event, MessageReceived), event
        got.append((event.message.topic, event.message.payload))

    client.events = events
    client._read_buf, client._read_pos = data, 0
    return client, got


def test_whole_buffered_packets_are_handled_without_paho_reader(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Packets that lie whole in the read buffer skip paho's byte-at-a-time reader, all in one
    read; a packet still arriving is left to it, untouched."""
    first, second = _publish_packet("a/1", b"one"), _publish_packet("a/2", b"two")
    partial = _publish_packet("a/3", b"three")[:6]
    client, got = _client_with_buffer(first + second + partial)

    def paho_reader(_self: object) -> int:
        raise AssertionError("paho's reader was used for a whole buffered packet")

    monkeypatch.setattr("paho.mqtt.client.Client._packet_read", paho_reader)
    assert client._packet_read() == 0
    assert got == [("a/1", b"one"), ("a/2", b"two")]
    assert client._in_packet["command"] == 0, "the packet record is reset after each"
    assert client._handle_buffered_packets() is None, "a partial packet waits for paho's reader"
    assert client._read_buf[client._read_pos :] == partial


def test_a_fifth_length_byte_is_left_to_paho_to_refuse() -> None:
    client, got = _client_with_buffer(b"\x30\xff\xff\xff\xff\x01" + b"x" * 10)
    assert client._handle_buffered_packets() is None
    assert got == []


@settings(max_examples=150, deadline=None)
@given(
    messages=st.lists(
        st.tuples(
            st.text(alphabet="abc/xyz", min_size=1, max_size=20).filter(
                lambda t: "+" not in t and "#" not in t
            ),
            st.builds(
                lambda size, pattern: (pattern * (size // len(pattern) + 1))[:size],
                st.integers(min_value=0, max_value=20_000),
                st.binary(min_size=1, max_size=8),
            ),
        ),
        min_size=1,
        max_size=12,
    ),
    cuts=st.lists(st.integers(min_value=1, max_value=70_000), max_size=20),
)
def test_the_reader_delivers_every_packet_however_the_stream_is_cut(
    messages: list[tuple[str, bytes]], cuts: list[int]
) -> None:
    """The byte stream arrives in arbitrary chunks (as recv() returns them): whole packets take
    the fast path, split ones paho's reader; together they deliver every packet once, in order."""
    stream = b"".join(_publish_packet(t, p) for t, p in messages)
    bounds = sorted({c for c in cuts if c < len(stream)} | {0, len(stream)})
    chunks = [stream[a:b] for a, b in itertools.pairwise(bounds)]
    client, got = _client_with_buffer(b"")

    def recv(_bufsize: int) -> bytes:
        if not chunks:
            raise BlockingIOError
        return chunks.pop(0)

    client._sock_recv_raw = recv
    for _ in range(10 * len(stream)):
        if client._packet_read() not in (0, -1):  # success, or "wait for more bytes"
            raise AssertionError("the reader reported an error for a valid stream")
        if not chunks and not client.has_buffered_input and client._in_packet["command"] == 0:
            break
    assert got == messages


# ---------------------------------------------------------------- the one PUBLISH route


class _QueueOnlySocket:
    def close(self) -> None:
        pass


def _offline_writer(v311: bool = False) -> Any:
    """A client that queues packets without a socket to write them to."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from rxmqtt.engine._paho_client import _PahoClient

    protocol = paho.MQTTv311 if v311 else paho.MQTTv5
    client = _PahoClient(CallbackAPIVersion.VERSION2, client_id="writer", protocol=protocol)
    client._sock = _QueueOnlySocket()  # "connected": packets are queued, never written
    client.on_socket_register_write = lambda *_: None
    return client


def _paho_properties(content_type: str | None) -> Any:
    from paho.mqtt.properties import Properties

    if content_type is None:
        return None
    props = Properties(PacketTypes.PUBLISH)
    props.ContentType = content_type
    props.UserProperty = [("k", "v")]
    return props


@settings(max_examples=200, deadline=None)
@given(
    topic=st.text(min_size=1, max_size=300).filter(
        lambda t: "+" not in t and "#" not in t and "\x00" not in t
    ),
    size=st.sampled_from([0, 1, 100, 124, 125, 16_380, 16_383, 20_000, 2_097_150]),
    qos=st.sampled_from([0, 1, 2]),
    retain=st.booleans(),
    content_type=st.sampled_from([None, "json"]),
    v311=st.booleans(),
)
def test_every_publish_is_encoded_exactly_as_paho_encodes_it_and_held_as_paho_holds_it(
    topic: str, size: int, qos: int, retain: bool, content_type: str | None, v311: bool
) -> None:
    """Our encoder writes the very bytes paho would (remaining lengths of 1-4 bytes, packet
    ids, properties; MQTT 3.1.1 without a property block), and a QoS 1/2 publish enters paho's
    session exactly as paho's publish() enters it, so paho's acks and re-sends work on it."""
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    content_type = None if v311 else content_type
    ours, theirs = _offline_writer(v311), _offline_writer(v311)
    mid = ours.send_publish(topic, payload, qos, retain, _paho_properties(content_type))
    theirs.publish(topic, payload, qos, retain, _paho_properties(content_type))
    assert mid == (1 if qos else QOS0_IDS_FROM), "QoS 0 has no packet id: one of our own"
    assert ours._out_packet[-1]["packet"] == theirs._out_packet[-1]["packet"]
    assert ours._out_packet[-1]["mid"] == (theirs._out_packet[-1]["mid"] if qos else mid)
    assert ours._out_packet[-1]["qos"] == theirs._out_packet[-1]["qos"]
    assert ours._inflight_messages == theirs._inflight_messages
    assert list(ours._out_messages) == list(theirs._out_messages)
    for held, paho_held in zip(
        ours._out_messages.values(), theirs._out_messages.values(), strict=True
    ):
        fields = ("mid", "topic", "payload", "qos", "retain", "dup", "state")
        assert [getattr(held, f) for f in fields] == [getattr(paho_held, f) for f in fields]
        assert (held.properties is None) == (paho_held.properties is None)


def test_a_publish_beyond_the_in_flight_limit_waits_as_paho_makes_it_wait() -> None:
    """One QoS 1/2 publish at a time (isolating a poison publish): the second is held back
    (queued) until the first is acknowledged, as paho's publish() holds it."""
    ours, theirs = _offline_writer(), _offline_writer()
    for client in (ours, theirs):
        client.one_publish_at_a_time(True)
    for qos in (1, 2):
        ours.send_publish("t", b"x", qos, False, None)
        theirs.publish("t", b"x", qos, False)
    assert [m.state for m in ours._out_messages.values()] == [
        m.state for m in theirs._out_messages.values()
    ]
    assert len(ours._out_packet) == len(theirs._out_packet) == 1


@pytest.mark.broker
async def test_no_publish_enters_paho_publish_and_every_qos_arrives_through_our_decoder(
    rxmqtt_mosquitto: MosquittoBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One route each way: every publish (QoS 0, 1, 2, with and without properties) is
    encoded by the adapter, never by paho's publish(); every received one (QoS 2 included) is
    decoded by the adapter, never by paho's decode_publish; each arrives once, intact."""
    import paho.mqtt.client as paho

    used_paho: list[str] = []
    paho_publish = paho.Client.publish
    paho_decode = paho_packet.decode_publish

    def counting_publish(self: Any, topic: str, *args: Any, **kwargs: Any) -> Any:
        used_paho.append(f"publish {topic}")
        return paho_publish(self, topic, *args, **kwargs)

    def counting_decode(*args: Any) -> Any:
        used_paho.append("decode_publish")
        return paho_decode(*args)

    monkeypatch.setattr(paho.Client, "publish", counting_publish)
    monkeypatch.setattr(paho_packet, "decode_publish", counting_decode)
    settings_ = ConnectionSettings(
        host=rxmqtt_mosquitto.host, port=rxmqtt_mosquitto.port, client_id="one-route"
    )
    async with Connection(settings_) as conn:
        got: Recorder[Message] = Recorder(conn.messages("route/#", qos=2))
        await conn.wait_for(ConnectionState.CONNECTED, 5)
        for attempt in range(50):  # until the subscription is live
            await conn.publish("route/probe", str(attempt), qos=1)
            try:
                await got.wait_for_item(lambda m: True, 0.1)
                break
            except TimeoutError:
                continue
        typed = PublishProperties(content_type="json", user_properties=(("k", "v"),))
        for qos in (0, 1, 2):
            await conn.publish(f"route/plain{qos}", b"p%d" % qos, qos=qos)
            await conn.publish(f"route/typed{qos}", b"{}", qos=qos, properties=typed)
        await got.wait_for_item(lambda m: m.topic == "route/typed2", 5)
        await got.wait_for_item(lambda m: m.topic == "route/plain2", 5)
        await got.wait_for_item(lambda m: m.topic == "route/typed1", 5)
        await got.wait_for_item(lambda m: m.topic == "route/plain1", 5)
    for qos in (1, 2):  # (QoS 0 may legitimately be lost; on loopback it is not)
        plain = [m for m in got.items if m.topic == f"route/plain{qos}"]
        assert [(m.payload, m.qos) for m in plain] == [(b"p%d" % qos, qos)]
        (typed_got,) = [m for m in got.items if m.topic == f"route/typed{qos}"]
        assert typed_got.properties.content_type == "json"
        assert typed_got.properties.user_properties == (("k", "v"),)
    assert used_paho == []


def _publish_qos2(mid: int, topic: str, payload: bytes, *, dup: bool = False) -> bytes:
    return packet(
        0x34 | (0x08 if dup else 0), mqtt_str(topic) + bytes((mid >> 8, mid & 0xFF, 0)) + payload
    )


def test_a_qos2_publish_is_delivered_once_however_often_it_is_re_sent() -> None:
    """QoS 2 is delivered on its PUBLISH; a re-sent PUBLISH (DUP) before the PUBREL is answered
    with PUBREC again but not delivered again; after the PUBREL paho completes with PUBCOMP,
    and the packet id is free for a new message."""
    first = _publish_qos2(7, "q2/a", b"one")
    client, got = _client_with_buffer(first + _publish_qos2(7, "q2/a", b"one", dup=True))
    client._sock = _QueueOnlySocket()
    client.on_socket_register_write = lambda *_: None
    assert client._packet_read() == 0  # (both: whole packets are read in one pass)
    assert got == [("q2/a", b"one")]
    pubrecs = [bytes(p["packet"]) for p in client._out_packet]
    assert pubrecs == [b"\x50\x02\x00\x07"] * 2
    client._out_packet.clear()
    client._read_buf, client._read_pos = (
        packet(0x62, b"\x00\x07") + _publish_qos2(7, "q2/b", b"two"),
        0,
    )
    assert client._packet_read() == 0  # PUBREL, then the new PUBLISH
    answers = [bytes(p["packet"]) for p in client._out_packet]
    assert answers == [b"\x70\x02\x00\x07", b"\x50\x02\x00\x07"]  # PUBCOMP, PUBREC
    assert got == [("q2/a", b"one"), ("q2/b", b"two")]


# ---------------------------------------------------------------- batched writes, direct acks


def _socketpair_writer() -> tuple[Any, Any, list[object]]:
    """A client "connected" through a socketpair (the far end returned), recording events."""
    import socket

    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from rxmqtt.engine._paho_client import _PahoClient

    near, far = socket.socketpair()
    near.setblocking(False)
    client = _PahoClient(CallbackAPIVersion.VERSION2, client_id="batch", protocol=paho.MQTTv5)
    client._sock = near
    client.on_socket_register_write = lambda *_: None
    events: list[object] = []
    client.events = events.append
    return client, far, events


def test_queued_packets_go_out_in_one_send_and_qos0_publishes_are_told_in_one_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under load paho would write one packet per send() and call on_publish (building a
    ReasonCode and a Properties) for each QoS 0 publish; the adapter joins them and reports the
    written QoS 0 publishes, in order, in one PublishesWritten event."""
    from rxmqtt.engine._adapter_events import PublishesWritten

    client, far, events = _socketpair_writer()
    client.on_publish = lambda *_: pytest.fail("on_publish is not how writes are told")
    sends: list[int] = []
    real_send = client._sock_send

    def counting_send(buf: bytes) -> int:
        sends.append(len(buf))
        return int(real_send(buf))

    monkeypatch.setattr(client, "_sock_send", counting_send)
    mids = [client.send_publish("w/0", b"zero", 0, False, None) for _ in range(3)]
    qos1 = client.send_publish("w/1", b"one", 1, False, None)
    client._send_puback(9)
    expected = b"".join(bytes(entry["packet"]) for entry in client._out_packet)
    try:
        assert client._packet_write() == 0
        assert len(sends) == 1, sends
        assert far.recv(65536) == expected
        assert events == [PublishesWritten(tuple(mids))]
        assert qos1 not in mids
        assert qos1 in client._out_messages, "a QoS 1 publish waits for its PUBACK"
        assert not client._out_packet
    finally:
        client._sock.close()
        far.close()


def test_a_plain_puback_completes_its_publish_without_paho_and_sends_the_next_held_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A PUBACK without properties takes the publish out of paho's session (not through
    paho's _do_on_publish, with its locks and per-message condition), frees the in-flight slot
    and, one publish at a time, sends the one held back; the engine hears PublishCompleted."""
    import paho.mqtt.client as paho

    from rxmqtt.engine._adapter_events import PublishCompleted, PublishesAcknowledged

    monkeypatch.setattr(
        paho.Client, "_do_on_publish", lambda *_: pytest.fail("paho's _do_on_publish was used")
    )
    client, far, events = _socketpair_writer()
    try:
        client.one_publish_at_a_time(True)
        first = client.send_publish("a/1", b"1", 1, False, None)
        second = client.send_publish("a/2", b"2", 1, False, None)
        assert client._out_messages[second].state == paho.mqtt_ms_queued
        client._out_packet.clear()
        client._read_buf, client._read_pos = packet(0x40, bytes((0, first))), 0
        assert client._packet_read() == 0
        assert events == [PublishesAcknowledged((PublishCompleted(first, 1, 0, "Success"),))]
        assert list(client._out_messages) == [second]
        assert client._out_messages[second].state == paho.mqtt_ms_wait_for_puback
        assert client._inflight_messages == 1
        assert [entry["mid"] for entry in client._out_packet] == [second], "sent on the ack"
    finally:
        client._sock.close()
        far.close()


def test_pubacks_read_together_are_told_together_and_before_any_other_packet() -> None:
    """PUBACKs read in one pass reach the engine in one event (the publisher refills its
    window once), but never after a packet that followed them: a SUBACK between two runs of
    PUBACKs splits them, in order."""
    from rxmqtt.engine._adapter_events import (
        PublishCompleted,
        PublishesAcknowledged,
        SubackReceived,
    )

    client, far, events = _socketpair_writer()
    client.on_subscribe = lambda _c, _u, mid, codes, _p: events.append(
        SubackReceived(mid, tuple((c.value, str(c)) for c in codes))
    )
    try:
        mids = [client.send_publish("a", b"x", 1, False, None) for _ in range(3)]
        client._read_buf = b"".join(
            [
                packet(0x40, bytes((0, mids[0]))),
                packet(0x40, bytes((0, mids[1]))),
                packet(0x90, b"\x00\x09\x00\x01"),  # SUBACK 9: granted QoS 1
                packet(0x40, bytes((0, mids[2]))),
            ]
        )
        client._read_pos = 0
        assert client._packet_read() == 0
        done = [PublishCompleted(mid, 1, 0, "Success") for mid in mids]
        assert events == [
            PublishesAcknowledged((done[0], done[1])),
            SubackReceived(9, ((1, "Granted QoS 1"),)),
            PublishesAcknowledged((done[2],)),
        ]
        assert not client._out_messages
    finally:
        client._sock.close()
        far.close()


def test_the_first_packet_of_a_read_takes_the_whole_packet_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An empty buffer is filled with one recv() and every whole packet in it handled at once,
    the first one included (paho's byte-at-a-time reader used to take each read's first)."""
    import socket

    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from rxmqtt.engine._adapter_events import MessageReceived
    from rxmqtt.engine._paho_client import _PahoClient

    near, far = socket.socketpair()
    near.setblocking(False)
    client = _PahoClient(CallbackAPIVersion.VERSION2, client_id="fill", protocol=paho.MQTTv5)
    client._sock = near
    got: list[str] = []
    client.events = lambda event: (
        got.append(event.message.topic) if isinstance(event, MessageReceived) else None
    )

    def paho_reader(_self: object) -> int:
        raise AssertionError("paho's reader was used for a whole packet")

    monkeypatch.setattr(paho.Client, "_packet_read", paho_reader)
    try:
        far.sendall(b"".join(packet(0x30, mqtt_str(f"f/{i}") + b"\x00x") for i in range(3)))
        assert client._packet_read() == 0
        assert got == ["f/0", "f/1", "f/2"]
        assert client._packet_read() == paho.MQTT_ERR_AGAIN, "nothing more to read"
        far.close()
        assert client._packet_read() == paho.MQTT_ERR_CONN_LOST, "the peer closed"
    finally:
        near.close()
