"""GUI tests: the Qt control room and rxmqtt.qt, offscreen."""
