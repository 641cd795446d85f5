"""rxmqtt's live control room: a PySide6 window whose widgets are bound to a Connection's streams.

``python -m gui_demo`` starts an embedded Mosquitto on a free loopback port behind a
:class:`~rxmqtt.testing.FaultProxy`, connects through the proxy, and lets you crash the broker,
cut the network and change policies while the window follows every disconnect, backoff,
reconnect and queued message live, without ever restarting. ``--broker URL`` connects elsewhere;
``--screenshot PATH --run-for SECONDS`` plays a scripted outage headless and saves a PNG.

The window never imports paho: it knows only :mod:`rxmqtt` and :mod:`rxmqtt.qt`.
"""

try:
    from .window import ControlRoom
except ModuleNotFoundError as missing:  # the window needs the qt extra; say so in one line
    if missing.name not in {"PySide6", "shiboken6", "qasync"}:
        raise
    raise SystemExit(f"the rxmqtt demo needs {missing.name}: pip install 'rxmqtt[qt]'") from None

__all__ = ["ControlRoom"]
