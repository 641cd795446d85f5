"""Telemetry and a command between two connections, on an embedded local Mosquitto.

python -m examples.envoys
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass

import reactivex
from reactivex import operators as ops
from reactivex.scheduler.eventloop import AsyncIOScheduler

from rxmqtt import Connection, ConnectionSettings, ConnectionState
from rxmqtt.binders import (
    CommandExecutionError,
    CommandExecutor,
    CommandInvoker,
    CommandTimeoutError,
    JsonSerializer,
    Telemetry,
    TelemetryReceiver,
    TelemetrySender,
)
from rxmqtt.testing import MosquittoBroker


@dataclass(frozen=True)
class Reading:
    seq: int
    celsius: float


READING = JsonSerializer(to_json=dataclasses.asdict, from_json=lambda d: Reading(**d))


def reading(i: int) -> Reading:
    return Reading(i, 20.0 + i / 2)


def show(t: Telemetry[Reading]) -> None:
    print(f"{t.topic_tokens[0]} #{t.value.seq}: {t.value.celsius} °C from {t.source_id}")


def set_point(request: dict[str, float]) -> dict[str, float]:
    """The command handler: sync here; async functions and observables work too."""
    target = request["celsius"]
    if not 5 <= target <= 30:
        raise CommandExecutionError(422, f"{target} °C is out of range")
    return {"accepted": target}


async def main() -> None:
    with MosquittoBroker() as broker:
        broker.start()
        device = Connection(ConnectionSettings(host=broker.host, port=broker.port, client_id="dev"))
        app = Connection(ConnectionSettings(host=broker.host, port=broker.port, client_id="app"))

        # Envoys may be created before their connections start; they never own them.
        readings = TelemetryReceiver(app, "plant/+/temperature", READING)
        readings.telemetry.subscribe(show)  # subscribed from the first CONNACK on
        sender = TelemetrySender(device, "plant/boiler/temperature", READING)
        executor = CommandExecutor(device, "plant/boiler/set-point", set_point)
        invoker = CommandInvoker(app, "plant/boiler/set-point")

        async with device, app:
            await app.wait_for(ConnectionState.CONNECTED, timeout=10)
            # The first command doubles as a readiness probe: retried until the device's
            # executor is subscribed. defer() makes the eager invoke() cold, so retry re-sends.
            first = reactivex.defer(lambda _: invoker.invoke({"celsius": 21.5}, timeout=0.5))
            print("set-point 21.5 ->", await first.pipe(ops.retry(10)))

            loop = AsyncIOScheduler(asyncio.get_running_loop())  # timers on the connection's loop
            samples = reactivex.interval(0.1, scheduler=loop).pipe(ops.take(5), ops.map(reading))
            samples.pipe(sender.sink()).subscribe()
            await readings.telemetry.pipe(ops.take(5))  # until the app has seen all five

            try:
                await invoker.invoke({"celsius": 99}, timeout=5)
            except CommandExecutionError as error:
                print("set-point 99 ->", error.status, error.status_message)
            executor.dispose()  # the device stops serving; its connection stays up
            try:
                await invoker.invoke({"celsius": 22}, timeout=1)
            except CommandTimeoutError as error:
                print("after dispose ->", error)


if __name__ == "__main__":
    asyncio.run(main())
