"""Fixtures shared by the test modules (the broker fixtures come from ``-p rxmqtt.testing``)."""

from __future__ import annotations

import pytest


@pytest.fixture(params=[5, 4], ids=["mqtt5", "mqtt311"])
def mqtt_version(request: pytest.FixtureRequest) -> int:
    """The ``protocol_version`` a core connection test runs with: each runs on both MQTT 5 and
    MQTT 3.1.1 (4), with one body."""
    version: int = request.param
    return version
