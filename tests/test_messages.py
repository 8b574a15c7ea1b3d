"""Control-plane messages: every type round-trips (property test), bad input is rejected with a
reason receivers can count."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synesthesia import messages as m
from synesthesia.errors import MessageError

_u63 = st.integers(0, (1 << 63) - 1)
_text = st.text(max_size=40)
_floats = st.floats(allow_nan=False, allow_infinity=False, width=64)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(1 << 63), (1 << 63) - 1) | _floats | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=10,
)


def _strategy(tp: Any) -> st.SearchStrategy[Any]:
    if tp is int:
        return _u63
    if tp is float:
        return _floats
    if tp is str:
        return _text
    if tp is bool:
        return st.booleans()
    if tp is Any:
        return _json
    origin = typing.get_origin(tp)
    if origin is tuple:
        return st.lists(_strategy(typing.get_args(tp)[0]), max_size=6).map(tuple)
    if origin is dict:
        return st.dictionaries(_text, _json, max_size=4)
    raise AssertionError(f"no strategy for {tp}")


def _message(cls: type[m.Message]) -> st.SearchStrategy[m.Message]:
    hints = typing.get_type_hints(cls)
    fields = {f.name: _strategy(hints[f.name]) for f in dataclasses.fields(cls)}
    if cls is m.Intent:
        # Keywords and weights pair up.
        pairs = st.lists(st.tuples(_text, _floats), max_size=6)
        return pairs.flatmap(
            lambda kw: st.builds(cls, **{**fields, "keywords": st.just(tuple(k for k, _ in kw)), "weights": st.just(tuple(w for _, w in kw))})
        )
    return st.builds(cls, **fields)


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(sorted(m.registry.values(), key=lambda c: c.KIND)).flatmap(_message))
def test_every_message_type_round_trips(msg: m.Message) -> None:
    data = m.encode(msg)
    back = m.decode(data)
    assert back == msg and type(back) is type(msg)
    assert m.decode(data, expect=type(msg)) == msg


def test_wire_form_is_a_flat_map_with_an_envelope() -> None:
    req = m.CommandRequest(command="status", args={"verbose": True}, id="7", t_ns=1)
    assert msgpack.unpackb(m.encode(req)) == {
        "_t": "command",
        "_v": m.SCHEMA_VERSION,
        "t_ns": 1,
        "command": "status",
        "args": {"verbose": True},
        "id": "7",
    }


def _reason(data: bytes, **kw: Any) -> str:
    with pytest.raises(MessageError) as e:
        m.decode(data, **kw)
    return e.value.reason


def _raw(**body: Any) -> bytes:
    return msgpack.packb({"_t": "heartbeat", "_v": m.SCHEMA_VERSION, "t_ns": 5, "stage": "nlp", "pid": 1, "seq": 2, **body})


def test_bad_messages_are_rejected_with_a_reason() -> None:
    assert m.decode(_raw()) == m.Heartbeat(stage="nlp", pid=1, seq=2, t_ns=5)
    assert _reason(b"\xc1garbage") == "undecodable"
    assert _reason(msgpack.packb([1, 2])) == "undecodable"
    assert _reason(_raw(_v=m.SCHEMA_VERSION + 1)) == "version"
    assert _reason(_raw(_v=None)) == "version"
    assert _reason(_raw(_t="nope")) == "unknown"
    assert _reason(_raw(extra=1)) == "invalid"
    assert _reason(_raw(pid="one")) == "invalid"
    assert _reason(_raw(pid=True)) == "invalid"
    assert _reason(msgpack.packb({"_t": "heartbeat", "_v": m.SCHEMA_VERSION})) == "invalid"  # missing fields
    assert _reason(msgpack.packb({"_t": "intent", "_v": 1, "trace_id": 1, "intent_id": 1, "keywords": ["a", 2]})) == "invalid"
    assert _reason(msgpack.packb({"_t": "intent", "_v": 1, "trace_id": 1, "intent_id": 1, "keywords": ["a"], "weights": []})) == "invalid"
    assert _reason(b"\x00" * (m.MAX_MESSAGE_BYTES + 1)) == "oversized"
    assert _reason(_raw(), limit=10) == "oversized"
    assert _reason(m.encode(m.LogLine(stage="a", level="info", text="x")), expect=m.Heartbeat) == "unexpected"


def test_encode_refuses_what_decode_would_refuse() -> None:
    with pytest.raises(MessageError) as e:
        m.encode(m.LogLine(stage="a", level="info", text="x" * (m.MAX_MESSAGE_BYTES + 1)))
    assert e.value.reason == "oversized"
    with pytest.raises(MessageError) as e:
        m.encode(m.Heartbeat(stage="a", pid="x", seq=1))  # type: ignore[arg-type]
    assert e.value.reason == "invalid"
    with pytest.raises(MessageError) as e:
        m.encode(m.Heartbeat(stage="a", pid=1 << 70, seq=1))
    assert e.value.reason == "invalid"
    with pytest.raises(MessageError) as e:
        m.encode(m.CommandReply(id="1", ok=True, result=object()))
    assert e.value.reason == "unencodable"


def test_trace_ids_are_nonzero_and_fit_a_slot_header() -> None:
    ids = {m.new_trace_id() for _ in range(100)}
    assert len(ids) == 100 and all(0 < i < 1 << 63 for i in ids)
