"""Every lifecycle event has its own words in the control room: the event log describes each
type (never falls back to ``repr``) in its own colour, and the status panel counts the
re-authentications that kept the link."""

from __future__ import annotations

import typing

from pytestqt.qtbot import QtBot

from gui_demo.event_log import describe
from gui_demo.status_panel import StatusPanel
from gui_demo.style import EVENT_COLOURS
from rxmqtt import (
    Closed,
    Connected,
    ConnectFailed,
    Connecting,
    Disconnect,
    Disconnected,
    DisconnectSource,
    GaveUp,
    LifecycleEvent,
    Reauthenticated,
    SessionLost,
)

_LOST = Disconnect(0x87, "Not authorized", DisconnectSource.SERVER)
ONE_OF_EACH: list[LifecycleEvent] = [
    Connecting(1, "broker:1883"),
    Connected(False, "broker:1883"),
    ConnectFailed(0x87, "Not authorized", 1, None, _LOST),
    Disconnected(_LOST, 0.5),
    SessionLost(),
    Reauthenticated("broker:1883", 2),
    Closed(),
    GaveUp("fatal", _LOST),
]


def test_the_event_log_describes_every_lifecycle_event() -> None:
    assert {type(e) for e in ONE_OF_EACH} == set(typing.get_args(LifecycleEvent))
    for event in ONE_OF_EACH:
        text = describe(event)
        assert text != repr(event), f"{type(event).__name__} has no description"
        assert type(event).__name__ in EVENT_COLOURS
    assert "re-authenticated (2 challenge rounds)" in describe(ONE_OF_EACH[5])


def test_the_status_panel_counts_reauthentications(qtbot: QtBot) -> None:
    panel = StatusPanel()
    qtbot.addWidget(panel)
    for event in ONE_OF_EACH[:2]:
        panel._on_event(event)
    panel._on_event(Reauthenticated("broker:1883"))
    panel._on_event(Reauthenticated("broker:1883", 1))
    assert panel.reauth_count.text() == "2"
    assert panel.reconnect_count.text() == "0"
    assert panel.endpoint.text() == "broker:1883"
