"""One broker address (``host:port``), validated and parsed from text."""

from __future__ import annotations

from dataclasses import dataclass

from .._checks import check_host, check_int

__all__ = ["Endpoint"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One broker address; ``str()`` gives ``host:port`` (``[v6]:port`` for IPv6)."""

    host: str
    port: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "host", check_host("host", self.host))
        check_int("port", self.port, 1, 65535)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @classmethod
    def parse(
        cls, text: str, *, default_port: int | None = None, argument: str = "endpoint"
    ) -> Endpoint:
        """Parse ``host:port``, ``[v6]:port``, or a bare host when ``default_port`` is given."""
        if not isinstance(text, str):
            raise TypeError(f"{argument}: must be an Endpoint or a str, got {type(text).__name__}")
        port_text: str | None
        if text.startswith("["):
            end = text.find("]")
            if end < 0:
                raise ValueError(f"{argument}: unbalanced '[' in {text!r}")
            host, rest = text[1:end], text[end + 1 :]
            if rest and not rest.startswith(":"):
                raise ValueError(f"{argument}: unexpected {rest!r} after ']' in {text!r}")
            port_text = rest[1:] if rest else None
        elif text.count(":") == 1:
            host, port_text = text.split(":")
        else:
            host, port_text = text, None  # a bare host, or a bare IPv6 address
        if port_text is None:
            if default_port is None:
                raise ValueError(f"{argument}: missing port in {text!r} (expected 'host:port')")
            port = default_port
        elif port_text.isascii() and port_text.isdigit():
            port = int(port_text)
        else:
            raise ValueError(f"{argument}: invalid port {port_text!r} in {text!r}")
        try:
            return cls(host, port)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{argument}: {exc}") from None
