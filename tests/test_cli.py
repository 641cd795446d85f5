"""The ``rxmqtt`` command line, end to end: real subprocesses against a real Mosquitto that is
stopped and restarted under them."""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Callable

import pytest

from rxmqtt import Connection, ConnectionSettings, ConnectionState
from rxmqtt.cli import build_parser, main, settings_from
from rxmqtt.testing import MosquittoBroker
from rxmqtt.testing.plugin import BrokerFactory
from rxmqtt.testing.recorder import Recorder


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
        return code


async def start_cli(*args: str, env: dict[str, str] | None = None) -> Cli:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rxmqtt.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    return Cli(proc)


@pytest.fixture
async def cleanup() -> AsyncIterator[list[Cli]]:
    """Kills any CLI a failing test left running."""
    started: list[Cli] = []
    yield started
    for cli in started:
        if cli.proc.returncode is None:
            cli.proc.kill()
            await cli.proc.wait()


async def subscribed(cli: Cli, helper: Connection, topic: str, timeout: float = 10.0) -> None:
    """Publish probes until ``cli`` prints one (its subscription is live)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    start = len(cli.out)
    while True:
        await helper.publish(topic, b"probe", qos=1)
        try:
            await cli.line(cli.out, lambda line: line.startswith(topic), 0.2, start)
            return
        except TimeoutError:
            if loop.time() > deadline:
                raise


@pytest.mark.broker
async def test_sub_survives_a_broker_restart_showing_why(
    rxmqtt_mosquitto: MosquittoBroker, cleanup: list[Cli]
) -> None:
    # A named client: only a persistent session can be lost (and reported) by the restart.
    url = rxmqtt_mosquitto.url + "?client_id=cli-restart"
    cli = await start_cli("sub", "cli/#", "-v", "--qos", "1", "--url", url)
    cleanup.append(cli)
    await cli.line(cli.err, lambda line: "CONNECTED" in line and "connected to" in line, 10)
    async with Connection(ConnectionSettings.from_url(rxmqtt_mosquitto.url)) as helper:
        await subscribed(cli, helper, "cli/probe")
        await helper.publish("cli/data", b"before restart", qos=1)
        await cli.line(cli.out, lambda line: line == "cli/data before restart", 5)

        rxmqtt_mosquitto.stop()
        lost = await cli.line(cli.err, lambda line: "disconnected: network: 0x80" in line, 5)
        assert "RECONNECTING" in cli.err[lost], "the state column shows the new state"
        assert "retrying in" in cli.err[lost]
        rxmqtt_mosquitto.start()
        back = await cli.line(cli.err, lambda line: "connected to" in line, 10, lost)
        assert "CONNECTED" in cli.err[back]
        await cli.line(cli.err, lambda line: "session lost" in line, 5, lost)

        await helper.wait_for(ConnectionState.CONNECTED, 10)
        await subscribed(cli, helper, "cli/probe")  # re-subscribed by itself
        await helper.publish("cli/data", b"after restart", qos=1)
        await cli.line(cli.out, lambda line: line == "cli/data after restart", 5)

    cli.proc.send_signal(signal.SIGINT)
    assert await cli.exit_code() == 0, "Ctrl-C is a clean exit"
    summary = cli.err[-1]
    assert "CLOSED" in summary
    assert "received" in summary
    assert not any("Traceback" in line for line in cli.err)


@pytest.mark.broker
async def test_pub_series_through_a_broker_restart_is_all_acknowledged(
    rxmqtt_mosquitto_factory: BrokerFactory, cleanup: list[Cli]
) -> None:
    broker = rxmqtt_mosquitto_factory(persistence=True)
    listener = Connection(ConnectionSettings.from_url(broker.url, client_id="cli-listener"))
    got = Recorder(listener.messages("series/#", qos=1))
    async with listener:
        await listener.wait_for(ConnectionState.CONNECTED, 5)
        cli = await start_cli(
            "pub",
            "series/n",
            "m{n}",
            "--qos",
            "1",
            "--count",
            "60",
            "--rate",
            "30",
            "--progress",
            "0.2",
            "--url",
            broker.url,
        )
        cleanup.append(cli)
        await cli.line(cli.err, lambda line: "progress" in line and "acked" in line, 10)
        broker.stop()
        await cli.line(cli.err, lambda line: "disconnected: network" in line, 5)
        await cli.line(  # the queue depth shows in the progress line
            cli.err, lambda line: "progress      RECONNECTING" in line and "queue 0 " not in line, 5
        )
        broker.start()
        assert await cli.exit_code(20) == 0, cli.err
        assert "published 60 of 60: 60 acknowledged, 0 failed" in cli.err[-1]
        await got.wait_until(lambda ms: len({m.payload for m in ms}) >= 60, 10, "all 60")
    assert {m.payload for m in got.items} == {f"m{n}".encode() for n in range(1, 61)}


@pytest.mark.broker
async def test_watch_from_the_aio_environment_ends_by_itself(
    rxmqtt_mosquitto: MosquittoBroker, cleanup: list[Cli]
) -> None:
    env = {
        "AIO_BROKER_HOSTNAME": rxmqtt_mosquitto.host,
        "AIO_BROKER_TCP_PORT": str(rxmqtt_mosquitto.port),
        "AIO_MQTT_USE_TLS": "false",
        "AIO_MQTT_CLIENT_ID": "cli-watch",
    }
    cli = await start_cli("watch", "#", "--run-for", "1", "--progress", "0.3", env=env)
    cleanup.append(cli)
    assert await cli.exit_code() == 0, cli.err
    assert any("connected to" in line for line in cli.err)
    progress = [line for line in cli.err if "progress" in line]
    assert progress, cli.err
    assert re.search(r"progress +CONNECTED \d+s \| \d+ msgs \| [\d.]+ msg/s \|", progress[-1])
    assert "queue 0 (0 B)" in progress[-1]
    assert cli.out == [], "watch prints no data"


@pytest.mark.broker
async def test_sub_count_bounds_the_run(
    rxmqtt_mosquitto: MosquittoBroker, cleanup: list[Cli]
) -> None:
    cli = await start_cli("sub", "c/#", "--count", "2", "-q", "--url", rxmqtt_mosquitto.url)
    cleanup.append(cli)
    async with Connection(ConnectionSettings.from_url(rxmqtt_mosquitto.url)) as helper:
        await helper.wait_for(ConnectionState.CONNECTED, 5)
        exited = asyncio.ensure_future(cli.proc.wait())
        for _ in range(100):  # tick until the CLI has its 2 messages and exits by itself
            await helper.publish("c/x", b"tick", qos=1)
            done, _pending = await asyncio.wait([exited], timeout=0.1)
            if done:
                break
    assert await cli.exit_code() == 0
    assert cli.out == ["tick", "tick"], "payload only without -v, exactly --count messages"
    assert cli.err == [], "--quiet"


@pytest.mark.broker
def test_giving_up_is_exit_status_1(rxmqtt_mosquitto_factory: BrokerFactory) -> None:
    broker = rxmqtt_mosquitto_factory(users={"cli": "secret"})
    err = io.StringIO()
    url = f"mqtt://cli:wrong@{broker.host}:{broker.port}"
    assert main(["sub", "x/#", "--url", url, "--run-for", "10"], stderr=err) == 1
    lines = err.getvalue().splitlines()
    assert any(line.split()[1] == "FAILED" for line in lines), lines
    assert "; gave up: fatal: server: 0x87 Not authorized" in lines[-1], "with the reason code"


def test_still_trying_when_run_for_ends_is_exit_status_0() -> None:
    from rxmqtt.testing import free_port

    out, err = io.StringIO(), io.StringIO()
    url = f"mqtt://127.0.0.1:{free_port()}"  # nobody listens there
    code = main(
        ["watch", "--url", url, "--preset", "k8s-multi-node", "--run-for", "0.5"],
        stdout=out,
        stderr=err,
    )
    assert code == 0, "still trying when --run-for ends: not a failure"
    assert "attempt 1 failed: network: 0x80" in err.getvalue()


def test_bad_arguments_exit_2_naming_them(capsys: pytest.CaptureFixture[str]) -> None:
    err = io.StringIO()
    env_without_broker = {k: v for k, v in os.environ.items() if not k.startswith("AIO_")}
    args = build_parser().parse_args(["watch"])
    with pytest.raises(ValueError, match=r"^--url: give a broker URL"):
        settings_from(args, env_without_broker)
    assert main(["sub", "x", "--url", "http://nope"], stderr=err) == 2
    assert "rxmqtt sub: error: url: unknown scheme 'http'" in err.getvalue()
    for bad in (["pub", "t", "p", "--count", "0"], ["sub", "t", "--run-for", "-1"]):
        with pytest.raises(SystemExit) as exit_info:
            main(bad)
        assert exit_info.value.code == 2
    assert "--count: must be >= 1" in capsys.readouterr().err


def test_settings_follow_url_preset_and_flags() -> None:
    args = build_parser().parse_args(
        ["watch", "--url", "mqtt://h:1884?client_id=a", "--preset", "mcu-headless", "-k", "7"]
    )
    settings = settings_from(args)
    assert (settings.host, settings.port, settings.client_id) == ("h", 1884, "a")
    assert settings.keep_alive == 7, "-k wins over the preset"
    assert settings.receive_maximum == 8, "the preset's session fields are applied"
    args = build_parser().parse_args(["watch", "-i", "override"])
    env = {"AIO_BROKER_HOSTNAME": "envhost", "AIO_MQTT_USE_TLS": "false"}
    settings = settings_from(args, env)
    assert (settings.host, settings.client_id) == ("envhost", "override")
