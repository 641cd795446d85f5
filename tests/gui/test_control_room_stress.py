"""The control room through Disconnect -> Connect cycles mixed with broker crashes, graceful
restarts, network cuts and resets (issue 15): it never crashes, and at the end its panels tell
the truth about the one live connection.

Short by default (``RXMQTT_GUI_STRESS_CYCLES``, default 14: every kind of cycle twice, over
two fresh windows); the long run is ``nox -s gui_stress`` (200 cycles). ``RXMQTT_GUI_STRESS_SEED``
replays a schedule. While it
runs, a thread keeps triggering the garbage collector, so whatever a previous window or loop
left behind is freed off the GUI thread, as in the crash this guards against.
"""

from __future__ import annotations

import gc
import os
import random
import threading
from collections.abc import Callable, Iterator

import pytest
from PySide6.QtCore import QObject
from pytestqt.qtbot import QtBot

from gui_demo.lab import Lab
from gui_demo.window import ControlRoom
from rxmqtt import Connection, ConnectionState

pytestmark = pytest.mark.broker

CYCLES = int(os.environ.get("RXMQTT_GUI_STRESS_CYCLES", "14"))
ROUNDS = 2 if CYCLES < 40 else 4
"""Each round is a fresh window on a fresh loop, so the collector thread gets to free the
previous round's leftovers while the next one runs."""
SEED = int(os.environ.get("RXMQTT_GUI_STRESS_SEED") or random.SystemRandom().randrange(2**32))

if CYCLES < ROUNDS:
    raise ValueError(f"RXMQTT_GUI_STRESS_CYCLES: must be >= {ROUNDS}, got {CYCLES}")

CONNECTED = ConnectionState.CONNECTED
RECONNECTING = ConnectionState.RECONNECTING


@pytest.fixture(scope="module", autouse=True)
def collector_thread() -> Iterator[None]:
    """Collects garbage from a non-GUI thread every 50 ms while the stress rounds run."""
    stop = threading.Event()

    def collect() -> None:
        while not stop.wait(0.05):
            gc.collect()

    thread = threading.Thread(target=collect, name="stress-gc", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


class Cycle:
    """One Disconnect -> Connect cycle with a fault, driven through the window's buttons."""

    def __init__(self, room: ControlRoom, lab: Lab, qtbot: QtBot) -> None:
        self.room, self.lab, self.qtbot = room, lab, qtbot
        self.closed: list[Connection] = []

    def wait(self, condition: Callable[[], bool], timeout: float) -> None:
        self.qtbot.waitUntil(condition, timeout=int(timeout * 1000))

    def disconnect(self, *, wait: bool = True) -> None:
        connection = self.room.connection
        assert connection is not None
        assert self.room.controls.connect_button.text() == "Disconnect"
        self.room.controls.connect_button.click()
        self.closed.append(connection)
        if wait:
            self.wait(lambda: self.room.controls.connect_button.text() == "Connect", 5)

    def connect(self) -> None:
        assert self.room.controls.connect_button.text() == "Connect"
        self.room.controls.connect_button.click()

    def connected(self) -> None:
        self.wait(lambda: self.room.status.state is CONNECTED, 15)

    # Each fault below ends with the window connected again.

    def plain(self) -> None:
        self.disconnect()
        self.connect()
        self.connected()

    def crash_then_disconnect(self) -> None:
        self.room.controls.crash_button.click()
        self.wait(lambda: self.room.status.state is RECONNECTING, 5)
        self.disconnect()
        self.room.controls.start_button.click()
        self.connect()
        self.connected()

    def connect_while_the_broker_is_down(self) -> None:
        self.disconnect()
        self.room.controls.crash_button.click()
        self.connect()
        self.wait(lambda: self.room.status.failed_attempt.text().startswith("#"), 5)
        self.room.controls.start_button.click()
        self.connected()

    def disconnect_during_a_restart(self) -> None:
        self.room.controls.restart_button.click()
        self.disconnect()
        self.connect()
        self.connected()

    def disconnect_into_a_cut_network(self) -> None:
        self.room.controls.cut_button.click()
        self.disconnect()  # the DISCONNECT goes into the black hole; the close still ends
        self.room.controls.restore_button.click()
        self.connect()
        self.connected()

    def disconnect_after_a_reset(self) -> None:
        self.room.controls.reset_button.click()
        self.disconnect()
        self.connect()
        self.connected()

    def connect_while_closing(self) -> None:
        self.disconnect(wait=False)
        self.room.open_connection()  # before the old connection's close has finished
        self.connected()

    KINDS = (
        plain,
        crash_then_disconnect,
        connect_while_the_broker_is_down,
        disconnect_during_a_restart,
        disconnect_into_a_cut_network,
        disconnect_after_a_reset,
        connect_while_closing,
    )


def round_trip(room: ControlRoom, qtbot: QtBot, topic: str) -> None:
    before = room.subscriptions.received
    room.publisher.topic.setText(topic)
    room.publisher.publish_many(1)
    qtbot.waitUntil(lambda: room.subscriptions.received > before, timeout=5000)


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_disconnect_connect_cycles_mixed_with_crashes_restarts_and_cuts(
    round_: int, room: ControlRoom, lab: Lab, qtbot: QtBot
) -> None:
    rng = random.Random(SEED + round_)
    cycles = CYCLES // ROUNDS + (1 if round_ < CYCLES % ROUNDS else 0)
    print(f"\ngui stress: round {round_}, {cycles} cycles, RXMQTT_GUI_STRESS_SEED={SEED}")
    room.subscriptions.add_filter("stress/#", qos=1)
    round_trip(room, qtbot, "stress/start")
    driver = Cycle(room, lab, qtbot)
    done: list[str] = []
    for number in range(cycles):
        if number < len(Cycle.KINDS):  # every kind once, in a different order per round
            kind = Cycle.KINDS[(number + round_) % len(Cycle.KINDS)]
        else:
            kind = rng.choice(Cycle.KINDS)
        done.append(kind.__name__)
        kind(driver)
        assert len(room.findChildren(QObject, "connection-scope")) == 1, done
        if number % 5 == 4:
            round_trip(room, qtbot, f"stress/cycle-{number}")
    print("gui stress: " + ", ".join(f"{done.count(k.__name__)} {k.__name__}" for k in Cycle.KINDS))

    # The panels follow exactly the one live connection.
    live = room.connection
    assert live is not None
    qtbot.waitUntil(lambda: all(old.state is ConnectionState.CLOSED for old in driver.closed))
    assert live not in driver.closed
    assert room.status.state is CONNECTED
    assert room.status.badge.text() == "CONNECTED"
    assert room.controls.connect_button.text() == "Disconnect"
    assert room.controls.connect_button.isEnabled()
    assert len(room.findChildren(QObject, "connection-scope")) == 1
    assert lab.broker_running
    assert not lab.network_cut
    round_trip(room, qtbot, "stress/end")
    qtbot.waitUntil(lambda: room.queue.stats.depth == 0, timeout=5000)
    publisher = room.publisher
    qtbot.waitUntil(
        lambda: publisher.acknowledged + publisher.failed == publisher.published, timeout=5000
    )
