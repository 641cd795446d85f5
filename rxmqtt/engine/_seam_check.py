"""What the paho adapter (``_paho_client``) relies on inside paho, checked against the paho that
is installed: method signatures, the key layouts of its packet records, its message states, and
that none of the adapter's own names shadow one of paho's. ``Engine`` refuses to start, naming
each missing piece, when something is off (a paho release outside the verified range)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import inspect
from collections.abc import Mapping
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

METHODS: dict[str, tuple[str, ...]] = {
    # overridden by the adapter
    "_sock_recv": ("bufsize",),
    "_sock_send": ("buf",),
    "_sock_close": (),
    "_create_socket": (),
    "_handle_connack": (),
    "_messages_reconnect_reset_out": (),
    "_packet_read": (),
    "_packet_handle": (),
    "_handle_publish": (),
    "_packet_write": (),
    "_handle_pubackcomp": ("cmd",),
    "_handle_pubrec": (),
    "_handle_pubrel": (),
    "_send_pingreq": (),
    # called by the adapter
    "_check_clean_session": (),
    "_send_puback": ("mid",),
    "_send_pubrec": ("mid",),
    "_send_pubcomp": ("mid",),
    "_mid_generate": (),
    "_packet_queue": ("command", "packet", "mid", "qos", "info"),
    "_do_on_publish": ("mid", "reason_code", "properties"),
    "_update_inflight": (),
    "_call_socket_register_write": (),
    # relied on unchanged: without manual acks, paho's PUBREL handling pops the _in_messages
    # record and hands it to _handle_on_message, which (no on_message set) delivers nothing
    "_handle_on_message": ("message",),
}
"""paho's private methods the adapter overrides or calls, with their parameters (after self)."""

ATTRIBUTES = (
    "_in_packet",
    "_out_packet",
    "_out_messages",
    "_out_message_mutex",
    "_in_messages",
    "_in_message_mutex",
    "_inflight_messages",
    "_msgtime_mutex",
    "_max_inflight_messages",
    "_last_bytes_received",
    "_last_msg_out",
    "_keepalive",
    "_ping_t",
    "_manual_ack",
    "_protocol",
    "_userdata",
    "_sock",
)
"""paho's private attributes the adapter reads or writes (set by ``Client.__init__``)."""

IN_PACKET_KEYS = frozenset(
    {
        "command",
        "have_remaining",
        "remaining_count",
        "remaining_mult",
        "remaining_length",
        "packet",
        "to_process",
        "pos",
    }
)
"""``Client._in_packet``: the record of the packet being read (the adapter builds whole ones)."""

OUT_PACKET_KEYS = frozenset({"command", "mid", "qos", "pos", "to_process", "packet", "info"})
"""An entry of ``Client._out_packet``: a packet queued for writing (the adapter batches them)."""

MESSAGE_SLOTS = frozenset(
    {"_topic", "dup", "info", "mid", "payload", "properties", "qos", "retain", "state", "timestamp"}
)
"""``MQTTMessage``'s fields: the adapter builds paho's session records itself, setting each."""

MESSAGE_STATES = (
    "mqtt_ms_publish",
    "mqtt_ms_queued",
    "mqtt_ms_wait_for_puback",
    "mqtt_ms_wait_for_pubrec",
    "mqtt_ms_wait_for_pubcomp",
    "mqtt_ms_resend_pubrel",
    "mqtt_ms_wait_for_pubrel",
)
"""The states of ``Client._out_messages`` entries the engine and the adapter look at."""

ADAPTER_NAMES = (
    "events",
    "_read_buf",
    "_read_pos",
    "_sock_recv_raw",
    "_refuse",
    "_accept",
    "_incoming_size",
    "_incoming_too_large",
    "_handle_buffered_packets",
    "_handle_whole",
    "_publish_received",
    "_puback_received",
    "_settle_puback",
    "_fill_read_buffer",
    "_qos0_ids",
    "_packet_too_large",
    "prepared_socket",
    "announced_maximum_packet_size",
    "has_buffered_input",
    "one_publish_at_a_time",
    "forget_lost_session",
    "send_publish",
    "acknowledge",
    "held_mids",
    "mids_awaiting_ack",
    "held_qos",
    "any_held_back",
    "forget_message",
    "forget_all_messages",
    "keepalive_check_due",
    "ping_sent_at",
    "close_socket",
    "auth_sink",
    "_handle_auth",
    "send_auth",
    "send_disconnect_now",
)
"""The adapter's own members: a paho release that adds one of these names would be shadowed."""


def _parameters(function: Any) -> tuple[str, ...]:
    return tuple(inspect.signature(function).parameters)[1:]


def missing_paho_seams() -> list[str]:
    """Each piece of paho the adapter relies on that the installed paho lacks (or has changed),
    in words; empty when all are there."""
    problems: list[str] = []
    if importlib.util.find_spec("paho.mqtt.exception") is None:
        problems.append("paho.mqtt.exception (MalformedPacket) is gone")
    for name, expected in METHODS.items():
        method = getattr(paho.Client, name, None)
        if method is None:
            problems.append(f"Client.{name}() is gone")
        elif _parameters(method) != expected:
            problems.append(
                f"Client.{name}{_parameters(method)} no longer takes {expected}".replace(",)", ")")
            )
    for name in ADAPTER_NAMES:
        if hasattr(paho.Client, name):
            problems.append(f"Client.{name} now exists in paho (the adapter would shadow it)")
    for name in MESSAGE_STATES:
        if not hasattr(paho, name):
            problems.append(f"paho.mqtt.client.{name} is gone")
    if not isinstance(getattr(ReasonCode, "names", None), Mapping):
        problems.append("ReasonCode.names (the table of reason codes) is gone")
    for name, value in (("AUTH", 0xF0), ("DISCONNECT", 0xE0)):
        if getattr(paho, name, None) != value:
            problems.append(f"paho.mqtt.client.{name} is not the packet type 0x{value:02X}")
    if not callable(getattr(paho, "time_func", None)):
        problems.append("paho.mqtt.client.time_func is gone")
    if not callable(getattr(paho.MQTTMessageInfo, "_set_as_published", None)):
        problems.append("MQTTMessageInfo._set_as_published() is gone")
    try:
        from paho.mqtt import _packet

        decode_pubrec = tuple(inspect.signature(_packet.decode_pubrec).parameters)
        if decode_pubrec != ("header", "packet", "protocol"):
            problems.append("paho.mqtt._packet.decode_pubrec(header, packet, protocol) changed")
    except (ImportError, AttributeError):
        problems.append("paho.mqtt._packet.decode_pubrec() is gone")
    problems += _instance_problems()
    return problems


def _instance_problems() -> list[str]:
    """The attributes and record layouts, read off a real (never connected) client."""
    try:
        client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    except Exception as exc:
        return [f"Client(VERSION2, protocol=MQTTv5) fails: {exc!r}"]
    problems = [f"Client().{name} is gone" for name in ATTRIBUTES if not hasattr(client, name)]
    in_packet = getattr(client, "_in_packet", None)
    if isinstance(in_packet, dict) and set(in_packet) != IN_PACKET_KEYS:
        problems.append(
            f"Client._in_packet has keys {sorted(in_packet)}, not {sorted(IN_PACKET_KEYS)}"
        )
    for name in ("_out_messages", "_in_messages"):
        if not hasattr(getattr(client, name, None), "move_to_end"):
            problems.append(f"Client.{name} is no longer an OrderedDict")
    try:
        client.on_socket_register_write = lambda *_: None
        client._packet_queue(paho.PUBLISH, b"\x30\x00", 1, 0)  # noqa: SLF001 - layout probe
        entry = client._out_packet[-1]  # noqa: SLF001 - layout probe
    except Exception as exc:
        problems.append(f"Client._packet_queue() cannot queue a packet: {exc!r}")
    else:
        if set(entry) != OUT_PACKET_KEYS:
            problems.append(
                f"Client._out_packet entries have keys {sorted(entry)}, "
                f"not {sorted(OUT_PACKET_KEYS)}"
            )
    slots = set(getattr(paho.MQTTMessage, "__slots__", ()))
    if slots != MESSAGE_SLOTS:
        problems.append(
            f"MQTTMessage has the slots {sorted(slots)}, not {sorted(MESSAGE_SLOTS)} (the "
            "adapter fills each one of its session records)"
        )
    return problems


_verified_paho: tuple[object, ...] | None = None
"""The paho methods the seam check last passed with (see ``check_paho_seams``)."""


def check_paho_seams() -> None:
    """Refuse a paho that lacks what the adapter relies on, naming each missing piece. The full
    check (signatures, a probe client) costs about 2 ms: it runs once per paho, not once per
    connection."""
    global _verified_paho  # (a process-wide cache of one verdict)
    paho_now = tuple(getattr(paho.Client, name, None) for name in METHODS)
    if paho_now == _verified_paho:
        return
    missing = missing_paho_seams()
    if missing:
        version = importlib.metadata.version("paho-mqtt")
        raise RuntimeError(
            f"rxmqtt.engine relies on paho-mqtt internals that paho-mqtt {version} "
            f"does not have: {'; '.join(missing)}. Install a paho-mqtt release rxmqtt "
            "supports (see its pyproject.toml)"
        )
    _verified_paho = paho_now
