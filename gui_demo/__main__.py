"""``python -m gui_demo``: the live control room.

With no arguments it starts an embedded Mosquitto behind a FaultProxy and connects through it;
``--broker URL`` connects elsewhere (the fault controls are then disabled).
``--screenshot PATH --run-for SECONDS`` plays the scripted outage and saves a PNG.

Without a usable screen (no ``DISPLAY``/``WAYLAND_DISPLAY``, or Qt's platform plugin cannot start
on it, e.g. for a missing system library) it says why and plays the scripted outage offscreen
instead, saving ``rxmqtt-demo.png`` unless ``--screenshot`` names another file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtWidgets import QApplication

from rxmqtt import ConnectionSettings
from rxmqtt.qt import run

from .lab import Lab
from .scenario import run_scenario
from .screen import OFFSCREEN, choose_screen
from .style import apply_theme
from .window import ControlRoom

HEADLESS_SCREENSHOT = Path("rxmqtt-demo.png")
HEADLESS_RUN_FOR = 15.0
"""Without a screen: the scripted scenario's length and where its screenshot goes."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=f"python -m {__package__}",
        description="rxmqtt control room: watch a connection survive broker crashes and "
        "network cuts, live.",
    )
    parser.add_argument(
        "--broker",
        metavar="URL",
        help="connect to this broker (mqtt[s]://[user[:password]@]host[:port][?client_id=...]) "
        "instead of the embedded one",
    )
    parser.add_argument("--client-id", default=f"rxmqtt-control-room-{os.getpid()}")
    parser.add_argument(
        "--keep-alive",
        type=int,
        default=None,
        metavar="SECONDS",
        help="MQTT keep-alive (default 5 s with the embedded broker, so a cut network is "
        "noticed within 7 s)",
    )
    parser.add_argument(
        "--screenshot",
        type=Path,
        metavar="PATH",
        help="play the scripted outage and save a PNG of the window at the end, then exit",
    )
    parser.add_argument(
        "--run-for",
        type=float,
        default=None,
        metavar="SECONDS",
        help="exit after this long; with --screenshot, the scripted outage's length (default 12)",
    )
    args = parser.parse_args(argv)
    if args.run_for is not None and args.run_for <= 0:
        parser.error("--run-for: must be > 0 seconds")
    if args.broker:
        try:
            ConnectionSettings.from_url(args.broker)
        except (TypeError, ValueError) as exc:
            parser.error(f"--broker: {exc}")
    return args


def make_settings(args: argparse.Namespace, lab: Lab | None) -> ConnectionSettings:
    """Settings for ``--broker URL`` (the URL's own client id wins), or for the embedded lab's
    proxy."""
    if lab is None:
        settings = ConnectionSettings.from_url(args.broker)
        return dataclasses.replace(
            settings,
            client_id=settings.client_id or args.client_id,
            keep_alive=settings.keep_alive if args.keep_alive is None else args.keep_alive,
        )
    keep_alive = 5 if args.keep_alive is None else args.keep_alive
    return ConnectionSettings(
        host=lab.host, port=lab.port, client_id=args.client_id, keep_alive=keep_alive
    )


async def amain(args: argparse.Namespace) -> int:
    """Start the lab (unless ``--broker``), show the window, run until closed or scripted end;
    always close the connection and the lab."""
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    apply_theme(app)
    lab = None if args.broker else Lab().start()
    window: ControlRoom | None = None
    try:
        settings = make_settings(args, lab)
        window = ControlRoom(settings, lab=lab)
        window.resize(1560, 980)
        window.show()
        window.open_connection()
        print(
            f"rxmqtt demo: the control room on Qt's {app.platformName()} platform", file=sys.stderr
        )
        # The start-up heap (Qt, PySide, every module: ~40,000 objects) never becomes garbage;
        # freezing it keeps full collections from scanning it, which paused the UI for ~20 ms
        # at a time during a message flood.
        gc.freeze()
        if args.screenshot is not None:
            await run_scenario(window, args.run_for or 12.0, args.screenshot)
            print(f"rxmqtt demo: screenshot saved to {args.screenshot}", file=sys.stderr)
        elif args.run_for is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(window.wait_closed(), args.run_for)
        else:
            await window.wait_closed()
        return 0
    finally:
        if window is not None:
            await window.shutdown()
            window.close()
        if lab is not None:
            lab.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    screen = choose_screen()
    if screen.offscreen:
        os.environ["QT_QPA_PLATFORM"] = OFFSCREEN
        if screen.fallback_reason is not None:
            print(f"rxmqtt demo: {screen.fallback_reason}", file=sys.stderr)
        if args.screenshot is None:  # nobody would see the window: leave a picture of it
            args.screenshot = HEADLESS_SCREENSHOT
            args.run_for = args.run_for or HEADLESS_RUN_FOR
            print(
                f"rxmqtt demo: playing the scripted scenario offscreen for {args.run_for:g} s "
                f"-> {args.screenshot}",
                file=sys.stderr,
            )
    return run(lambda: amain(args), argv=sys.argv[:1], application_name="rxmqtt control room")


if __name__ == "__main__":
    sys.exit(main())
