"""The viewer protocol's decoding policy: what a client -> server text message may be (serve
process, on the server's event loop).

Every text message a viewer sends goes through :func:`decode_client_message`, which either returns
a JSON object with a string ``type`` or raises :class:`ProtocolError` with a short reason the
server sends back in an ``error`` event. Limits, so that no message can cost more than its bytes
or crash the connection with a traceback: the size (64 KiB of UTF-8), nesting depth
(:data:`MAX_DEPTH`), integer length (:data:`MAX_INT_DIGITS` digits; Python refuses over 4300 with a
ValueError), no NaN or Infinity, and strings that are valid Unicode (``"\\ud800"`` decodes to a
lone surrogate that no UTF-8 encoder, msgpack's included, can write further down the pipeline).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["ProtocolError", "decode_client_message", "MAX_MESSAGE", "MAX_DEPTH", "MAX_INT_DIGITS"]

#: Bytes in one client message (the WebSocket layer closes the socket with 1009 above it).
MAX_MESSAGE = 1 << 16
#: Nesting of arrays and objects; real messages are flat (depth 1).
MAX_DEPTH = 8
#: Digits in an integer: a 64-bit frame number has 20.
MAX_INT_DIGITS = 20


class ProtocolError(ValueError):
    """A client message broke the protocol's decoding policy; the text is the reason."""


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ProtocolError(f"integer of {len(text.lstrip('-'))} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _float(text: str) -> float:
    if len(text) > 64:
        raise ProtocolError(f"number of {len(text)} characters (at most 64)")
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ProtocolError("number out of range")
    return value


def _constant(name: str) -> Any:
    raise ProtocolError(f"{name} is not JSON")


def _check_text(s: str) -> None:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise ProtocolError("string with a lone surrogate (\\ud800-\\udfff): not valid Unicode") from None


def _check_tree(value: Any) -> None:
    """Depth and string validity, without recursion (the depth is bounded by then anyway)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            _check_text(node)
        elif isinstance(node, (dict, list)):
            if depth > MAX_DEPTH:
                raise ProtocolError(f"nested deeper than {MAX_DEPTH} levels")
            if isinstance(node, dict):
                for k, v in node.items():
                    _check_text(k)
                    stack.append((v, depth + 1))
            else:
                stack.extend((v, depth + 1) for v in node)


def decode_client_message(data: str | bytes) -> dict[str, Any]:
    """The JSON object in ``data`` with a string ``type``, or `ProtocolError` saying why not."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("not UTF-8 text") from None
    if len(data) > MAX_MESSAGE:  # characters <= bytes: a cheap first bound
        raise ProtocolError(f"message longer than {MAX_MESSAGE} bytes")
    _check_text(data)
    try:
        msg = json.loads(data, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"not JSON ({exc.msg})") from None
    except RecursionError:
        raise ProtocolError(f"nested deeper than {MAX_DEPTH} levels") from None
    except ProtocolError:
        raise
    except ValueError as exc:  # anything else the decoder refuses: one line, never a traceback
        raise ProtocolError(f"not JSON ({str(exc)[:80]})") from None
    _check_tree(msg)
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise ProtocolError("expected a JSON object with a string 'type'")
    return msg
