"""The control room against a real Mosquitto behind a FaultProxy, driven through its controls.

The window is created once per test and never restarted: every outage is survived by the live
connection while the widgets follow its streams.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from PySide6.QtCore import QObject, Qt, QTimer
from pytestqt.qtbot import QtBot

from gui_demo.lab import Lab
from gui_demo.window import ControlRoom
from rxmqtt import ConnectFailed, Connection, ConnectionState, Disconnected, Drain, Overflow

pytestmark = pytest.mark.broker

CONNECTED = ConnectionState.CONNECTED
RECONNECTING = ConnectionState.RECONNECTING
FAILED = ConnectionState.FAILED


class StateRecorder:
    """Every state the badge showed, with when (``time.monotonic``)."""

    def __init__(self, room: ControlRoom) -> None:
        self.items: list[tuple[ConnectionState, float]] = []
        room.status.state_changed.connect(self._record)

    def _record(self, state: object) -> None:
        assert isinstance(state, ConnectionState)
        self.items.append((state, time.monotonic()))

    @property
    def states(self) -> list[ConnectionState]:
        return [state for state, _ in self.items]

    def first(self, state: ConnectionState) -> float:
        return next(at for seen, at in self.items if seen is state)


class LoopLatencyProbe:
    """A precise 10 ms Qt timer measuring how long the event loop (Qt and asyncio alike) could
    not react: ``max_gap`` is the longest wall-clock time between two ticks; ``max_busy`` the
    most CPU time this (GUI) thread spent between two ticks, i.e. the longest stretch of
    loop work, which time the OS gave to other processes on a busy machine does not inflate."""

    def __init__(self, interval_ms: int = 10) -> None:
        self.max_gap = 0.0
        self.max_busy = 0.0
        self.ticks = 0
        self._last = time.monotonic()
        self._last_cpu = time.thread_time()
        self._timer = QTimer()
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self._tick)
        self._timer.start(interval_ms)

    def _tick(self) -> None:
        now, cpu = time.monotonic(), time.thread_time()
        self.max_gap = max(self.max_gap, now - self._last)
        self.max_busy = max(self.max_busy, cpu - self._last_cpu)
        self._last, self._last_cpu = now, cpu
        self.ticks += 1

    def stop(self) -> None:
        self._timer.stop()


FLOODER = """
import asyncio, sys, time
from rxmqtt import Connection, ConnectionSettings, ConnectionState

async def main(port: int, rate: int, seconds: float) -> None:
    settings = ConnectionSettings(host="127.0.0.1", port=port, client_id="gui-test-flooder")
    async with Connection(settings) as conn:
        await conn.wait_for(ConnectionState.CONNECTED, 5)
        total = int(rate * seconds)
        started, sent = time.monotonic(), 0
        while sent < total:
            elapsed = time.monotonic() - started
            for _ in range(min(total, int(rate * elapsed)) - sent):
                conn.publish("flood/sensor", str(sent), 0)
                sent += 1
            await asyncio.sleep(0.005)
        elapsed = time.monotonic() - started
        await conn.publish("flood/done", b"", 1)  # acked: the broker has read every one before
    print(sent, elapsed, flush=True)

asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])))
"""
"""A separate process publishing ``rate * seconds`` QoS 0 messages at ``rate`` msg/s straight to
the broker, so that the GUI process does nothing but receive and display the flood."""


def subscribe_and_wait(room: ControlRoom, qtbot: QtBot, topic_filter: str, probe: str) -> None:
    """Subscribe through the panel and wait until a message published on ``probe`` comes back
    (so the broker has the subscription)."""
    room.subscriptions.add_filter(topic_filter, qos=1)
    publish_and_see(room, qtbot, probe)


def publish_and_see(room: ControlRoom, qtbot: QtBot, topic: str) -> None:
    """Publish one message on ``topic`` through the panel and wait until it comes back."""
    before = room.subscriptions.received
    room.publisher.topic.setText(topic)
    room.publisher.publish_many(1)
    qtbot.waitUntil(lambda: room.subscriptions.received > before, timeout=3000)


def rows_on(room: ControlRoom, topic: str) -> int:
    """Rows of the message table showing ``topic``."""
    return sum(1 for row in room.table.model.rows if row[1] == topic)


def log_has(room: ControlRoom, text: str) -> bool:
    return any(text in line for line in room.log.lines)


def test_broker_crash_reconnects_queues_and_drains_without_restarting(
    room: ControlRoom, qtbot: QtBot
) -> None:
    window = room
    retry = room.policies.initial.value()  # fixed: the test window's backoff has no jitter
    subscribe_and_wait(room, qtbot, "lab/#", "lab/probe")
    states = StateRecorder(room)

    room.controls.crash_button.click()
    qtbot.waitUntil(lambda: room.status.state is RECONNECTING, timeout=3000)
    assert room.status.badge.text() == "RECONNECTING"
    qtbot.waitUntil(lambda: room.status.countdown.text().startswith("retry in"), timeout=3000)
    assert room.status.last_retry_in == pytest.approx(retry)
    assert room.status.disconnect_source.text() == "network"

    room.publisher.topic.setText("lab/queued")
    room.publisher.payload.setText("queued {n}")
    room.publisher.burst_size.setValue(25)
    room.publisher.burst_button.click()
    qtbot.waitUntil(lambda: room.queue.stats.depth == 25, timeout=2000)
    assert room.queue.depth_bar.text().startswith("25 / 1,000 msgs")
    assert room.queue.depth_bar.value() == 25

    room.controls.start_button.click()
    qtbot.waitUntil(lambda: room.status.state is CONNECTED, timeout=5000)
    qtbot.waitUntil(lambda: room.queue.stats.depth == 0, timeout=3000)
    qtbot.waitUntil(lambda: rows_on(room, "lab/queued") == 25, timeout=3000)
    assert room.queue.stats.drained >= 25
    assert room.publisher.acknowledged == room.publisher.published
    assert states.states[:2] == [RECONNECTING, CONNECTED]
    assert room.status.reconnects == 1
    assert room is window, "the same window throughout"
    assert room.isVisible()
    assert log_has(room, "crash broker")
    assert log_has(room, "Connected")


def test_cut_network_is_detected_within_one_and_a_half_keepalives_then_restored(
    room: ControlRoom, qtbot: QtBot
) -> None:
    keep_alive = room.settings.keep_alive
    states = StateRecorder(room)
    cut_at = time.monotonic()
    room.controls.cut_button.click()
    qtbot.waitUntil(
        lambda: room.status.state is RECONNECTING, timeout=int(1.5 * keep_alive * 1000) + 2000
    )
    detected_after = states.first(RECONNECTING) - cut_at
    assert detected_after <= 1.5 * keep_alive, f"noticed after {detected_after:.2f} s"
    assert log_has(room, "Disconnected keepalive:")
    assert room.controls.restore_button.isEnabled()

    room.controls.restore_button.click()
    qtbot.waitUntil(lambda: room.status.state is CONNECTED, timeout=6000)
    assert states.states[-1] is CONNECTED


def test_a_5000_msg_per_second_flood_keeps_the_event_loop_responsive(
    room: ControlRoom, lab: Lab, qtbot: QtBot, record_property: Callable[[str, object], None]
) -> None:
    rate, seconds = 5_000, 3.0
    subscribe_and_wait(room, qtbot, "flood/#", "flood/probe")
    received_before = room.subscriptions.received
    # As the demo does once its window is up: the start-up heap (Qt, PySide, modules) is never
    # garbage, and without this a full collection scans it mid-flood (~20 ms here).
    gc.freeze()
    probe = LoopLatencyProbe()
    flooder = subprocess.Popen(
        [sys.executable, "-c", FLOODER, str(lab.broker_port), str(rate), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        qtbot.waitUntil(lambda: flooder.poll() is not None, timeout=int(seconds * 1000) + 15_000)
        assert flooder.returncode == 0
        assert flooder.stdout is not None
        sent_text, elapsed_text = flooder.stdout.read().split()
        sent, elapsed = int(sent_text), float(elapsed_text)
        qtbot.waitUntil(lambda: room.subscriptions.received - received_before >= sent, timeout=5000)
    finally:
        probe.stop()
        gc.unfreeze()
        if flooder.poll() is None:
            flooder.kill()
        flooder.wait()
        if flooder.stdout is not None:
            flooder.stdout.close()

    print(
        f"\nflood: {sent} msgs in {elapsed:.2f} s ({sent / elapsed:,.0f} msg/s), all received; "
        f"longest event-loop stall: {probe.max_busy * 1000:.1f} ms of work, "
        f"{probe.max_gap * 1000:.1f} ms wall-clock ({probe.ticks} probe ticks)"
    )
    record_property("max_event_loop_busy_ms", round(probe.max_busy * 1000, 1))
    record_property("max_event_loop_gap_ms", round(probe.max_gap * 1000, 1))
    assert sent == rate * seconds
    # The bound, on the loop's own work; wall-clock gaps also count the time a busy
    # machine (benchmarks, other suites) gave to other processes, so they get a sanity bound.
    assert probe.max_busy < 0.100, f"the loop was busy for {probe.max_busy * 1000:.0f} ms"
    assert probe.max_gap < 1.0, f"the UI froze for {probe.max_gap * 1000:.0f} ms"
    assert len(room.table.model.rows) == room.table.model.rows.maxlen, "bounded, and full"
    qtbot.waitUntil(lambda: room.subscriptions.topic_rate("flood/sensor") > 0, timeout=3000)


def test_a_reconnect_policy_picked_in_the_gui_takes_effect_on_the_next_reconnect(
    room: ControlRoom, qtbot: QtBot
) -> None:
    if not hasattr(Connection, "configure"):
        pytest.skip("Connection.configure (live policies) is not available yet")
    room.policies.initial.setValue(0.3)
    room.policies.maximum.setValue(0.3)
    room.policies.max_attempts.setValue(2)
    assert log_has(room, "policies applied live")
    assert room.status.state is CONNECTED, "a live connection is kept"

    room.controls.crash_button.click()
    qtbot.waitUntil(lambda: room.status.state is FAILED, timeout=5000)
    assert room.status.last_retry_in == pytest.approx(0.3), "the new backoff, not the old 0.8 s"
    assert room.status.badge.text() == "FAILED"
    assert room.status.countdown.text() == "gave up"
    assert log_has(room, "GaveUp")

    room.controls.start_button.click()
    room.policies.max_attempts.setValue(0)  # forever: a FAILED connection tries again
    qtbot.waitUntil(lambda: room.status.state is CONNECTED, timeout=5000)


def test_a_queue_policy_picked_in_the_gui_bounds_the_offline_queue(
    room: ControlRoom, qtbot: QtBot
) -> None:
    if not hasattr(Connection, "configure"):
        pytest.skip("Connection.configure (live policies) is not available yet")
    room.policies.max_messages.setValue(10)
    room.policies.overflow.setCurrentIndex(list(Overflow).index(Overflow.DROP_NEWEST))
    room.policies.drain.setCurrentIndex(list(Drain).index(Drain.LIFO))
    assert room.queue.depth_bar.maximum() == 10

    room.controls.crash_button.click()
    qtbot.waitUntil(lambda: room.status.state is RECONNECTING, timeout=3000)
    room.publisher.topic.setText("lab/bounded")
    room.publisher.burst_size.setValue(30)
    room.publisher.burst_button.click()
    qtbot.waitUntil(lambda: room.queue.stats.dropped == 20, timeout=2000)
    assert room.queue.stats.depth == 10
    assert room.queue.depth_bar.text().startswith("10 / 10 msgs")
    qtbot.waitUntil(lambda: "overflow" in room.queue.last_drop.text(), timeout=2000)
    qtbot.waitUntil(lambda: room.publisher.failed == 20, timeout=2000)

    room.controls.start_button.click()
    qtbot.waitUntil(lambda: room.queue.stats.depth == 0, timeout=5000)


def test_disconnect_then_connect_swaps_the_connection_and_its_bindings(
    room: ControlRoom, qtbot: QtBot
) -> None:
    old = room.connection
    assert old is not None
    subscribe_and_wait(room, qtbot, "swap/#", "swap/before")

    room.controls.connect_button.click()  # "Disconnect"
    assert room.connection is None, "the connection leaves the window at once"
    assert not room.controls.connect_button.isEnabled(), "nothing to click while it closes"
    qtbot.waitUntil(lambda: room.controls.connect_button.text() == "Connect", timeout=3000)
    assert old.state is ConnectionState.CLOSED
    assert room.status.badge.text() == "CLOSED"
    assert room.findChildren(QObject, "connection-scope") == []
    assert room.controls.connect_button.text() == "Connect"

    room.controls.connect_button.click()  # "Connect": a new Connection
    qtbot.waitUntil(lambda: room.status.state is CONNECTED, timeout=5000)
    assert room.connection is not None
    assert room.connection is not old
    assert len(room.findChildren(QObject, "connection-scope")) == 1
    publish_and_see(room, qtbot, "swap/after")


def test_graceful_restart_keeps_the_session_and_a_reset_reconnects(
    room: ControlRoom, qtbot: QtBot
) -> None:
    subscribe_and_wait(room, qtbot, "keep/#", "keep/before")
    states = StateRecorder(room)

    room.controls.restart_button.click()  # SIGTERM: Mosquitto saves the session, then starts
    qtbot.waitUntil(lambda: states.states[-2:] == [RECONNECTING, CONNECTED], timeout=5000)
    assert room.status.session.text() == "yes"
    publish_and_see(room, qtbot, "keep/after-restart")

    room.controls.reset_button.click()  # RST every proxied connection
    qtbot.waitUntil(lambda: states.states.count(CONNECTED) == 2, timeout=5000)
    assert room.status.reconnects == 2
    assert log_has(room, "reset network")


def test_a_connect_while_the_old_connection_closes_keeps_the_new_ones_bindings(
    room: ControlRoom, qtbot: QtBot
) -> None:
    old = room.connection
    assert old is not None
    subscribe_and_wait(room, qtbot, "race/#", "race/before")
    states = StateRecorder(room)

    room.controls.connect_button.click()  # "Disconnect": the close lingers for the broker
    assert room.controls.connect_button.text() == "Disconnecting…"
    new = room.open_connection()  # a Connect before the old one has finished closing
    assert new is not old
    assert len(room.findChildren(QObject, "connection-scope")) == 1, "only the new one's"
    qtbot.waitUntil(lambda: old.state is ConnectionState.CLOSED, timeout=3000)
    qtbot.waitUntil(lambda: room.status.state is CONNECTED, timeout=5000)
    assert room.connection is new
    assert room.controls.connect_button.text() == "Disconnect"
    assert room.controls.connect_button.isEnabled()
    assert len(room.findChildren(QObject, "connection-scope")) == 1, "the close spared it"
    assert ConnectionState.CLOSED not in states.states, "the old one's end was not shown"
    publish_and_see(room, qtbot, "race/after")


def test_the_status_panel_keeps_the_last_disconnect_apart_from_the_last_failed_attempt(
    room: ControlRoom, qtbot: QtBot
) -> None:
    connection = room.connection
    assert connection is not None
    events: list[object] = []
    connection.lifecycle.subscribe(events.append)

    room.controls.crash_button.click()
    qtbot.waitUntil(lambda: any(isinstance(e, ConnectFailed) for e in events), timeout=5000)
    dropped = next(e for e in events if isinstance(e, Disconnected)).disconnect
    failed = [e for e in events if isinstance(e, ConnectFailed)][-1]
    assert room.status.disconnect_code.text() == f"0x{dropped.reason_code:02X}"
    assert room.status.disconnect_reason.text() == dropped.reason, "not the failed attempt's"
    assert room.status.disconnect_source.text() == "network"
    shown = room.status.failed_attempt.text()
    assert shown.startswith(f"#{failed.attempt}: 0x{failed.reason_code:02X} ")
    assert failed.reason.startswith(shown.split(" ", 2)[2].removesuffix(" (network)").rstrip("…"))
    assert shown.endswith("(network)")
    assert room.status.failed_attempt.toolTip() == str(failed.disconnect), "all of it"

    room.controls.start_button.click()
    qtbot.waitUntil(lambda: room.status.state is CONNECTED, timeout=5000)
    last_failed = [e for e in events if isinstance(e, ConnectFailed)][-1]
    assert room.status.failed_attempt.text().startswith(f"#{last_failed.attempt}: ")
    assert room.status.disconnect_reason.text() == dropped.reason, "still the last disconnect"
