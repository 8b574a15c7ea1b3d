"""What the viewer server lets one peer cost, and whom it answers (serve process, on the loop).

- :class:`Limits`: connection count, the idle time of a connection that never sends a request,
  the time a viewer may leave its socket unread before it is dropped, and the prompt rate.
- :func:`rebinding_refusal`: on a loopback bind without a token, the ``Host`` and ``Origin``
  headers must name this server (``localhost``, ``127.0.0.1`` or ``[::1]`` with its port). A page
  on another site whose name was re-pointed at 127.0.0.1 (DNS rebinding) sends its own name, so
  it is refused with 403 and never sees a frame or drives a prompt.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["Limits", "rebinding_refusal", "LOOPBACK_NAMES"]

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


@dataclass(frozen=True)
class Limits:
    #: WebSocket viewers at once; the next gets HTTP 503.
    max_clients: int = 64
    #: A connection that sends no request (or no further one) for this long is closed.
    idle_timeout_s: float = 15.0
    #: A viewer whose socket has had unsent bytes queued for this long (it does not read) is
    #: dropped, and so is one whose single send blocks this long.
    write_timeout_s: float = 10.0
    #: Prompts per second per viewer on average, and the burst allowed above it.
    prompt_rate: float = 2.0
    prompt_burst: int = 5


def _names(bound_host: str) -> set[str]:
    names = set(LOOPBACK_NAMES)
    try:
        ip = ipaddress.ip_address(bound_host)
    except ValueError:
        names.add(bound_host.lower())
    else:
        names.add(f"[{ip}]" if ip.version == 6 else str(ip))
    return names


def _split(hostport: str, default_port: int) -> tuple[str, int] | None:
    hostport = hostport.strip().lower()
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            return None
        host, rest = hostport[: end + 1], hostport[end + 1 :]
    else:
        host, _, port_text = hostport.partition(":")
        rest = f":{port_text}" if port_text else ""
    if not rest:
        return host, default_port
    if not rest.startswith(":") or not rest[1:].isdigit() or len(rest) > 6:
        return None
    return host, int(rest[1:])


def rebinding_refusal(host_header: str | None, origin: str | None, bound_host: str, port: int) -> str | None:
    """Why a request to a loopback server without a token must be refused, or None when its
    ``Host`` (and ``Origin``, when sent) name this server."""
    names = _names(bound_host)
    if not host_header:
        return "no Host header"
    parsed = _split(host_header, 80)
    if parsed is None or parsed[0] not in names or parsed[1] != port:
        return f"Host {host_header[:80]!r} is not this server"
    if origin is not None:
        try:
            url = urlsplit(origin.strip())
            origin_port = url.port or (443 if url.scheme == "https" else 80)
        except ValueError:
            return f"Origin {origin[:80]!r} is not a URL"
        host = url.hostname or ""
        host = f"[{host}]" if ":" in host else host
        if url.scheme not in ("http", "https") or host not in names or origin_port != port:
            return f"Origin {origin[:80]!r} is not this server"
    return None
