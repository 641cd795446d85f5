"""Envoy tests: telemetry and commands over real Mosquitto, and the AIO wire protocol."""
