"""``rxmqtt``: mosquitto_sub / mosquitto_pub that show what the connection is going through.

::

    rxmqtt sub 'sensors/#' -v --url mqtt://127.0.0.1:1883       # print messages
    rxmqtt pub sensors/t 'reading {n}' --qos 1 --count 100 --rate 10
    rxmqtt watch --url mqtts://broker:8883                        # just the connection

Like the Mosquitto tools, but the connection survives broker restarts and network cuts (it is an
:class:`rxmqtt.Connection`), and stderr shows what happens to it: every state change with the
disconnect reason and the backoff wait, and a status line with the state, the message rate and
the offline-queue depth (redrawn in place on a terminal, a ``progress`` line every few seconds
when piped). Data (received payloads) goes to stdout only, so it can be piped.

The broker comes from ``--url`` or, without it, from the ``AIO_*`` environment variables
(:meth:`rxmqtt.ConnectionSettings.from_env`). ``--run-for`` and ``--count`` bound a run; Ctrl-C
(or SIGTERM) ends it cleanly: the connection is closed with a DISCONNECT and a summary printed.

Exit status: 0 on success, 1 if the connection gave up (``FAILED``) or a publish was not
acknowledged, 2 for bad arguments or settings.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TextIO

from ..presets import PRESETS
from ..presets import preset as named_preset
from ..settings import ConnectionSettings

__all__ = ["build_parser", "main"]


def _positive_float(name: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
        return value

    parse.__name__ = name
    return parse


def _non_negative_float(name: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        if not (math.isfinite(value) and value >= 0):
            raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
        return value

    parse.__name__ = name
    return parse


def _positive_int(name: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"must be >= 1, got {text!r}")
        return value

    parse.__name__ = name
    return parse


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (``rxmqtt {sub,pub,watch} ...``)."""
    common = argparse.ArgumentParser(add_help=False)
    conn = common.add_argument_group("connection")
    conn.add_argument(
        "--url",
        help="broker URL, e.g. mqtt://user:pass@host:1883?client_id=x "
        "(default: the AIO_* environment variables)",
    )
    conn.add_argument("-i", "--client-id", help="client id (default: from the URL/env, or random)")
    conn.add_argument(
        "-k",
        "--keep-alive",
        type=_positive_int("--keep-alive"),
        help="keep-alive in seconds (a dead link is noticed within ~1.5x this)",
    )
    conn.add_argument(
        "--preset",
        choices=[name.replace("_", "-") for name in PRESETS],
        help="reconnect/queue/retry policies of an application type "
        "(default: quick reconnects, 0.1-5 s)",
    )
    run = common.add_argument_group("run")
    run.add_argument(
        "--run-for",
        type=_positive_float("--run-for"),
        metavar="SECONDS",
        help="stop after this many seconds",
    )
    run.add_argument(
        "--progress",
        type=_non_negative_float("--progress"),
        metavar="SECONDS",
        help="seconds between progress lines when stderr is not a terminal (default 5; 0: none)",
    )
    run.add_argument(
        "-q", "--quiet", action="store_true", help="no events or status on stderr, only data"
    )

    parser = argparse.ArgumentParser(
        prog="rxmqtt",
        description="mosquitto_sub/pub that survive broker restarts and show the connection's "
        "state, disconnect reasons and queue depth live.",
        epilog="Ctrl-C ends a run cleanly. Exit status: 0 ok, 1 gave up / unacknowledged "
        "publishes, 2 bad arguments.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub = commands.add_parser(
        "sub", parents=[common], help="print messages matching topic filters (like mosquitto_sub)"
    )
    sub.add_argument("filters", nargs="+", metavar="FILTER", help="topic filter(s), e.g. 'a/+/#'")
    sub.add_argument("--qos", type=int, choices=(0, 1, 2), default=0, help="subscription QoS")
    sub.add_argument(
        "-C", "--count", type=_positive_int("--count"), help="exit after this many messages"
    )
    sub.add_argument("-v", "--verbose", action="store_true", help="print 'topic payload' lines")

    pub = commands.add_parser(
        "pub", parents=[common], help="publish a message, or a paced series (like mosquitto_pub)"
    )
    pub.add_argument("topic", metavar="TOPIC")
    pub.add_argument(
        "payload", metavar="PAYLOAD", help="message text; '{n}' is replaced by the sequence number"
    )
    pub.add_argument("--qos", type=int, choices=(0, 1, 2), default=0, help="publish QoS")
    pub.add_argument("-r", "--retain", action="store_true", help="set the retain flag")
    pub.add_argument(
        "-C",
        "--count",
        type=_positive_int("--count"),
        default=1,
        help="how many messages (default 1)",
    )
    pub.add_argument(
        "--rate",
        type=_positive_float("--rate"),
        help="messages per second (default: as fast as acknowledgements allow)",
    )

    watch = commands.add_parser(
        "watch",
        parents=[common],
        help="show the connection's life: states, disconnects, queue; optionally count messages",
    )
    watch.add_argument(
        "filters",
        nargs="*",
        metavar="FILTER",
        help="topic filter(s) whose messages are counted (not printed) for the rate",
    )
    return parser


def settings_from(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> ConnectionSettings:
    """The connection settings for a parsed command line; ``ValueError``/``TypeError`` naming
    the argument or variable when they are wrong."""
    overrides: dict[str, object] = {}
    if args.client_id is not None:
        overrides["client_id"] = args.client_id
    if args.url is not None:
        settings = ConnectionSettings.from_url(args.url, **overrides)
    else:
        env: Mapping[str, str] = os.environ if environ is None else environ
        if not env.get("AIO_BROKER_HOSTNAME"):
            raise ValueError(
                "--url: give a broker URL (e.g. --url mqtt://127.0.0.1:1883) or set the AIO_* "
                "environment (AIO_BROKER_HOSTNAME, AIO_BROKER_TCP_PORT, AIO_MQTT_USE_TLS, ...)"
            )
        settings = ConnectionSettings.from_env(env, **overrides)
    if args.preset is not None:
        settings = named_preset(args.preset).apply(settings)
    if args.keep_alive is not None:
        settings = dataclasses.replace(settings, keep_alive=args.keep_alive)
    return settings


def main(
    argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Run the ``rxmqtt`` command line; returns the exit status."""
    from ._run import run  # imports the connection (and paho) only when there is work

    parser = build_parser()
    args = parser.parse_args(argv)
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    try:
        settings = settings_from(args)
    except (ValueError, TypeError, OSError) as exc:
        err.write(f"rxmqtt {args.command}: error: {exc}\n")
        return 2
    try:
        return asyncio.run(run(args, settings, out, err))
    except KeyboardInterrupt:  # only where signal handlers are unavailable (Windows)
        return 0
