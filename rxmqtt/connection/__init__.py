"""The :class:`Connection` an application owns, and the :class:`ThreadRunner` that runs one
without asyncio. Private modules: ``_connection`` (the streams), ``_reconnect_loop`` (the
reconnect policy applied to the engine), ``_publish_arguments``, ``_thread_runner``."""

from ._connection import Connection
from ._thread_runner import ThreadRunner

__all__ = ["Connection", "ThreadRunner"]
