"""Tests of the rxmqtt.testing harness: brokers, FaultProxy, process lifetimes."""
