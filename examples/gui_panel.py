"""A GUI panel: the ``mpu_gui`` preset, a PySide6 window bound to the connection's streams.

The window shows the connection state, the last disconnect reason, the offline-queue depth and
the last message received, and publishes a setpoint whenever its slider moves. Everything runs
on the Qt thread (qasync makes it the asyncio loop), ``publish()`` never blocks it, and when the
Wi-Fi drops the panel just shows it and carries on: queued setpoints are sent newest first when
the network is back (``Drain.LIFO``), the oldest dropped if the queue fills up.

Locally it runs against an embedded Mosquitto behind a FaultProxy, moves the slider by itself
and drops the "Wi-Fi" for a few seconds. (For the full control room, run ``python -m gui_demo``.)

    python -m examples.gui_panel --run-for 15
    QT_QPA_PLATFORM=offscreen python -m examples.gui_panel --run-for 5     # no display needed
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import sys

from PySide6.QtCore import Qt
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QFormLayout, QLabel, QSlider, QWidget

from rxmqtt import (
    Connection,
    ConnectionSettings,
    ConnectionState,
    Disconnect,
    Message,
    QueueStats,
)
from rxmqtt.presets import mpu_gui
from rxmqtt.qt import bind, run
from rxmqtt.testing import FaultProxy, MosquittoBroker

_COLOURS = {
    ConnectionState.CONNECTED: "#2e7d32",
    ConnectionState.CONNECTING: "#f9a825",
    ConnectionState.RECONNECTING: "#ef6c00",
    ConnectionState.FAILED: "#c62828",
}


class Panel(QWidget):
    """The window: four read-outs bound to streams and a slider that publishes."""

    def __init__(self, conn: Connection) -> None:
        super().__init__()
        self.setWindowTitle("rxmqtt panel (mpu_gui preset)")
        self.closed = asyncio.Event()
        self._conn = conn
        self.state = QLabel()
        self.reason = QLabel("—")
        self.reason.setWordWrap(True)
        self.queue = QLabel()
        self.received = QLabel("—")
        self.setpoint = QSlider(Qt.Orientation.Horizontal)
        self.setpoint.setRange(0, 100)
        layout = QFormLayout(self)
        layout.addRow("Connection", self.state)
        layout.addRow("Last disconnect", self.reason)
        layout.addRow("Offline queue", self.queue)
        layout.addRow("Last message", self.received)
        layout.addRow("Setpoint", self.setpoint)
        self.resize(520, 180)
        # bound for the window's lifetime; the bindings end when the window is destroyed
        bind(conn.connection_state, self._show_state, owner=self)
        bind(conn.disconnects, self._show_disconnect, owner=self)
        bind(conn.queue_stats, self._show_queue, owner=self)
        bind(conn.messages("panel/#", qos=1), self._show_message, owner=self)
        self.setpoint.valueChanged.connect(self._publish_setpoint)

    def _show_state(self, state: ConnectionState) -> None:
        colour = _COLOURS.get(state, "#616161")
        self.state.setText(f"<b style='color:{colour}'>{state.name}</b>")
        print(f"state: {state.name}", flush=True)

    def _show_disconnect(self, disconnect: Disconnect) -> None:
        self.reason.setText(str(disconnect))

    def _show_queue(self, stats: QueueStats) -> None:
        self.queue.setText(
            f"{stats.depth} queued ({stats.bytes} B), {stats.in_flight} in flight, "
            f"{stats.dropped} dropped"
        )

    def _show_message(self, message: Message) -> None:
        self.received.setText(f"{message.topic} = {message.payload.decode(errors='replace')}")

    def _publish_setpoint(self, value: int) -> None:
        # returns at once, online or not; the outcome arrives later (ignored here: the queue
        # read-out and the echo on panel/# show it)
        self._conn.publish("panel/setpoint", str(value), qos=1)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 -- Qt's name
        self.closed.set()
        super().closeEvent(event)


async def move_slider(panel: Panel) -> None:
    """Stand-in for a user: move the slider a little every 100 ms."""
    for n in range(1_000_000):
        panel.setpoint.setValue(int(50 + 45 * math.sin(n / 15)))
        await asyncio.sleep(0.1)


async def wifi_drop(proxy: FaultProxy, conn: Connection, seconds: float) -> None:
    await conn.wait_for(ConnectionState.CONNECTED, 10)
    await asyncio.sleep(1.0)
    print(f"demo: the Wi-Fi drops for {seconds:g}s", flush=True)
    await asyncio.to_thread(proxy.refuse)
    await asyncio.to_thread(proxy.reset)
    await asyncio.sleep(seconds)
    print("demo: the Wi-Fi is back", flush=True)
    await asyncio.to_thread(proxy.accept)


async def panel_main(args: argparse.Namespace) -> int:
    with contextlib.ExitStack() as stack:
        proxy: FaultProxy | None = None
        if args.broker:
            settings = ConnectionSettings.from_url(args.broker)
        else:
            broker = stack.enter_context(MosquittoBroker())
            proxy = stack.enter_context(FaultProxy(broker.host, broker.port))
            print(f"demo: embedded Mosquitto on {broker.url}, Wi-Fi is {proxy.url}", flush=True)
            settings = ConnectionSettings(host=proxy.host, port=proxy.port)

        conn = mpu_gui().connect(settings)
        panel = Panel(conn)
        panel.show()
        async with conn:
            tasks = [asyncio.create_task(move_slider(panel))]
            if proxy is not None:
                tasks.append(asyncio.create_task(wifi_drop(proxy, conn, args.outage)))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(panel.closed.wait(), args.run_for)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        panel.close()
        panel.deleteLater()
    print("demo: done", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--broker", help="broker URL (default: an embedded local Mosquitto)")
    parser.add_argument("--run-for", type=float, default=15.0, help="seconds (default 15)")
    parser.add_argument("--outage", type=float, default=3.0, help="seconds without Wi-Fi")
    args = parser.parse_args(argv)
    return run(lambda: panel_main(args), argv=sys.argv[:1], application_name="rxmqtt panel")


if __name__ == "__main__":
    sys.exit(main())
