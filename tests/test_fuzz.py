"""Keep the audit's defects found: bounded property-based fuzzing (a few seconds each) of the
viewer protocol's decoder and message handler, the bus message codec and the settings loader.
Each may refuse its input only with its own error type, never crash another way."""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synesthesia import messages as m
from synesthesia.errors import MessageError
from synesthesia.settings import Settings, SettingsError, load_settings
from synesthesia.stream.protocol import MAX_DEPTH, ProtocolError, decode_client_message
from synesthesia.stream.server import StreamServer, _Client

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_scalars = (st.none() | st.booleans() | st.integers() | st.floats() | st.text()
            | st.sampled_from(["prompt", "ack", "mic", "start", "stop", "s16le", "\ud800", "\udfff", ""]))
_json_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                            | st.dictionaries(st.text(max_size=8) | st.sampled_from(["type", "text", "frame", "state"]),
                                              inner, max_size=4), max_leaves=20)
_messages = st.fixed_dictionaries({"type": st.sampled_from(["prompt", "ack", "mic", "nope"]) | st.text(max_size=4)},
                                  optional={"text": _json_values, "frame": _json_values, "state": _json_values,
                                            "rate": _json_values, "format": _json_values})


def _as_text(value: Any) -> str:
    return json.dumps(value, allow_nan=True)


def _mutations(text: str, data: st.DataObject) -> str:
    ops = data.draw(st.lists(st.tuples(st.integers(0, max(0, len(text))), st.text(max_size=3)), max_size=3))
    for pos, ins in ops:
        text = text[:pos] + ins + text[pos + 1 :]
    return text


def _deep(depth: int) -> str:
    return '{"type": "ack", "frame": ' + "[" * depth + "]" * depth + "}"


@FUZZ
@given(st.one_of(st.text(), _messages.map(_as_text), _json_values.map(_as_text),
                 st.integers(1, 3000).map(_deep), st.binary().map(lambda b: b.decode("latin-1"))))
def test_protocol_decoder_returns_an_object_or_a_protocol_error(text: str) -> None:
    try:
        msg = decode_client_message(text)
    except ProtocolError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert isinstance(msg, dict) and isinstance(msg["type"], str)
    json.dumps(msg).encode("utf-8")  # everything kept is valid Unicode


def test_protocol_decoder_depth_limit_is_exact() -> None:
    ok = '{"type": "ack", "x": ' + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "}"
    assert decode_client_message(ok)["type"] == "ack"
    try:
        decode_client_message('{"type": "ack", "x": ' + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "}")
    except ProtocolError as exc:
        assert "nested" in str(exc)
    else:
        raise AssertionError("one level too deep was accepted")


_any_message = st.sampled_from(sorted(m.registry.values(), key=lambda c: c.KIND))


class _Sink:
    def __init__(self) -> None:
        self.n = 0

    def submit(self, prompt: Any) -> None:
        msgpack.packb(prompt.text)  # strict UTF-8, like the bus
        self.n += 1

    def push(self, pcm: Any, t_ns: int, client: str) -> None:
        self.n += 1


@FUZZ
@given(st.data())
def test_viewer_message_handler_never_raises(data: st.DataObject) -> None:
    sink = _Sink()
    server = StreamServer(None, sink, sink, port=0)
    client = _Client(id="c1", ws=None)  # type: ignore[arg-type]
    for _ in range(data.draw(st.integers(1, 6))):
        if data.draw(st.booleans()):
            server._on_binary(client, data.draw(st.binary(max_size=64)))
        else:
            text = data.draw(st.one_of(_messages.map(_as_text), st.text(max_size=60)))
            server._on_text(client, _mutations(text, data) if data.draw(st.booleans()) else text)
    for event in client.events:
        assert json.loads(event)["type"] in ("error", "prompt.accepted")


def _packed(value: Any) -> bytes:
    try:
        return bytes(msgpack.packb(value, use_bin_type=True))
    except (TypeError, ValueError, OverflowError):
        return b"\xc1"  # not representable in msgpack (a surrogate, a huge integer)


@FUZZ
@given(st.binary(max_size=200) | _json_values.map(_packed)
       | st.builds(lambda k, v: _packed({"_t": k, "_v": m.SCHEMA_VERSION, **v}), _any_message.map(lambda c: c.KIND),
                   st.dictionaries(st.text(max_size=10), _json_values, max_size=5)))
def test_message_decoder_refuses_junk_with_a_message_error(data: bytes) -> None:
    try:
        m.decode(data)
    except MessageError as exc:
        assert exc.reason in ("oversized", "undecodable", "version", "unknown", "invalid", "unexpected")


@FUZZ
@given(st.data())
def test_message_decoder_survives_mutated_valid_messages(data: st.DataObject) -> None:
    cls = data.draw(_any_message)
    body: dict[str, Any] = {"_t": cls.KIND, "_v": m.SCHEMA_VERSION}
    for f in dataclasses.fields(cls):
        if data.draw(st.booleans()):
            body[f.name] = data.draw(_json_values)
    try:
        encoded = msgpack.packb(body, use_bin_type=True)
    except (TypeError, ValueError, OverflowError):
        return  # not representable in msgpack at all (a surrogate, a huge integer)
    cut = data.draw(st.integers(0, len(encoded)))
    flip = data.draw(st.integers(0, 255))
    for candidate in (encoded, encoded[:cut], encoded[:cut] + bytes([flip]) + encoded[cut + 1 :]):
        try:
            msg = m.decode(candidate)
        except MessageError:
            continue
        assert m.decode(m.encode(msg)) == msg  # what is accepted also re-encodes


@FUZZ
@given(st.text(max_size=30))
def test_message_encoder_refuses_text_it_cannot_send(text: str) -> None:
    try:
        data = m.encode(m.LogLine(stage="s", level="info", text=text))
    except MessageError as exc:
        assert exc.reason == "unencodable"
        return
    assert m.decode(data) == m.LogLine(stage="s", level="info", text=text, t_ns=m.decode(data).t_ns)


_sections = {f.name: f for f in dataclasses.fields(Settings)}
_keys = st.sampled_from([f"{s}__{k.name}" for s, f in _sections.items() if dataclasses.is_dataclass(f.default_factory)  # type: ignore[arg-type]
                         for k in dataclasses.fields(f.default_factory())]  # type: ignore[misc]
                        + [s for s in _sections] + ["nope", "world__nope"])
_env_values = st.one_of(st.sampled_from(["nan", "inf", "-inf", "-1", "0", "1e309", "17", "true", "", "none", "x" * 20,
                                         "0x10", "1_000", "\u00e9", " 1"]), st.text(max_size=12))


def _finite_everywhere(s: Settings) -> None:
    stack: list[Any] = [s]
    while stack:
        node = stack.pop()
        for f in dataclasses.fields(node):
            value = getattr(node, f.name)
            if dataclasses.is_dataclass(value):
                stack.append(value)
            elif isinstance(value, float):
                assert math.isfinite(value), f.name


@FUZZ
@given(st.dictionaries(_keys, _env_values, max_size=4))
def test_settings_from_the_environment_load_or_name_the_key(env: dict[str, str]) -> None:
    environ = {f"SYNESTHESIA_{k.upper()}": v for k, v in env.items()}
    try:
        s = load_settings(environ=environ)
    except SettingsError as exc:
        assert exc.key and "\n" not in str(exc)
        return
    _finite_everywhere(s)
    assert Settings.from_dict(s.to_dict()) == s  # what loads also crosses to a stage process


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=80) | st.binary(max_size=80).map(lambda b: b.decode("latin-1")),
       st.sampled_from(["", "[world]\n", "[supervisor]\n", "[serve]\n"]), st.booleans())
def test_settings_files_load_or_name_the_key(text: str, head: str, raw: bool) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.toml"
        path.write_bytes((head + text).encode("latin-1", "replace") if raw else (head + text).encode("utf-8", "surrogatepass"))
        try:
            s = load_settings(path, environ={})
        except SettingsError as exc:
            assert exc.key and "\n" not in str(exc).strip()
            return
    _finite_everywhere(s)
