"""Runnable examples; each starts an embedded local Mosquitto unless told otherwise."""
