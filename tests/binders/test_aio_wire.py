"""Interop on the wire: two rxmqtt processes (one executing, one invoking and sending telemetry
with a CloudEvent) over a real Mosquitto, watched by a plain paho subscriber that checks every
message against the AIO protocol, field by field."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from dataclasses import dataclass

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties

from rxmqtt.testing import MosquittoBroker

HLC = re.compile(r"^\d{15}:\d{5}:(?P<node>.+)$")
PROCESS_TIMEOUT = 60.0

COMMON = """
import asyncio, sys
from rxmqtt import Connection, ConnectionSettings, ConnectionState
PORT = int(sys.argv[1])

def connection(client_id):
    return Connection(ConnectionSettings(host="127.0.0.1", port=PORT, client_id=client_id))
"""

EXECUTOR = (
    COMMON
    + """
from rxmqtt.binders import CommandExecutor

async def main():
    conn = connection("oven-exec")
    conn.start()
    await conn.wait_for(ConnectionState.CONNECTED, timeout=20)
    served = asyncio.Event()

    def bake(request):
        served.set()
        return {"baked": request["item"]}

    executor = CommandExecutor(
        conn, "ovens/{modelId}/{executorId}/bake", bake,
        executor_id="oven-1", topic_tokens={"modelId": "dtmi:ex:Oven;1"},
    )
    print("serving", flush=True)
    await asyncio.wait_for(served.wait(), 40)
    await asyncio.sleep(0)  # let the handler's answer be published
    executor.dispose()
    await conn.close()  # flushes the response (QoS 1) before disconnecting

asyncio.run(main())
"""
)

INVOKER = (
    COMMON
    + """
from rxmqtt.binders import CloudEvent, CommandInvoker, CommandTimeoutError, TelemetrySender

async def main():
    conn = connection("app-inv")
    conn.start()
    await conn.wait_for(ConnectionState.CONNECTED, timeout=20)
    invoker = CommandInvoker(
        conn, "ovens/{modelId}/{executorId}/bake", command_name="bake",
        topic_tokens={"modelId": "dtmi:ex:Oven;1"},
    )
    await invoker.start()
    for _ in range(100):  # until the executor's subscription is live
        try:
            result = await invoker.invoke(
                {"item": "bread"}, timeout=1, topic_tokens={"executorId": "oven-1"},
                metadata={"tenant": "t1"},
            )
            break
        except CommandTimeoutError:
            continue
    print("result", result, flush=True)
    sender = TelemetrySender(conn, "ovens/oven-1/temperature")
    await sender.send(
        21.5,
        cloud_event=CloudEvent(source="urn:oven:1", id="evt-1", time="2024-05-01T12:00:00Z"),
        metadata={"unit": "C"},
    )
    invoker.dispose()
    await conn.close()

asyncio.run(main())
"""
)


@dataclass(frozen=True)
class Seen:
    topic: str
    payload: bytes
    qos: int
    user: dict[str, str]
    correlation: bytes | None
    response_topic: str | None
    content_type: str | None
    format_indicator: int | None
    expiry: int | None


class Tap:
    """A plain paho MQTT 5 client subscribed to everything."""

    def __init__(self, port: int) -> None:
        self.seen: list[Seen] = []
        self.ready = threading.Event()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id="tap", protocol=paho.MQTTv5
        )
        self.client.on_connect = lambda c, *_: c.subscribe("#", qos=1)
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, _client: object, _userdata: object, msg: paho.MQTTMessage) -> None:
        props: Properties | None = getattr(msg, "properties", None)

        def get(name: str) -> object:
            return getattr(props, name, None) if props is not None else None

        pairs: list[tuple[str, str]] = get("UserProperty") or []  # type: ignore[assignment]
        self.seen.append(
            Seen(
                topic=msg.topic,
                payload=bytes(msg.payload),
                qos=msg.qos,
                user=dict(pairs),
                correlation=get("CorrelationData"),  # type: ignore[arg-type]
                response_topic=get("ResponseTopic"),  # type: ignore[arg-type]
                content_type=get("ContentType"),  # type: ignore[arg-type]
                format_indicator=get("PayloadFormatIndicator"),  # type: ignore[arg-type]
                expiry=get("MessageExpiryInterval"),  # type: ignore[arg-type]
            )
        )

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _run(script: str, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_invoker_executor_and_telemetry_speak_aio_on_the_wire(
    rxmqtt_mosquitto: MosquittoBroker,
) -> None:
    tap = Tap(rxmqtt_mosquitto.port)
    assert tap.ready.wait(10), "the paho tap did not subscribe"
    executor = _run(EXECUTOR, rxmqtt_mosquitto.port)
    invoker = _run(INVOKER, rxmqtt_mosquitto.port)
    try:
        inv_out, inv_err = invoker.communicate(timeout=PROCESS_TIMEOUT)
        _, exe_err = executor.communicate(timeout=PROCESS_TIMEOUT)
    finally:
        for process in (invoker, executor):
            if process.poll() is None:
                process.kill()
                process.wait()
        tap.close()
    assert invoker.returncode == 0, inv_err
    assert executor.returncode == 0, exe_err
    assert "result {'baked': 'bread'}" in inv_out

    responses = [m for m in tap.seen if m.user.get("__stat") is not None]
    assert len(responses) == 1, [m.topic for m in tap.seen]
    response = responses[0]
    requests = [m for m in tap.seen if m.correlation == response.correlation and m is not response]
    assert len(requests) == 1
    request = requests[0]

    # The request, field by field.
    assert request.topic == "ovens/dtmi:ex:Oven;1/oven-1/bake"
    assert request.qos == 1
    assert request.response_topic == "clients/app-inv/ovens/dtmi:ex:Oven;1/oven-1/bake"
    assert request.correlation is not None
    assert len(request.correlation) == 16
    assert request.expiry == 1
    assert request.content_type == "application/json"
    assert request.format_indicator == 1
    assert request.payload == b'{"item":"bread"}'
    assert request.user["__srcId"] == "app-inv"
    assert request.user["__protVer"] == "1.0"
    match = HLC.match(request.user["__ts"])
    assert match is not None
    assert match.group("node") == "app-inv"
    assert request.user["$partition"] == "app-inv"
    assert request.user["tenant"] == "t1"

    # The response, field by field.
    assert response.topic == request.response_topic
    assert response.qos == 1
    assert response.user["__stat"] == "200"
    assert response.user["__srcId"] == "oven-exec"
    assert response.user["__protVer"] == "1.0"
    response_ts = HLC.match(response.user["__ts"])
    assert response_ts is not None
    assert response_ts.group("node") == "oven-exec"
    assert response.user["__ts"][:21] >= request.user["__ts"][:21], "the executor's clock merged"
    assert "__apErr" not in response.user
    assert response.content_type == "application/json"
    assert response.format_indicator == 1
    assert response.payload == b'{"baked":"bread"}'
    assert response.expiry == 1

    # Telemetry with a CloudEvent in binary mode.
    (telemetry,) = [m for m in tap.seen if m.topic == "ovens/oven-1/temperature"]
    assert telemetry.payload == b"21.5"
    assert telemetry.content_type == "application/json"
    assert telemetry.user["__srcId"] == "app-inv"
    assert telemetry.user["__protVer"] == "1.0"
    assert HLC.match(telemetry.user["__ts"]) is not None
    assert telemetry.user["unit"] == "C"
    assert {k: telemetry.user[k] for k in ("specversion", "type", "source", "id", "time")} == {
        "specversion": "1.0",
        "type": "ms.aio.telemetry",
        "source": "urn:oven:1",
        "id": "evt-1",
        "time": "2024-05-01T12:00:00Z",
    }
    assert telemetry.user["subject"] == "ovens/oven-1/temperature"
    assert "dataschema" not in telemetry.user


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])
