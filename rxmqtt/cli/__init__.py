"""``rxmqtt``: mosquitto_pub / mosquitto_sub with the same flags, on a connection that survives
broker restarts and network cuts, and that says why it changes (``-d``).

::

    rxmqtt sub -t 'sensors/#' -v                    # localhost:1883, a clean session
    rxmqtt pub -t sensors/t -m 21.5 -q 1 -r
    tail -f log | rxmqtt pub -t logs/app -l -q 1    # one message per line
    rxmqtt watch -L mqtts://broker:8883 -u me --password-file pw   # just the connection
    rxmqtt demo                                     # the Qt control room (the qt extra)

Quiet by default, as the Mosquitto clients: stdout carries what was received, stderr only a
one-line error. ``-d`` shows the connection's life on stderr: every state change with the
disconnect reason and the backoff wait, a status line (state, message rate, offline-queue depth),
and a summary. The broker is ``-h``/``-p`` (default localhost:1883), or ``-L URL``, or the
``AIO_*`` variables with ``--env``; the password ``-P``, ``--password-file`` or the
``RXMQTT_PASSWORD`` variable. Exit status: 0 done, 1 the connection or a publish failed, 2 bad
arguments, 27 ``sub`` timed out (``-W``). Bad input never gets a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, TextIO

from ._args import PASSWORD_ENV, build_parser
from ._settings import Plan, UsageError, plan_from

__all__ = ["PASSWORD_ENV", "Plan", "UsageError", "build_parser", "main", "plan_from"]

EXIT_USAGE = 2


def _payload(args: argparse.Namespace, stdin: BinaryIO) -> bytes | None:
    """The message of ``pub`` (``None`` for ``-l``, read as it arrives)."""
    if args.message is not None:  # the argument's own bytes, even when they are not UTF-8
        return os.fsencode(args.message)
    if args.file is not None:
        try:
            return Path(args.file).read_bytes()
        except OSError as exc:
            raise UsageError(f"-f: cannot read {args.file!r}: {exc.strerror or exc}") from None
    if args.stdin_file:
        return stdin.read()
    if args.null_message:
        return b""
    if args.stdin_line:
        return None
    raise UsageError("a message is required: -m MESSAGE, -f FILE, -s, -l or -n")


def _demo(argv: Sequence[str]) -> int:
    """``rxmqtt demo ARGS``: the control room (``rxmqtt.demo``; ``gui_demo`` in a checkout)."""
    try:
        module = importlib.import_module("rxmqtt.demo.__main__")
    except ModuleNotFoundError as exc:
        if exc.name not in ("rxmqtt.demo", "rxmqtt.demo.__main__"):
            raise
        module = importlib.import_module("gui_demo.__main__")  # a source checkout, not installed
    status: int = module.main(list(argv))
    return status


def _route_library_logs(debug: bool, err: TextIO) -> None:
    """The library's own log records: on stderr with ``-d``, otherwise nowhere (everything a user
    must know already ends the run with its one error line)."""
    logger = logging.getLogger("rxmqtt")
    if debug:
        handler: logging.Handler = logging.StreamHandler(err)
        handler.setFormatter(logging.Formatter("%(asctime)s  %(levelname)-13s %(message)s"))
    else:
        handler = logging.NullHandler()
    logger.addHandler(handler)


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    stdin: BinaryIO | None = None,
) -> int:
    """Run the ``rxmqtt`` command line; returns the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if stdout is None and stderr is None and hasattr(signal, "SIGPIPE"):
        # a reader that goes away (`rxmqtt sub ... | head -1`) ends the process, as it ends
        # mosquitto_sub, instead of a BrokenPipeError inside a stream callback
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if arguments[:1] == ["demo"]:
        return _demo(arguments[1:])
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    args = build_parser().parse_args(arguments)
    if args.version:
        from .. import __version__

        out.write(f"rxmqtt {__version__}\n")
        return 0
    if args.command is None:
        build_parser().print_usage(err)
        err.write("rxmqtt: error: a command is required: pub, sub, watch or demo (see --help)\n")
        return EXIT_USAGE
    if args.command == "watch":
        args.debug = True
    try:
        plan = plan_from(args)
        payload = _payload(args, stdin or sys.stdin.buffer) if args.command == "pub" else None
    except UsageError as exc:
        err.write(f"rxmqtt {args.command}: error: {exc}\n")
        return EXIT_USAGE

    _route_library_logs(args.debug, err)
    from ._run import CliRun  # imports the connection (and paho) only when there is work

    async def run() -> int:
        cli = CliRun(args, plan, out, err, payload=payload, stdin=stdin or sys.stdin.buffer)
        return await cli.run()

    try:
        return asyncio.run(run())
    except KeyboardInterrupt:  # only where signal handlers are unavailable (Windows)
        return 0
    except Exception as exc:  # a bug, not user input: one line, the traceback only with -d
        if args.debug:
            traceback.print_exc(file=err)
        err.write(f"rxmqtt {args.command}: internal error: {type(exc).__name__}: {exc}\n")
        return 1
