"""The ``rxmqtt`` command line, end to end: real subprocesses against a real Mosquitto (stopped
and restarted under them where it matters). Every flag and every error path; no stderr ever holds
a traceback."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from rxmqtt import Connection, ConnectionSettings, ConnectionState, Message, WebSocketTransport
from rxmqtt.cli import UsageError, build_parser, plan_from
from rxmqtt.testing import MosquittoBroker, TlsFiles, free_port
from rxmqtt.testing._peer import PeerLink, ScriptedPeer, connack, reply
from rxmqtt.testing.plugin import BrokerFactory
from rxmqtt.testing.recorder import Recorder

pytestmark = pytest.mark.broker

CLEAN_ENV = {
    k: v for k, v in os.environ.items() if not k.startswith("AIO_") and k != "RXMQTT_PASSWORD"
}
"""The tests' environment: no AIO_* or password variable leaks in from the machine."""


def cli(
    *args: str, stdin: bytes = b"", env: dict[str, str] | None = None, timeout: float = 30.0
) -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m rxmqtt.cli ARGS`` to its end; never a traceback on stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "rxmqtt.cli", *args],
        input=stdin,
        capture_output=True,
        env={**CLEAN_ENV, **(env or {})},
        timeout=timeout,
        check=False,
    )
    assert b"Traceback" not in done.stderr, done.stderr.decode()
    return done


def at(broker: MosquittoBroker) -> tuple[str, ...]:
    """``-h HOST -p PORT`` of ``broker``."""
    return ("-h", broker.host, "-p", str(broker.port))


def error_line(done: subprocess.CompletedProcess[bytes]) -> str:
    """The one line a failed run prints."""
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


class Cli:
    """A running ``python -m rxmqtt.cli`` whose stdout and stderr lines are collected as they
    arrive, so a test can await a line with a deadline."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.out: list[str] = []
        self.err: list[str] = []
        self._changed = asyncio.Event()
        assert proc.stdout is not None
        assert proc.stderr is not None
        self._readers = [
            asyncio.create_task(self._collect(proc.stdout, self.out)),
            asyncio.create_task(self._collect(proc.stderr, self.err)),
        ]

    async def _collect(self, stream: asyncio.StreamReader, into: list[str]) -> None:
        async for raw in stream:
            into.append(raw.decode().rstrip("\n"))
            self._changed.set()

    async def line(
        self, stream: list[str], predicate: Callable[[str], bool], timeout: float, start: int = 0
    ) -> int:
        """Index of the first line from ``start`` on matching ``predicate``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for index in range(start, len(stream)):
                if predicate(stream[index]):
                    return index
            remaining = deadline - loop.time()
            if remaining <= 0 or self.proc.returncode is not None:
                raise TimeoutError(
                    f"no matching line within {timeout}s; stdout={self.out!r} stderr={self.err!r}"
                )
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                continue

    async def exit_code(self, timeout: float = 10.0) -> int:
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        await asyncio.gather(*self._readers)
        assert not any("Traceback" in line for line in self.err), self.err
        return code


StartCli = Callable[..., Awaitable[Cli]]


@pytest.fixture
async def start_cli() -> AsyncIterator[StartCli]:
    """Starts CLIs (``await start_cli(*args, stdin=True)``); kills any a failing test left."""
    started: list[Cli] = []

    async def start(*args: str, stdin: bool = False) -> Cli:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "rxmqtt.cli",
            *args,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=CLEAN_ENV,
        )
        started.append(Cli(proc))
        return started[-1]

    yield start
    for running in started:
        if running.proc.returncode is None:
            running.proc.kill()
            await running.proc.wait()


async def live(listener: Connection, got: Recorder[Message], probe: str) -> None:
    """Publish probes to ``probe`` until ``got`` has one: the listener's subscription is live."""
    for _ in range(50):
        await listener.publish(probe, b"probe", qos=1)
        try:
            await got.wait_for_count(1, 0.2)
            return
        except (AssertionError, TimeoutError):
            continue
    raise AssertionError("the listener never received its probe")


# ---------------------------------------------------------------------- publishing and receiving


def test_pub_then_sub_with_host_port_retain_qos_verbose_and_count(
    rxmqtt_mosquitto: MosquittoBroker,
) -> None:
    """-h -p -t -m -q -r; then -t (twice) -v -C: retained messages come back, one a line."""
    for topic, text in (("r/a", "alpha"), ("r/b", "beta")):
        done = cli("pub", *at(rxmqtt_mosquitto), "-t", topic, "-m", text, "-q", "1", "-r")
        assert (done.returncode, done.stdout, done.stderr) == (0, b"", b""), "quiet by default"
    done = cli("sub", *at(rxmqtt_mosquitto), "-t", "r/a", "-t", "r/b", "-v", "-C", "2", "-q", "2")
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.splitlines()) == [b"r/a alpha", b"r/b beta"]
    assert done.stderr == b""
    done = cli("sub", *at(rxmqtt_mosquitto), "-t", "r/a", "-C", "1")
    assert done.stdout == b"alpha\n", "without -v: the payload alone"


@pytest.mark.parametrize(
    ("source", "stdin", "expected"),
    [
        (("-f", "{file}"), b"", b"\x00file\xffbytes\n"),
        (("-s",), b"\x00stdin\xff\nall of it", b"\x00stdin\xff\nall of it"),
        (("-m", "-"), b"ignored", b"-"),
        (("-m", os.fsdecode(b"\xff\xfe raw")), b"", b"\xff\xfe raw"),
    ],
    ids=["file", "stdin", "dash-is-literal", "non-utf8-argument"],
)
def test_pub_message_sources(
    rxmqtt_mosquitto: MosquittoBroker,
    tmp_path: Path,
    source: tuple[str, ...],
    stdin: bytes,
    expected: bytes,
) -> None:
    """-f FILE, -s (all of stdin, bytes as they are), -m '-' is just '-', and -m sends the
    argument's bytes even when they are not UTF-8."""
    payload_file = tmp_path / "payload.bin"
    payload_file.write_bytes(b"\x00file\xffbytes\n")
    args = [part.replace("{file}", str(payload_file)) for part in source]
    done = cli("pub", *at(rxmqtt_mosquitto), "-t", "src/x", "-r", "-q", "1", *args, stdin=stdin)
    assert done.returncode == 0, done.stderr
    got = cli("sub", *at(rxmqtt_mosquitto), "-t", "src/x", "-C", "1")
    assert got.stdout == expected + b"\n", "the payload's bytes, unchanged"


def test_pub_null_message(rxmqtt_mosquitto: MosquittoBroker) -> None:
    """-n: an empty payload (Mosquitto logs its size)."""
    done = cli("pub", *at(rxmqtt_mosquitto), "-t", "null/x", "-n", "-q", "1")
    assert done.returncode == 0, done.stderr
    log = rxmqtt_mosquitto.log_text()
    assert re.search(
        r"Received PUBLISH from \S+ \(d0, q1, r0, m\d+, 'null/x', \.\.\. \(0 bytes\)\)", log
    )


async def test_pub_lines_are_sent_as_they_arrive(
    rxmqtt_mosquitto: MosquittoBroker, start_cli: StartCli
) -> None:
    """-l: each line is a message the moment it is read; blank lines are skipped; EOF ends it."""
    listener = Connection(ConnectionSettings.from_url(rxmqtt_mosquitto.url))
    got: Recorder[Message] = Recorder(listener.messages("lines/#", qos=1))
    async with listener:
        await live(listener, got, "lines/probe")
        publisher = await start_cli(
            "pub", *at(rxmqtt_mosquitto), "-t", "lines/x", "-l", "-q", "1", stdin=True
        )
        stdin = publisher.proc.stdin
        assert stdin is not None
        stdin.write(b"first\n")
        await stdin.drain()
        await got.wait_until(lambda ms: any(m.payload == b"first" for m in ms), 10, "first")
        assert publisher.proc.returncode is None, "still reading stdin"
        stdin.write(b"\nsecond\r\n")
        stdin.close()
        assert await publisher.exit_code(10) == 0, publisher.err
        await got.wait_until(lambda ms: any(m.payload == b"second" for m in ms), 5, "second")
    payloads = [m.payload for m in got.items if m.topic == "lines/x"]
    assert payloads == [b"first", b"second"], "no blank message, no line ending"


def test_pub_repeat(rxmqtt_mosquitto: MosquittoBroker) -> None:
    """--repeat N publishes N times, --repeat-delay apart (-d's summary counts them, QoS 0 as
    written, not acked)."""
    done = cli("pub", *at(rxmqtt_mosquitto), "-t", "rep", "-m", "x", "--repeat", "3", "-d")
    assert done.returncode == 0
    summary = done.stderr.decode().splitlines()[-1]
    assert "published 3 messages: 3 written (QoS 0), 0 failed, 0 unresolved" in summary
    done = cli("pub", *at(rxmqtt_mosquitto), "-t", "rep", "-m", "x", "-q", "1", "-d")
    assert "published 1 message: 1 acked, 0 failed" in done.stderr.decode().splitlines()[-1]
    paced = ("--repeat", "3", "--repeat-delay", "0.4", "-q", "1", "-d")
    done = cli("pub", *at(rxmqtt_mosquitto), "-t", "rep", "-m", "x", *paced)
    summary = done.stderr.decode().splitlines()[-1]
    took = re.search(r"published 3 messages: 3 acked, 0 failed, 0 unresolved in ([\d.]+)s", summary)
    assert took is not None, summary
    assert float(took.group(1)) >= 0.75, "--repeat-delay: two waits of 0.4 s"


def test_url_carries_credentials_and_topic(rxmqtt_mosquitto_factory: BrokerFactory) -> None:
    """-L mqtt://user:pass@host:port/topic, as mosquitto's -L; the path is the topic."""
    broker = rxmqtt_mosquitto_factory(users={"cli": "s3cret"})
    url = f"mqtt://cli:s3cret@{broker.host}:{broker.port}/url/topic"
    assert cli("pub", "-L", url, "-m", "via url", "-r", "-q", "1").returncode == 0
    done = cli("sub", "-L", url, "-C", "1", "-v")
    assert done.stdout == b"url/topic via url\n"


# ---------------------------------------------------------------------- session and identity


def test_client_id_keepalive_and_clean_session_by_default(
    rxmqtt_mosquitto: MosquittoBroker,
) -> None:
    """-i and -k reach the broker; without -c the session is clean (Mosquitto logs c1)."""
    cli("pub", *at(rxmqtt_mosquitto), "-t", "x", "-m", "x", "-i", "cli-id-1", "-k", "17")
    cli("pub", *at(rxmqtt_mosquitto), "-t", "x", "-m", "x", "--preset", "k8s-multi-node")
    log = rxmqtt_mosquitto.log_text()
    assert re.search(r"as cli-id-1 \(p5, c1, k17\)", log), log
    assert re.search(r"as rxmqtt-\w+ \(p5, c1, k10\)", log), "--preset's keep-alive"


def test_persistent_session_with_c_keeps_messages_while_away(
    rxmqtt_mosquitto: MosquittoBroker,
) -> None:
    """-c -i ID (-x SECONDS): the broker keeps the subscription and queues QoS 1 while the
    client is away; a clean session (the default) gets nothing."""
    for flags in (("-c", "-i", "keeper", "-x", "60"), ("-i", "forgetter")):
        first = cli("sub", *at(rxmqtt_mosquitto), "-t", "away/x", "-q", "1", "-W", "0.5", *flags)
        assert first.returncode == 27, "-W ended it: mosquitto_sub's timeout status"
        assert error_line(first) == "rxmqtt sub: error: timed out after 0.5 s"
        assert (
            cli("pub", *at(rxmqtt_mosquitto), "-t", "away/x", "-m", "m", "-q", "1").returncode == 0
        )
        again = cli(
            "sub", *at(rxmqtt_mosquitto), "-t", "away/x", "-q", "1", "-C", "1", "-W", "2", *flags
        )
        if "-c" in flags:
            assert (again.returncode, again.stdout) == (0, b"m\n"), again.stderr
        else:
            assert (again.returncode, again.stdout) == (27, b""), "a clean session kept nothing"
    assert re.search(r"as keeper \(p5, c0, k60\)", rxmqtt_mosquitto.log_text())


# ---------------------------------------------------------------------- credentials and TLS


def test_password_from_flag_file_or_environment(
    rxmqtt_mosquitto_factory: BrokerFactory, tmp_path: Path
) -> None:
    """-u with -P, --password-file or $RXMQTT_PASSWORD; a wrong one is exit 1 with the reason."""
    broker = rxmqtt_mosquitto_factory(users={"cli": "s3cret"})
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    base = ("pub", *at(broker), "-t", "auth", "-m", "x", "-u", "cli")
    assert cli(*base, "-P", "s3cret").returncode == 0
    assert cli(*base, "--password-file", str(secret)).returncode == 0
    assert cli(*base, env={"RXMQTT_PASSWORD": "s3cret"}).returncode == 0
    wrong = cli(*base, "-P", "wrong")
    assert wrong.returncode == 1
    assert error_line(wrong).startswith(f"rxmqtt pub: error: could not connect to {broker.host}:")
    assert "0x87 Not authorized" in error_line(wrong), "with the broker's reason code"


def test_tls_flags(rxmqtt_mosquitto_factory: BrokerFactory, rxmqtt_tls_files: TlsFiles) -> None:
    """--cafile turns TLS on; --cert/--key for a broker that demands a client certificate;
    --insecure accepts a certificate for another host; an unverifiable one is exit 1."""
    tls = rxmqtt_tls_files
    broker = rxmqtt_mosquitto_factory(tls=tls, require_certificate=True)
    base = ("pub", *at(broker), "-t", "tls", "-m", "x", "--cafile", str(tls.ca_file))
    assert cli(*base, "--cert", str(tls.client_cert), "--key", str(tls.client_key)).returncode == 0
    no_cert = cli(*base)
    assert no_cert.returncode == 1
    assert "could not connect" in error_line(no_cert)
    wrong_host = rxmqtt_mosquitto_factory(tls=tls, tls_wrong_host=True)
    base = ("pub", *at(wrong_host), "-t", "tls", "-m", "x", "--cafile", str(tls.ca_file))
    refused = cli(*base)
    assert refused.returncode == 1
    assert "certificate" in error_line(refused).lower() or "hostname" in error_line(refused)
    assert cli(*base, "--insecure").returncode == 0
    other_ca = cli("pub", *at(broker), "-t", "t", "-m", "x", "--cafile", str(tls.other_ca_file))
    assert other_ca.returncode == 1
    assert "TLS certificate verification failed" in error_line(other_ca)


# ---------------------------------------------------------------------- where the broker comes from


def test_aio_environment_only_with_env(rxmqtt_mosquitto: MosquittoBroker) -> None:
    """The AIO_* variables are read with --env and ignored without it."""
    aio = {
        "AIO_BROKER_HOSTNAME": rxmqtt_mosquitto.host,
        "AIO_BROKER_TCP_PORT": str(rxmqtt_mosquitto.port),
        "AIO_MQTT_USE_TLS": "false",
    }
    assert cli("pub", "--env", "-t", "env/x", "-m", "x", env=aio).returncode == 0
    unused = free_port()
    ignored = cli("pub", "-p", str(unused), "-t", "env/x", "-m", "x", env=aio)
    assert ignored.returncode == 1
    assert f"could not connect to localhost:{unused}" in error_line(ignored)
    missing = cli("pub", "--env", "-t", "env/x", "-m", "x")
    assert missing.returncode == 2
    assert error_line(missing) == (
        "rxmqtt pub: error: --env: AIO_BROKER_HOSTNAME is not set (or give -h HOST)"
    )


# ---------------------------------------------------------------------- connection failures


def test_refused_port_and_unknown_host_fail_at_once() -> None:
    """Like mosquitto_pub: a first connection that fails ends the run (exit 1, one line)."""
    port = free_port()
    refused = cli("sub", "-p", str(port), "-t", "x", timeout=15)
    assert refused.returncode == 1
    assert error_line(refused).startswith(
        f"rxmqtt sub: error: could not connect to localhost:{port}"
    )
    unknown = cli("pub", "-h", "no-such-host.invalid", "-t", "x", "-m", "x", timeout=15)
    assert unknown.returncode == 1
    assert "could not connect to no-such-host.invalid:1883" in error_line(unknown)


def test_retries_then_gives_up_and_timeout_bounds_forever() -> None:
    """--retries N: N more attempts, then exit 1; --retries forever ends at -W, also exit 1."""
    port = str(free_port())
    done = cli("sub", "-p", port, "-t", "x", "--retries", "2", "-d", timeout=30)
    assert done.returncode == 1
    err = done.stderr.decode()
    assert "attempt 3 failed" in err
    assert "attempt 4" not in err
    assert f"rxmqtt sub: error: could not connect to localhost:{port}" in err
    done = cli("pub", "-p", port, "-t", "x", "-m", "x", "--retries", "forever", "-W", "1")
    assert done.returncode == 1
    assert error_line(done).startswith(
        f"rxmqtt pub: error: not connected to localhost:{port} within 1 s"
    )
    watch = cli("watch", "-p", port, "--retries", "forever", "-W", "1")
    assert watch.returncode == 1, "watch: -W is a normal end only once connected"
    assert f"rxmqtt watch: error: not connected to localhost:{port}" in watch.stderr.decode()


def test_a_reader_that_goes_away_ends_the_run() -> None:
    """``rxmqtt ... -d 2>&1 | head -2``: when the pipe closes the process ends (SIGPIPE, as the
    Unix tools), instead of hanging on a BrokenPipeError inside a stream callback."""
    args = ("pub", "-p", str(free_port()), "-t", "x", "-m", "x", "--retries", "forever", "-d")
    proc = subprocess.Popen(
        [sys.executable, "-m", "rxmqtt.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=CLEAN_ENV,
    )
    try:
        assert proc.stderr is not None
        assert b"CONNECTING" in proc.stderr.readline()
        proc.stderr.close()  # the reader goes away; the next event line hits a closed pipe
        assert proc.wait(timeout=10) == -signal.SIGPIPE
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_sub_survives_a_broker_restart_and_gives_up_only_when_told(
    rxmqtt_mosquitto_factory: BrokerFactory, start_cli: StartCli
) -> None:
    """Once connected, a lost connection is retried (-d shows why); with --retries N it gives
    up after N failed attempts: exit 1, one error line."""
    broker = rxmqtt_mosquitto_factory()
    sub = await start_cli("sub", *at(broker), "-t", "x/#", "-d", "--retries", "1")
    await sub.line(sub.err, lambda line: "connected to" in line, 10)
    broker.stop()
    await sub.line(sub.err, lambda line: "RECONNECTING" in line and "network: 0x80" in line, 10)
    assert await sub.exit_code(20) == 1
    errors = [line for line in sub.err if "error" in line]
    assert errors == [
        next(line for line in sub.err if line.startswith("rxmqtt sub: error: gave up"))
    ]


async def test_debug_shows_the_connection_life_through_a_restart(
    rxmqtt_mosquitto: MosquittoBroker, start_cli: StartCli
) -> None:
    """-d: state changes with reasons on stderr, data on stdout, a summary; Ctrl-C is exit 0."""
    sub = await start_cli(
        "sub", *at(rxmqtt_mosquitto), "-t", "cli/#", "-v", "-q", "1", "-d", "--progress", "0.3"
    )
    await sub.line(sub.err, lambda line: "CONNECTED" in line and "connected to" in line, 10)
    async with Connection(ConnectionSettings.from_url(rxmqtt_mosquitto.url)) as helper:
        await helper.wait_for(ConnectionState.CONNECTED, 5)
        rxmqtt_mosquitto.stop()
        lost = await sub.line(sub.err, lambda line: "disconnected: network: 0x80" in line, 5)
        assert "RECONNECTING" in sub.err[lost]
        assert "retrying in" in sub.err[lost]
        rxmqtt_mosquitto.start()
        await sub.line(sub.err, lambda line: "connected to" in line, 10, lost)
        await helper.wait_for(ConnectionState.CONNECTED, 10)
        for _ in range(100):  # until the re-subscribed CLI prints one
            await helper.publish("cli/data", b"after restart", qos=1)
            try:
                await sub.line(sub.out, lambda line: line == "cli/data after restart", 0.2)
                break
            except TimeoutError:
                continue
    await sub.line(
        sub.err, lambda line: re.search(r"progress +CONNECTED \d+s \|", line) is not None, 5
    )
    sub.proc.send_signal(signal.SIGINT)
    assert await sub.exit_code() == 0, "Ctrl-C is a clean exit"
    assert "CLOSED" in sub.err[-1]
    assert re.search(r"received \d+ messages? in", sub.err[-1])


def test_watch_counts_without_printing(
    rxmqtt_mosquitto: MosquittoBroker,
) -> None:
    """watch: the connection's life and the rate, no data; -W ends it with exit 0."""
    done = cli("watch", *at(rxmqtt_mosquitto), "-t", "#", "-W", "1", "--progress", "0.2")
    assert done.returncode == 0, done.stderr
    assert done.stdout == b""
    err = done.stderr.decode()
    assert "connected to" in err
    assert re.search(
        r"progress +CONNECTED \d+s \| \d+ msgs? \| [\d.]+ msg/s \| queue 0 \(0 B\)", err
    )


# ---------------------------------------------------------------------- refusals by the broker


def test_refused_publish_is_exit_1_with_the_reason_code(
    rxmqtt_mosquitto_factory: BrokerFactory,
) -> None:
    broker = rxmqtt_mosquitto_factory(acl="topic read ro/#\n", allow_anonymous=True)
    done = cli("pub", *at(broker), "-t", "ro/x", "-m", "x", "-q", "1")
    assert done.returncode == 1
    assert (
        error_line(done)
        == "rxmqtt pub: error: broker rejected publish to 'ro/x': 0x87 Not authorized"
    )


async def against_scripted_broker(*args: str) -> tuple[int, str]:
    """Run the CLI against a scripted peer that accepts the connection, refuses every SUBSCRIBE
    (SUBACK 0x87) and never acknowledges a PUBLISH: what Mosquitto will not do. Returns the exit
    status and stderr."""

    async def refuse_subscriptions(link: PeerLink) -> None:
        link.send(connack())
        while True:  # a PUBLISH is read and never acknowledged
            link.send(reply(await link.next_request(), codes=b"\x87"))

    async with ScriptedPeer(refuse_subscriptions) as peer:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "rxmqtt.cli", *args, "-h", "127.0.0.1", "-p", str(peer.port),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=CLEAN_ENV,
        )  # fmt: skip
        _out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def test_refused_subscription_is_exit_1_with_the_reason_code() -> None:
    """(Mosquitto grants any filter and withholds what its ACL denies.)"""
    status, err = await against_scripted_broker("sub", "-t", "no/#")
    assert status == 1
    assert err == "rxmqtt sub: error: broker refused subscription 'no/#': 0x87 Not authorized\n"


async def test_unacknowledged_publish_is_exit_1_at_the_timeout() -> None:
    status, err = await against_scripted_broker("pub", "-t", "x", "-m", "x", "-q", "1", "-W", "1")
    assert status == 1
    assert err == "rxmqtt pub: error: timed out after 1 s: 1 of 1 publishes unresolved\n"


# ---------------------------------------------------------------------- bad input: exit 2, one line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("pub", "-t", "a/+/bad", "-m", "x"), "-t: wildcards '+' and '#' are not allowed"),
        (("sub", "-t", "a/#/b"), "-t: '#' must be the last level: 'a/#/b'"),
        (("pub", "-t", os.fsdecode(b"\xff"), "-m", "x"), "-t: must be valid UTF-8"),
        (("pub", "-m", "x"), "-t: a topic is required"),
        (("sub",), "-t: at least one topic filter is required"),
        (("pub", "-t", "x"), "a message is required: -m MESSAGE, -f FILE, -s, -l or -n"),
        (("pub", "-t", "x", "-f", "/no/such/file"), "-f: cannot read '/no/such/file'"),
        (
            ("pub", "-t", "x", "-n", "--password-file", "/no/such/pw"),
            "--password-file: cannot read",
        ),
        (("pub", "-t", "x", "-n", "-P", "a", "--password-file", "f"), "-P: cannot be combined"),
        (("sub", "-t", "x", "-c"), "-c: a persistent session needs a client id (-i ID)"),
        (("sub", "-t", "x", "-x", "5"), "-x: only with -c"),
        (("sub", "-t", "x", "--env", "-L", "mqtt://h"), "--env: cannot be combined with -L"),
        (("sub", "-L", "http://h/x"), "url: unknown scheme 'http'"),
        (("sub", "-t", "x", "--cert", "c.pem"), "--cert/--key: give both or neither"),
        (("sub", "-t", "x", "--cafile", "/no/ca.pem"), "--cafile: no such file: '/no/ca.pem'"),
    ],
)
def test_bad_input_is_exit_2_with_one_line_naming_it(args: tuple[str, ...], message: str) -> None:
    done = cli(*args)
    assert done.returncode == 2, done.stderr
    line = error_line(done)
    assert line.startswith(f"rxmqtt {args[0]}: error: "), line
    assert message in line, line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("pub", "-t", "x", "-m", "a", "-f", "b"), "argument -f/--file: not allowed with"),
        (("sub", "-t", "x", "-q", "3"), "argument -q/--qos: must be 0, 1 or 2, got '3'"),
        (("sub", "-t", "x", "-p", "70000"), "argument -p/--port: must be between 1 and 65535"),
        (("sub", "-t", "x", "-C", "0"), "argument -C/--count: must be >= 1, got '0'"),
        (("sub", "-t", "x", "-W", "-1"), "argument -W/--timeout: must be > 0, got '-1'"),
        (("sub", "-t", "x", "--retries", "few"), "argument --retries: must be an integer"),
        (("sub", "-t", "x", "--preset", "nope"), "argument --preset: invalid choice: 'nope'"),
        (("nope",), "argument COMMAND: invalid choice: 'nope'"),
    ],
)
def test_bad_flags_are_exit_2_with_usage(args: tuple[str, ...], message: str) -> None:
    done = cli(*args)
    assert done.returncode == 2
    err = done.stderr.decode()
    assert err.startswith("usage: rxmqtt")
    assert message in err.splitlines()[-1], err


def test_help_version_and_no_command() -> None:
    """--help is help (-h is the host), for each command; --version; no command is exit 2."""
    top = cli("--help")
    assert top.returncode == 0
    assert b"exit status:" in top.stdout
    for command in ("pub", "sub", "watch"):
        done = cli(command, "--help")
        assert done.returncode == 0
        assert b"-h HOST, --host HOST" in done.stdout
    version = cli("--version")
    assert re.fullmatch(rb"rxmqtt \S+\n", version.stdout)
    bare = cli()
    assert bare.returncode == 2
    assert "a command is required" in bare.stderr.decode()


def test_demo_help_runs_the_control_room_entry_point() -> None:
    pytest.importorskip("PySide6", reason="the demo needs the qt extra")
    done = cli("demo", "--help")
    assert done.returncode == 0
    assert b"usage: python -m " in done.stdout
    assert b"--broker" in done.stdout


# ---------------------------------------------------------------------- the plan, in process


def test_plan_defaults_and_what_wins() -> None:
    """Defaults: localhost:1883, a clean session, no retry of the first connection. -L, a
    --preset and flags compose; flags win; $RXMQTT_PASSWORD only where no password is given."""
    parser = build_parser()
    plan = plan_from(parser.parse_args(["sub", "-t", "x"]), {})
    settings = plan.settings
    assert (settings.host, settings.port) == ("localhost", 1883)
    assert (settings.clean_start, settings.session_expiry) == (True, 0)
    assert plan.reconnect.retry_first_connect is False
    assert plan.reconnect.max_attempts is None, "once connected, losses are retried"
    args = parser.parse_args(
        ["sub", "-L", "mqtt://h:1884/u/t?client_id=a", "--preset", "mcu-headless", "-k", "7", "-c"]
    )
    plan = plan_from(args, {})
    assert (plan.settings.host, plan.settings.port, plan.settings.client_id) == ("h", 1884, "a")
    assert plan.filters == ("u/t",)
    assert plan.settings.keep_alive == 7, "-k wins over the preset"
    assert plan.settings.receive_maximum == 8, "the preset's session fields are applied"
    assert (plan.settings.clean_start, plan.settings.session_expiry) == (False, 86_400)
    assert "queue" in plan.connection_kwargs, "the preset's policies"
    tls = plan_from(parser.parse_args(["pub", "-t", "x", "--tls-use-os-certs"]), {}).settings
    assert (tls.tls is not None, tls.port) == (True, 8883), "TLS moves the default port"
    ws = plan_from(parser.parse_args(["sub", "-t", "x", "-L", "ws://h:9001/mqtt"]), {})
    assert (ws.settings.port, ws.settings.transport, ws.filters) == (
        9001,
        WebSocketTransport(path="/mqtt"),
        ("x",),
    ), "a ws:// URL's path is the WebSocket path, not a topic"
    url = parser.parse_args(["sub", "-t", "x", "-L", "mqtt://u:from-url@h"])
    assert plan_from(url, {"RXMQTT_PASSWORD": "from-env"}).settings.credentials()[1] == b"from-url"
    flag = parser.parse_args(["sub", "-t", "x", "-L", "mqtt://u:from-url@h", "-P", "from-flag"])
    assert plan_from(flag, {}).settings.credentials()[1] == b"from-flag", "-P wins"
    expiry = plan_from(parser.parse_args(["sub", "-t", "x", "-c", "-i", "a", "-x", "60"]), {})
    assert (expiry.settings.clean_start, expiry.settings.session_expiry) == (False, 60)
    retries = plan_from(parser.parse_args(["pub", "-t", "x", "--retries", "3"]), {}).reconnect
    assert (retries.max_attempts, retries.retry_first_connect) == (3, True)


def test_an_mqtt_311_url_gets_its_session_rule() -> None:
    """-L mqttv311://: -c is Clean Session 0 (no expiry to give), -x says it needs MQTT 5."""
    parser = build_parser()
    clean = plan_from(parser.parse_args(["sub", "-t", "x", "-L", "mqttv311://h"]), {}).settings
    assert (clean.protocol_version, clean.clean_start, clean.session_expiry) == (4, True, 0)
    kept = plan_from(
        parser.parse_args(["sub", "-t", "x", "-L", "mqttv311://h", "-c", "-i", "a"]), {}
    )
    assert (kept.settings.clean_start, kept.settings.session_expiry) == (False, 0xFFFFFFFF)
    args = parser.parse_args(["sub", "-t", "x", "-L", "mqttv311://h", "-c", "-i", "a", "-x", "60"])
    with pytest.raises(UsageError, match=r"^-x: needs MQTT 5"):
        plan_from(args, {})
