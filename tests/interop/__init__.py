"""Core integration tests against several brokers (Mosquitto, ejabberd) and a cluster."""
