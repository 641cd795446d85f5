"""Fixtures the envoy tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from rxmqtt import Connection
from rxmqtt.testing import MosquittoBroker
from tests._helpers import connection


@pytest.fixture
async def pair(rxmqtt_mosquitto: MosquittoBroker) -> AsyncIterator[tuple[Connection, Connection]]:
    """Two started connections to one broker: one for each side of the envoys under test."""
    async with (
        connection(rxmqtt_mosquitto, "one") as one,
        connection(rxmqtt_mosquitto, "two") as two,
    ):
        yield one, two
