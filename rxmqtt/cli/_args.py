"""The command line's grammar: mosquitto_pub / mosquitto_sub flags, plus rxmqtt's own.

``-h`` is the host (as in the Mosquitto clients); ``--help`` is help.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from ..presets import PRESETS

__all__ = ["FOREVER", "PASSWORD_ENV", "build_parser"]

PASSWORD_ENV = "RXMQTT_PASSWORD"
"""The environment variable read for the password when neither ``-P`` nor ``--password-file``
is given: it keeps the secret off the command line (and out of ``ps``)."""

FOREVER = -1
"""``--retries forever``."""


def _number(
    kind: type[int] | type[float], low: float, *, above: bool = False
) -> Callable[[str], float]:
    """An argparse type: a finite ``kind`` that is ``>= low`` (``> low`` when ``above``)."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            noun = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"must be {noun}, got {text!r}") from None
        if not math.isfinite(value) or (value <= low if above else value < low):
            sign = ">" if above else ">="
            raise argparse.ArgumentTypeError(f"must be {sign} {low:g}, got {text!r}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in "invalid ... value" messages
    return parse


def _port(text: str) -> int:
    port = int(_number(int, 1)(text))
    if port > 65535:
        raise argparse.ArgumentTypeError(f"must be between 1 and 65535, got {text!r}")
    return port


def _qos(text: str) -> int:
    if text not in ("0", "1", "2"):
        raise argparse.ArgumentTypeError(f"must be 0, 1 or 2, got {text!r}")
    return int(text)


def _retries(text: str) -> int:
    if text == "forever":
        return FOREVER
    return int(_number(int, 0)(text))


def _connection_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--help", action="help", help="show this help and exit")
    broker = common.add_argument_group("broker")
    broker.add_argument("-h", "--host", help="broker host (default: localhost)")
    broker.add_argument(
        "-p", "--port", type=_port, help="broker port (default: 1883, or 8883 with TLS)"
    )
    broker.add_argument(
        "-L",
        "--url",
        help="broker as a URL: mqtt(s)://[user[:password]@]host[:port][/topic]; a path is the "
        "topic (-t). Flags given beside it win",
    )
    broker.add_argument(
        "--env",
        action="store_true",
        help="take the broker from the AIO_* environment variables (Azure IoT Operations; TLS "
        "unless AIO_MQTT_USE_TLS=false); flags given beside it win",
    )
    broker.add_argument("-i", "--id", dest="client_id", help="client id (default: a random one)")
    broker.add_argument(
        "-c",
        "--disable-clean-session",
        dest="persistent",
        action="store_true",
        help="keep the session on the broker after disconnecting (needs -i); default: a clean "
        "session that ends with the connection",
    )
    broker.add_argument(
        "-x",
        "--session-expiry",
        type=_number(int, 0),
        metavar="SECONDS",
        help="with -c: how long the broker keeps the session (default: 1 day)",
    )
    broker.add_argument(
        "-k",
        "--keepalive",
        type=_number(int, 0),
        metavar="SECONDS",
        help="keep-alive (default 60; a dead link is noticed within ~1.5x this)",
    )
    auth = common.add_argument_group("authentication")
    auth.add_argument("-u", "--username", help="username")
    auth.add_argument(
        "-P",
        "--pw",
        dest="password",
        help=f"password (visible in ps: prefer --password-file or ${PASSWORD_ENV})",
    )
    auth.add_argument(
        "--password-file",
        metavar="FILE",
        help="read the password from FILE (one trailing newline is ignored)",
    )
    tls = common.add_argument_group("TLS (any of these turns TLS on)")
    tls.add_argument("--cafile", metavar="FILE", help="CA certificate(s) to verify the broker")
    tls.add_argument(
        "--tls-use-os-certs", action="store_true", help="verify the broker with the system CAs"
    )
    tls.add_argument("--cert", metavar="FILE", help="client certificate (with --key)")
    tls.add_argument("--key", metavar="FILE", help="client private key (with --cert)")
    tls.add_argument(
        "--insecure",
        action="store_true",
        help="do not check that the certificate names the host (testing only)",
    )
    run = common.add_argument_group("run")
    run.add_argument(
        "-W",
        "--timeout",
        type=_number(float, 0, above=True),
        metavar="SECONDS",
        help="end the run after SECONDS (see exit status)",
    )
    run.add_argument(
        "--retries",
        type=_retries,
        metavar="N",
        help="connection attempts retried in a row before giving up, or 'forever' (default: the "
        "first connection is not retried; once connected, a lost connection is retried forever)",
    )
    run.add_argument(
        "--preset",
        choices=[name.replace("_", "-") for name in PRESETS],
        help="reconnect, offline-queue and publish-retry policies of an application type",
    )
    run.add_argument(
        "-d",
        "--debug",
        action="store_true",
        help="show the connection's life on stderr: state changes, disconnect reasons, backoff, "
        "a status line, and a summary",
    )
    run.add_argument(
        "--progress",
        type=_number(float, 0),
        metavar="SECONDS",
        help="with -d: seconds between status lines when stderr is not a terminal "
        "(default 5; 0: none)",
    )
    return common


_EXIT_STATUS = """\
exit status:
  0   done: pub: every message acknowledged (QoS 0: written); sub: -C messages received, or
      stopped by Ctrl-C/SIGTERM; watch: stopped
  1   the connection failed: never connected (within -W, or after --retries), the broker
      refused the credentials, a publish was refused or not completed, or the connection gave up
  2   bad arguments: a flag, a topic or filter, an unreadable file
  27  sub: -W ended the run before -C messages arrived, or at all without -C
      (mosquitto_sub's timeout status)
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: ``rxmqtt {pub,sub,watch,demo} ...``."""
    common = _connection_options()
    parser = argparse.ArgumentParser(
        prog="rxmqtt",
        description="mosquitto_pub / mosquitto_sub that survive broker restarts and network cuts, "
        "and show why the connection changes (-d).",
        epilog=_EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=False,
    )
    parser.add_argument("--help", action="help", help="show this help and exit")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            parents=[common],
            add_help=False,
            help=summary,
            description=description,
            epilog=_EXIT_STATUS,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    pub = command(
        "pub",
        "publish messages (like mosquitto_pub)",
        "Publish one message (-m, -f, -s, -n), or one per line of stdin (-l).",
    )
    pub.add_argument("-t", "--topic", help="topic to publish to (required unless -L has one)")
    source = pub.add_argument_group("message (exactly one)").add_mutually_exclusive_group()
    source.add_argument("-m", "--message", help="the message text")
    source.add_argument("-f", "--file", metavar="FILE", help="send the contents of FILE")
    source.add_argument(
        "-s", "--stdin-file", action="store_true", help="send all of stdin as one message"
    )
    source.add_argument(
        "-l",
        "--stdin-line",
        action="store_true",
        help="send each line of stdin as a message, as it arrives (blank lines are skipped)",
    )
    source.add_argument("-n", "--null-message", action="store_true", help="send an empty message")
    pub.add_argument("-q", "--qos", type=_qos, default=0, help="QoS 0, 1 or 2 (default 0)")
    pub.add_argument("-r", "--retain", action="store_true", help="set the retain flag")
    pub.add_argument(
        "--repeat",
        type=_number(int, 1),
        default=1,
        metavar="COUNT",
        help="publish the message COUNT times (default 1)",
    )
    pub.add_argument(
        "--repeat-delay",
        type=_number(float, 0),
        default=0.0,
        metavar="SECONDS",
        help="seconds between repeats (default 0: as fast as acknowledgements allow)",
    )

    sub = command(
        "sub",
        "print messages matching topic filters (like mosquitto_sub)",
        "Print each message (its payload; with -v 'topic payload') on stdout.",
    )
    sub.add_argument(
        "-t",
        "--topic",
        dest="filters",
        action="append",
        metavar="FILTER",
        help="topic filter, e.g. 'a/+/#' (repeat for more; required unless -L has one)",
    )
    sub.add_argument(
        "-q", "--qos", type=_qos, default=0, help="subscription QoS 0, 1 or 2 (default 0)"
    )
    sub.add_argument("-C", "--count", type=_number(int, 1), help="exit after this many messages")
    sub.add_argument("-v", "--verbose", action="store_true", help="print 'topic payload' lines")

    watch = command(
        "watch",
        "show the connection's life (implies -d); -t filters are counted, not printed",
        "Show every state change, disconnect reason and backoff, and a status line with the "
        "message rate of the -t filters and the offline-queue depth.",
    )
    watch.add_argument(
        "-t",
        "--topic",
        dest="filters",
        action="append",
        metavar="FILTER",
        help="topic filter whose messages are counted for the rate (repeatable)",
    )

    commands.add_parser(
        "demo",
        add_help=False,
        help="the Qt control room on an embedded Mosquitto (needs the qt extra); "
        "'rxmqtt demo --help' for its options",
    )
    return parser
