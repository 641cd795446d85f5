"""The MQTT 5 subscription options of one topic filter, with the specification's names."""

from __future__ import annotations

from dataclasses import dataclass

from ._checks import check_bool
from .message import check_qos


@dataclass(frozen=True, slots=True)
class SubscriptionOptions:
    """What a SUBSCRIBE asks for one filter (MQTT 5, section 3.8.3.1).

    - ``qos``: the maximum QoS the broker may deliver with (0, 1, 2).
    - ``no_local``: do not send this client the messages it published itself (not allowed on a
      ``$share/`` filter).
    - ``retain_as_published``: keep the RETAIN flag as the publisher set it (otherwise the
      broker clears it on forwarded messages, keeping it only for retained messages sent on
      subscribe).
    - ``retain_handling``: retained messages on subscribe: 0 always send, 1 only when the
      subscription is new, 2 never.
    """

    qos: int = 0
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0

    def __post_init__(self) -> None:
        check_qos(self.qos)
        check_bool("no_local", self.no_local)
        check_bool("retain_as_published", self.retain_as_published)
        handling: object = self.retain_handling
        if isinstance(handling, bool) or not isinstance(handling, int):
            raise TypeError(f"retain_handling: must be an int, got {type(handling).__name__}")
        if handling not in (0, 1, 2):
            raise ValueError(f"retain_handling: must be 0, 1 or 2, got {handling!r}")
