"""Profile rxmqtt's hot paths, each in isolation, beside raw paho on asyncio (and, end to end,
gmqtt when it is installed: the record issue 23 chases).

``python -m benchmarks.profile_hot_paths [--path receive|publish|e2e] [--qos 0|1] [--count N]
[--profile] [--top N] [--repeat N]``

- **receive** (socket -> paho -> engine -> trie -> observer): the subscriber's session is filled
  while it is offline (a persistent session; ``queue_qos0_messages`` so QoS 0 is kept too), then
  it reconnects and drains the backlog. No publisher runs at the same time, so the rate and the
  profile are the subscriber's alone.
- **publish** (``publish()`` -> publisher/queue -> engine -> paho -> socket): publishes to a topic
  nobody subscribes to; the rate is from the first call to the last outcome (QoS 0: written,
  QoS 1: PUBACK).
- **e2e** (both): the end-to-end benchmark's publisher and subscriber in one process, after one
  warm-up run of each client; reported as CPU time per message (``time.process_time()``,
  steadier than a rate on a shared machine) beside the rate. ``--repeat N`` interleaves N runs
  of each client and keeps the least CPU time and the best rate (the least disturbed run).
- **receive** and **publish** print their CPU time per message too.

``--profile`` runs rxmqtt under cProfile and prints the ``--top`` functions by own time. The
numbers it prints are for the machine and load at hand; compare rxmqtt with the paho line of
the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib.util
import pstats
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from typing import Any

from benchmarks._common import BROKER_CONFIG, TOPIC, payloads
from benchmarks.throughput import AsyncioPaho, paho_client
from rxmqtt import Connection, ConnectionSettings, ConnectionState, Message, QueuePolicy
from rxmqtt.testing import MosquittoBroker

SESSION_EXPIRY = 300


def _broker() -> MosquittoBroker:
    """The benchmark broker, also keeping QoS 0 messages for offline persistent sessions."""
    config = BROKER_CONFIG
    return MosquittoBroker(replace(config, extra=f"{config.extra}\nqueue_qos0_messages true"))


async def _fill_backlog(host: str, port: int, count: int, qos: int) -> None:
    """Publish ``count`` messages with raw paho while the subscriber is offline."""
    loop = asyncio.get_running_loop()
    helper = AsyncioPaho(loop, paho_client("backlog-pub"))
    done: asyncio.Future[None] = loop.create_future()
    left = [count]

    def on_publish(*_: Any) -> None:
        left[0] -= 1
        if left[0] == 0 and not done.done():
            done.set_result(None)

    helper.client.on_publish = on_publish
    await helper.connect(host, port)
    try:
        for index, payload in enumerate(payloads(count), 1):
            helper.client.publish(TOPIC, payload, qos)
            if index % 100 == 0:
                await asyncio.sleep(0)
        await asyncio.wait_for(done, 120)
        await asyncio.sleep(0.5)  # let the broker queue the tail for the offline session
    finally:
        await helper.disconnect()


def _rx_settings(host: str, port: int, client_id: str) -> ConnectionSettings:
    return ConnectionSettings(
        host=host, port=port, client_id=client_id, session_expiry=SESSION_EXPIRY
    )


async def _rx_receive(
    host: str, port: int, count: int, qos: int, prepare: bool, wrap: Callable[..., Any]
) -> float:
    """rxmqtt subscriber: register (``prepare``) or drain the backlog; returns msg/s."""
    loop = asyncio.get_running_loop()
    got = [0]
    first = [0.0]
    done: asyncio.Future[float] = loop.create_future()

    def on_message(_message: Message) -> None:
        got[0] += 1
        if got[0] == 1:
            first[0] = time.perf_counter()
        if got[0] == count and not done.done():
            done.set_result(time.perf_counter())

    conn = Connection(_rx_settings(host, port, "profile-rx-sub"))
    subscription = conn.messages(TOPIC, qos=qos).subscribe(on_message)
    try:
        async with conn:
            if prepare:
                await conn.wait_for(ConnectionState.CONNECTED, timeout=10)
                await asyncio.sleep(0.3)  # SUBACK
                return 0.0
            end: float = await wrap(asyncio.wait_for(done, 120))
            return (count - 1) / (end - first[0])
    finally:
        subscription.dispose()


async def _paho_receive(host: str, port: int, count: int, qos: int, prepare: bool) -> float:
    """Raw paho asyncio subscriber with a persistent session; returns msg/s."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    loop = asyncio.get_running_loop()
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id="profile-paho-sub", protocol=paho.MQTTv5
    )
    helper = AsyncioPaho(loop, client)
    got = [0]
    first = [0.0]
    done: asyncio.Future[float] = loop.create_future()

    def on_message(*_: Any) -> None:
        got[0] += 1
        if got[0] == 1:
            first[0] = time.perf_counter()
        if got[0] == count and not done.done():
            done.set_result(time.perf_counter())

    client.on_message = on_message
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = SESSION_EXPIRY
    client.connect(host, port, clean_start=False, properties=props)
    await asyncio.wait_for(helper.connected, 10)
    try:
        if prepare:
            client.subscribe(TOPIC, qos)
            await asyncio.sleep(0.3)
            return 0.0
        end = await asyncio.wait_for(done, 120)
        return (count - 1) / (end - first[0])
    finally:
        await helper.disconnect()


async def _rx_publish(
    host: str, port: int, count: int, qos: int, wrap: Callable[..., Any]
) -> float:
    loop = asyncio.get_running_loop()
    conn = Connection(
        _rx_settings(host, port, "profile-rx-pub"),
        queue=QueuePolicy(max_messages=None, max_bytes=None),
    )
    done: asyncio.Future[float] = loop.create_future()
    left = [count]

    def on_result(_result: object) -> None:
        left[0] -= 1
        if left[0] == 0 and not done.done():
            done.set_result(time.perf_counter())

    data = payloads(count)
    async with conn:
        await conn.wait_for(ConnectionState.CONNECTED, timeout=10)

        async def run() -> float:
            start = time.perf_counter()
            for index, payload in enumerate(data, 1):
                conn.publish(TOPIC, payload, qos).subscribe(on_result)
                if index % 100 == 0:
                    await asyncio.sleep(0)
            end = await asyncio.wait_for(done, 120)
            return count / (end - start)

        rate: float = await wrap(run())
        return rate


async def _paho_publish(host: str, port: int, count: int, qos: int) -> float:
    loop = asyncio.get_running_loop()
    helper = AsyncioPaho(loop, paho_client("profile-paho-pub"))
    done: asyncio.Future[float] = loop.create_future()
    left = [count]

    def on_publish(*_: Any) -> None:
        left[0] -= 1
        if left[0] == 0 and not done.done():
            done.set_result(time.perf_counter())

    helper.client.on_publish = on_publish
    await helper.connect(host, port)
    try:
        data = payloads(count)
        start = time.perf_counter()
        for index, payload in enumerate(data, 1):
            helper.client.publish(TOPIC, payload, qos)
            if index % 100 == 0:
                await asyncio.sleep(0)
        end = await asyncio.wait_for(done, 120)
        return count / (end - start)
    finally:
        await helper.disconnect()


class _Profiler:
    """Wraps an awaitable so only its own execution is profiled (on the loop's thread)."""

    def __init__(self, enabled: bool) -> None:
        self.profile = cProfile.Profile() if enabled else None

    async def __call__(self, awaitable: Awaitable[Any]) -> Any:
        if self.profile is None:
            return await awaitable
        self.profile.enable()
        try:
            return await awaitable
        finally:
            self.profile.disable()

    def report(self, top: int) -> None:
        if self.profile is not None:
            stats = pstats.Stats(self.profile)
            stats.sort_stats("tottime").print_stats(top)


def _end_to_end(
    host: str, port: int, count: int, qos: int, profiler: _Profiler, repeat: int = 1
) -> dict[str, float]:
    """The end-to-end clients (rxmqtt, raw paho asyncio, gmqtt when installed), interleaved
    ``repeat`` times after one warm-up each: prints the least CPU µs/message and the best rate
    of each (the least disturbed run), returns the best rates."""
    from benchmarks.throughput import _gmqtt, _paho_asyncio, _rxmqtt, data_for

    data = data_for(count)
    clients: list[tuple[str, Callable[..., Awaitable[Any]]]] = [
        ("rxmqtt", _rxmqtt),
        ("paho asyncio", _paho_asyncio),
    ]
    if importlib.util.find_spec("gmqtt") is not None:
        clients.append(("gmqtt", _gmqtt))
    for _, client in clients:
        asyncio.run(client(host, port, data, qos, 120))  # warm-up: imports, first connections
    cpus: dict[str, float] = {}
    rates: dict[str, float] = {}
    for _ in range(repeat):
        for name, client in clients:
            cpu = time.process_time()
            if name == "rxmqtt" and profiler.profile is not None:
                profiler.profile.enable()
            try:
                result = asyncio.run(client(host, port, data, qos, 120))
            finally:
                if profiler.profile is not None:
                    profiler.profile.disable()
            cpu = time.process_time() - cpu
            if not result.complete:
                raise RuntimeError(f"{name}: {result.describe()}")
            cpus[name] = min(cpus.get(name, cpu), cpu)
            rates[name] = max(rates.get(name, 0.0), result.rate)
    for name, cpu in cpus.items():
        print(f"e2e QoS {qos}: {name:<13} {cpu / count * 1e6:>8.1f} µs CPU per message")
    return rates


def _cpu_per_message(
    path: str, qos: int, count: int, name: str, client: Coroutine[Any, Any, float]
) -> float:
    """Run ``client`` (one side of a path) and print its process CPU time per message; returns
    its rate (msg/s). CPU time is steadier than the rate on a shared machine."""
    cpu = time.process_time()
    rate = asyncio.run(client)
    cpu = time.process_time() - cpu
    print(f"{path} QoS {qos}: {name:<13} {cpu / count * 1e6:>8.1f} µs CPU per message")
    return rate


def run(
    path: str, qos: int, count: int, profile: bool, top: int, repeat: int = 1
) -> dict[str, float]:
    """Measure one path for rxmqtt and raw paho asyncio; returns msg/s for each."""
    profiler = _Profiler(profile)
    rates: dict[str, float] = {}
    with _broker() as broker:
        host, port = broker.host, broker.port
        if path == "e2e":
            rates = _end_to_end(host, port, count, qos, profiler, repeat)
        elif path == "receive":
            asyncio.run(_rx_receive(host, port, count, qos, True, profiler))
            asyncio.run(_fill_backlog(host, port, count, qos))
            rates["rxmqtt"] = _cpu_per_message(
                path, qos, count, "rxmqtt", _rx_receive(host, port, count, qos, False, profiler)
            )
            asyncio.run(_paho_receive(host, port, count, qos, True))
            asyncio.run(_fill_backlog(host, port, count, qos))
            rates["paho asyncio"] = _cpu_per_message(
                path, qos, count, "paho asyncio", _paho_receive(host, port, count, qos, False)
            )
        else:
            rates["rxmqtt"] = _cpu_per_message(
                path, qos, count, "rxmqtt", _rx_publish(host, port, count, qos, profiler)
            )
            rates["paho asyncio"] = _cpu_per_message(
                path, qos, count, "paho asyncio", _paho_publish(host, port, count, qos)
            )
    for name, rate in rates.items():
        print(f"{path} QoS {qos}: {name:<13} {rate:>10,.0f} msg/s")
    print(
        f"{path} QoS {qos}: rxmqtt / paho asyncio = {rates['rxmqtt'] / rates['paho asyncio']:.2f}"
    )
    profiler.report(top)
    return rates


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--path", choices=("receive", "publish", "e2e"), default="receive")
    parser.add_argument("--qos", type=int, choices=(0, 1), default=0)
    parser.add_argument("--count", type=int, default=50_000)
    parser.add_argument("--profile", action="store_true", help="cProfile rxmqtt's run")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--repeat", type=int, default=1, help="e2e: interleaved runs, best kept")
    args = parser.parse_args(argv)
    run(args.path, args.qos, args.count, args.profile, args.top, args.repeat)


if __name__ == "__main__":
    main()
