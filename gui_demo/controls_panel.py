"""Controls: connect/disconnect, the broker and network faults of the embedded lab, and the
policy pickers that are applied to the live connection.

The fault buttons call the :class:`~gui_demo.lab.Lab` directly (millisecond calls); every action
is announced on :attr:`ControlsPanel.action` so that the event log can show what was done next to
what the connection did about it.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from rxmqtt import Backoff, Drain, Jitter, Overflow, QueuePolicy, ReconnectPolicy

from .lab import Lab


def _button(text: str, kind: str | None = None, tip: str = "") -> QPushButton:
    button = QPushButton(text)
    if kind is not None:
        button.setProperty("kind", kind)
    button.setToolTip(tip)
    return button


def _row_label(text: str) -> QLabel:
    label = QLabel(text)
    label.setProperty("role", "muted")
    return label


class ControlsPanel(QGroupBox):
    """Connection and fault controls."""

    connect_requested = Signal()
    disconnect_requested = Signal()
    action = Signal(str)
    """A human-readable line for every control used."""

    def __init__(self, lab: Lab | None, parent: QWidget | None = None) -> None:
        super().__init__("Controls", parent)
        self.lab = lab
        self.connect_button = _button("Disconnect", tip="Close the connection / open a new one")
        self.connect_button.clicked.connect(self._toggle_connection)
        self.crash_button = _button("Crash", "danger", "Crash the broker (SIGKILL)")
        self.start_button = _button("Start", "good", "Start the broker after a crash")
        self.restart_button = _button("Restart", tip="Restart the broker gracefully (SIGTERM)")
        self.cut_button = _button(
            "Cut", "danger", "Black-hole the network: sockets stay open, nothing flows"
        )
        self.restore_button = _button("Restore", "good", "Forward network traffic again")
        self.reset_button = _button("Reset", tip="RST every proxied TCP connection")
        self.auto_restart = QDoubleSpinBox()
        self.auto_restart.setRange(0.0, 60.0)
        self.auto_restart.setSingleStep(0.5)
        self.auto_restart.setValue(3.0)
        self.auto_restart.setSuffix(" s")
        self.auto_restart.setSpecialValueText("stay down (no auto-restart)")
        self.auto_restart.setPrefix("start again after ")
        self.auto_restart.setToolTip("After a crash, start the broker again after this delay")
        self.lab_status = QLabel()
        self.lab_status.setProperty("role", "muted")
        self.lab_status.setWordWrap(True)
        self._restart_timer = QTimer(self)
        self._restart_timer.setSingleShot(True)
        self._restart_timer.timeout.connect(self.start_broker)

        self.restart_button.clicked.connect(self.restart_broker)
        self.crash_button.clicked.connect(self.crash_broker)
        self.start_button.clicked.connect(self.start_broker)
        self.cut_button.clicked.connect(self.cut_network)
        self.restore_button.clicked.connect(self.restore_network)
        self.reset_button.clicked.connect(self.reset_network)

        grid = QGridLayout()
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(6)
        grid.addWidget(self.connect_button, 0, 0, 1, 4)
        grid.addWidget(_row_label("Broker"), 1, 0)
        grid.addWidget(self.crash_button, 1, 1)
        grid.addWidget(self.start_button, 1, 2)
        grid.addWidget(self.restart_button, 1, 3)
        grid.addWidget(_row_label("On crash"), 2, 0)
        grid.addWidget(self.auto_restart, 2, 1, 1, 3)
        grid.addWidget(_row_label("Network"), 3, 0)
        grid.addWidget(self.cut_button, 3, 1)
        grid.addWidget(self.restore_button, 3, 2)
        grid.addWidget(self.reset_button, 3, 3)
        layout = QVBoxLayout(self)
        layout.addLayout(grid)
        layout.addWidget(self.lab_status)
        if lab is None:
            for button in self._fault_widgets():
                button.setEnabled(False)
                button.setToolTip("Needs the embedded broker (run without --broker)")
        self.refresh()

    def _fault_widgets(self) -> list[QWidget]:
        return [
            self.restart_button,
            self.crash_button,
            self.start_button,
            self.cut_button,
            self.restore_button,
            self.reset_button,
            self.auto_restart,
        ]

    def set_connected(self, open_: bool) -> None:
        """Show whether a connection is open (the button then offers the opposite)."""
        self.connect_button.setEnabled(True)
        self.connect_button.setText("Disconnect" if open_ else "Connect")
        self.connect_button.setProperty("kind", None if open_ else "primary")
        self.connect_button.style().polish(self.connect_button)

    def set_closing(self) -> None:
        """A connection is closing (DISCONNECT sent, waiting for the broker's side to close):
        nothing to click until it is closed."""
        self.connect_button.setEnabled(False)
        self.connect_button.setText("Disconnecting…")

    def _toggle_connection(self) -> None:
        if self.connect_button.text() == "Disconnect":
            self.action.emit("disconnect: close the connection")
            self.disconnect_requested.emit()
        else:
            self.action.emit("connect: a new Connection")
            self.connect_requested.emit()

    # ------------------------------------------------------------------ lab actions

    def crash_broker(self) -> None:
        if self.lab is None:
            return
        self.lab.crash_broker()
        delay = self.auto_restart.value()
        then = f", restarting in {delay:.1f} s" if delay > 0 else ""
        self.action.emit(f"crash broker (SIGKILL){then}")
        if delay > 0:
            self._restart_timer.start(int(delay * 1000))
        self.refresh()

    def start_broker(self) -> None:
        if self.lab is None:
            return
        self._restart_timer.stop()
        if not self.lab.broker_running:
            self.lab.start_broker()
            self.action.emit("start broker")
        self.refresh()

    def restart_broker(self) -> None:
        if self.lab is None:
            return
        self._restart_timer.stop()
        self.lab.restart_broker()
        self.action.emit("restart broker (SIGTERM, then start)")
        self.refresh()

    def cut_network(self) -> None:
        self._network(Lab.cut_network, "cut network (black hole: only keep-alive can tell)")

    def restore_network(self) -> None:
        self._network(Lab.restore_network, "restore network")

    def reset_network(self) -> None:
        self._network(Lab.reset_network, "reset network (RST every connection)")

    def _network(self, fault: Callable[[Lab], None], what: str) -> None:
        """Apply a network fault (or its end) to the lab, then say what was done."""
        if self.lab is None:
            return
        fault(self.lab)
        self.action.emit(what)
        self.refresh()

    def refresh(self) -> None:
        """Update the lab status line and enable what makes sense now."""
        lab = self.lab
        if lab is None:
            self.lab_status.setText("External broker: fault controls need the embedded lab.")
            return
        running = lab.broker_running
        cut = lab.network_cut
        self.crash_button.setEnabled(running)
        self.start_button.setEnabled(not running)
        self.cut_button.setEnabled(not cut)
        self.restore_button.setEnabled(cut)
        broker = f"broker :{lab.broker_port} " + ("running" if running else "DOWN")
        network = "network black-holed" if cut else "network ok"
        self.lab_status.setText(f"{broker} · proxy :{lab.port} · {network}")


class PoliciesPanel(QGroupBox):
    """Pickers for the reconnect and queue policies; :attr:`changed` fires on every edit."""

    changed = Signal()

    def __init__(
        self, reconnect: ReconnectPolicy, queue: QueuePolicy, parent: QWidget | None = None
    ) -> None:
        super().__init__("Policies (applied live)", parent)
        backoff = reconnect.backoff
        self.jitter = _enum_combo(Jitter, backoff.jitter)
        self.initial = _seconds(backoff.initial, 0.0, 60.0)
        self.maximum = _seconds(backoff.maximum, 0.0, 600.0)
        self.max_attempts = QSpinBox()
        self.max_attempts.setRange(0, 1000)
        self.max_attempts.setSpecialValueText("∞ (forever)")
        self.max_attempts.setValue(reconnect.max_attempts or 0)
        self.max_messages = QSpinBox()
        self.max_messages.setRange(1, 10_000_000)
        self.max_messages.setGroupSeparatorShown(True)
        self.max_messages.setValue(queue.max_messages or 10_000_000)
        self.max_kbytes = QSpinBox()
        self.max_kbytes.setRange(1, 2_000_000)
        self.max_kbytes.setSuffix(" KB")
        self.max_kbytes.setGroupSeparatorShown(True)
        self.max_kbytes.setValue((queue.max_bytes or 2_000_000_000) // 1000)
        self.overflow = _enum_combo(Overflow, queue.overflow)
        self.drain = _enum_combo(Drain, queue.drain)
        self._base_reconnect = reconnect
        self._base_queue = queue
        self.note = QLabel("Reconnect changes take over at once; queue bounds re-apply now.")
        self.note.setProperty("role", "muted")
        self.note.setWordWrap(True)

        form = QFormLayout()
        form.setVerticalSpacing(5)
        for caption, widget in (
            ("Jitter", self.jitter),
            ("Backoff initial", self.initial),
            ("Backoff maximum", self.maximum),
            ("Max attempts", self.max_attempts),
            ("Queue messages", self.max_messages),
            ("Queue bytes", self.max_kbytes),
            ("Overflow", self.overflow),
            ("Drain order", self.drain),
        ):
            form.addRow(caption, widget)
            if isinstance(widget, QComboBox):
                widget.currentIndexChanged.connect(self.changed)
            else:
                widget.setKeyboardTracking(False)
                widget.valueChanged.connect(self.changed)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.note)

    def reconnect_policy(self) -> ReconnectPolicy:
        """The picked reconnect policy (``ValueError``/``TypeError`` if the values conflict)."""
        backoff = Backoff(
            initial=self.initial.value(),
            maximum=max(self.maximum.value(), self.initial.value()),
            multiplier=self._base_reconnect.backoff.multiplier,
            jitter=Jitter(self.jitter.currentData()),
        )
        attempts = self.max_attempts.value()
        return ReconnectPolicy(
            backoff=backoff,
            max_attempts=attempts or None,
            reset_after=self._base_reconnect.reset_after,
            retry_first_connect=self._base_reconnect.retry_first_connect,
            is_fatal=self._base_reconnect.is_fatal,
        )

    def queue_policy(self) -> QueuePolicy:
        """The picked queue policy."""
        return QueuePolicy(
            max_messages=self.max_messages.value(),
            max_bytes=self.max_kbytes.value() * 1000,
            overflow=Overflow(self.overflow.currentData()),
            drain=Drain(self.drain.currentData()),
            qos0_offline=self._base_queue.qos0_offline,
            store=self._base_queue.store,
        )

    def show_result(self, text: str, *, error: bool = False) -> None:
        self.note.setText(text)
        self.note.setStyleSheet("color: #c62828;" if error else "")


def _enum_combo(kind: type[Jitter] | type[Overflow] | type[Drain], current: object) -> QComboBox:
    combo = QComboBox()
    for member in kind:
        label = member.name if kind is Drain else member.name.replace("_", " ").title()
        combo.addItem(label, member.value)
    combo.setCurrentIndex(list(kind).index(current))  # type: ignore[arg-type]
    return combo


def _seconds(value: float, low: float, high: float) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(low, high)
    box.setDecimals(2)
    box.setSingleStep(0.25)
    box.setSuffix(" s")
    box.setValue(value)
    return box
