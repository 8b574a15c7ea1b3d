"""Typed control-plane messages and their msgpack wire form (used in every process).

Each message is a frozen dataclass with a wire name (``KIND``) and the event half of its bus
topic (``EVENT``; the topic is ``<stage>.<event>``). On the wire a message is one msgpack map
of its fields plus two envelope keys: ``"_t"`` (the kind) and ``"_v"`` (:data:`SCHEMA_VERSION`).
Decoding checks the size limit before unpacking, then the version, the kind, unknown or missing
fields and every field's type; any failure raises :class:`~synesthesia.errors.MessageError`
whose ``reason`` is a short tag receivers count by.

Trace ids are non-zero 64-bit ints (the same ids ring slot headers carry; 0 means none);
timestamps are ``CLOCK_MONOTONIC`` ns, comparable across processes on one host.
"""

from __future__ import annotations

import dataclasses
import os
import time
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar, Union

import msgpack  # type: ignore[import-untyped]

from synesthesia.errors import MessageError

__all__ = [
    "SCHEMA_VERSION",
    "MAX_MESSAGE_BYTES",
    "Message",
    "SpeechStart",
    "SpeechEnd",
    "TranscriptPartial",
    "TranscriptFinal",
    "Intent",
    "WorldApplied",
    "Heartbeat",
    "FrameStats",
    "LogLine",
    "CommandRequest",
    "CommandReply",
    "Prompt",
    "EncodeRequest",
    "encode",
    "decode",
    "new_trace_id",
    "registry",
]

SCHEMA_VERSION = 1
#: Largest encoded message accepted or produced: control messages are small, and a bound keeps
#: a bad peer from making a receiver allocate without limit.
MAX_MESSAGE_BYTES = 64 * 1024

_U64 = (1 << 64) - 1


def new_trace_id() -> int:
    """A fresh random non-zero 63-bit trace id (fits msgpack and signed consumers alike)."""
    return int.from_bytes(os.urandom(8), "little") >> 1 or 1


def _now() -> int:
    return time.monotonic_ns()


@dataclass(frozen=True, kw_only=True, slots=True)
class Message:
    """Base of every message: ``t_ns`` is when it was made (monotonic ns)."""

    KIND: ClassVar[str] = ""
    EVENT: ClassVar[str] = ""

    t_ns: int = field(default_factory=_now)

    def validate(self) -> None:
        """Checks across fields (types are checked by :func:`encode` and :func:`decode`);
        raises :class:`MessageError` with reason ``"invalid"``."""


@dataclass(frozen=True, kw_only=True, slots=True)
class SpeechStart(Message):
    """The VAD heard speech begin; opens the utterance's trace."""

    KIND: ClassVar[str] = "speech_start"
    EVENT: ClassVar[str] = "speech_start"
    trace_id: int
    t_audio_ns: int = 0  # capture time of the first voiced chunk


@dataclass(frozen=True, kw_only=True, slots=True)
class SpeechEnd(Message):
    KIND: ClassVar[str] = "speech_end"
    EVENT: ClassVar[str] = "speech_end"
    trace_id: int
    t_audio_ns: int = 0  # capture time of the last voiced chunk
    duration_ms: float = 0.0


@dataclass(frozen=True, kw_only=True, slots=True)
class TranscriptPartial(Message):
    KIND: ClassVar[str] = "transcript_partial"
    EVENT: ClassVar[str] = "transcript_partial"
    trace_id: int
    text: str
    confidence: float = 0.0


@dataclass(frozen=True, kw_only=True, slots=True)
class TranscriptFinal(Message):
    KIND: ClassVar[str] = "transcript_final"
    EVENT: ClassVar[str] = "transcript_final"
    trace_id: int
    text: str
    confidence: float = 0.0
    t_speech_end_ns: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class Intent(Message):
    """What the world should show. Intents from partial transcripts are provisional: a later
    intent ``confirms`` or ``retracts`` one by its ``intent_id``."""

    KIND: ClassVar[str] = "intent"
    EVENT: ClassVar[str] = "intent"
    trace_id: int
    intent_id: int
    keywords: tuple[str, ...] = ()
    weights: tuple[float, ...] = ()
    prompt: str = ""
    provisional: bool = False
    confirms: int = 0
    retracts: int = 0
    source: str = "speech"  # speech | typed | touch

    def validate(self) -> None:
        if len(self.keywords) != len(self.weights):
            raise MessageError(f"intent: {len(self.keywords)} keywords but {len(self.weights)} weights", "invalid")


@dataclass(frozen=True, kw_only=True, slots=True)
class WorldApplied(Message):
    """The world stage started rendering an intent; ``frame`` is the first frame showing it."""

    KIND: ClassVar[str] = "world_applied"
    EVENT: ClassVar[str] = "applied"
    trace_id: int
    intent_id: int
    frame: int
    t_intent_ns: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class Heartbeat(Message):
    KIND: ClassVar[str] = "heartbeat"
    EVENT: ClassVar[str] = "heartbeat"
    stage: str
    pid: int
    seq: int
    status: str = "ok"


@dataclass(frozen=True, kw_only=True, slots=True)
class FrameStats(Message):
    """A stage's periodic throughput and latency summary for one ring or stream."""

    KIND: ClassVar[str] = "frame_stats"
    EVENT: ClassVar[str] = "frame_stats"
    stage: str
    stream: str
    frames: int
    dropped: int = 0
    fps: float = 0.0
    latency_p50_us: float = 0.0
    latency_p99_us: float = 0.0


@dataclass(frozen=True, kw_only=True, slots=True)
class LogLine(Message):
    KIND: ClassVar[str] = "log"
    EVENT: ClassVar[str] = "log"
    stage: str
    level: str
    text: str
    trace_id: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class CommandRequest(Message):
    """``{"command", "args", "id"}``: ask a stage to do something (``status``, ``stop``, ``set``)."""

    KIND: ClassVar[str] = "command"
    EVENT: ClassVar[str] = "command"
    command: str
    args: dict[str, Any] = field(default_factory=dict)
    id: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class CommandReply(Message):
    """``{"ok", "result", "error", "errno"}`` answering the request with the same ``id``."""

    KIND: ClassVar[str] = "reply"
    EVENT: ClassVar[str] = "reply"
    id: str
    ok: bool
    result: Any = None
    error: str = ""
    errno: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class Prompt(Message):
    """Text typed by a person (viewer, `synesthesia say`): goes through the same NLP as speech."""

    KIND: ClassVar[str] = "prompt"
    EVENT: ClassVar[str] = "prompt"
    trace_id: int
    text: str
    source: str = "typed"  # typed | say | touch


@dataclass(frozen=True, kw_only=True, slots=True)
class EncodeRequest(Message):
    """Serve -> encode: what the viewers need from the video stream. ``keyframe``: a viewer
    joined or lost its place and needs a picture it can start decoding at; ``jpeg``: some viewer
    cannot decode the video codec, so JPEG records are wanted beside it (sent again every second
    while true; the encoder stops the JPEG side when it stops hearing it); ``video``: some viewer
    decodes the video codec (the encoder rests the video side a few seconds after it is false)."""

    KIND: ClassVar[str] = "encode_request"
    EVENT: ClassVar[str] = "encode_request"
    keyframe: bool = False
    jpeg: bool = False
    reason: str = ""
    video: bool = True


M = TypeVar("M", bound=Message)

#: Wire name -> message class, for every message type.
registry: dict[str, type[Message]] = {
    cls.KIND: cls
    for cls in (
        SpeechStart,
        SpeechEnd,
        TranscriptPartial,
        TranscriptFinal,
        Intent,
        WorldApplied,
        Heartbeat,
        FrameStats,
        LogLine,
        CommandRequest,
        CommandReply,
        Prompt,
        EncodeRequest,
    )
}

_hints: dict[type[Message], dict[str, Any]] = {}


def _fields(cls: type[Message]) -> dict[str, Any]:
    hints = _hints.get(cls)
    if hints is None:
        resolved = typing.get_type_hints(cls)
        hints = {f.name: resolved[f.name] for f in dataclasses.fields(cls)}
        _hints[cls] = hints
    return hints


def _check(value: Any, tp: Any, where: str) -> Any:
    """Validate ``value`` against the annotation ``tp``; returns it converted (lists from the
    wire become tuples, ints are accepted where floats are expected)."""
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        for arm in typing.get_args(tp):
            try:
                return _check(value, arm, where)
            except MessageError:
                pass
        raise MessageError(f"{where}: {type(value).__name__} is not {tp}", "invalid")
    if tp is type(None):
        if value is None:
            return None
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool) and -(1 << 63) <= value <= _U64:
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif origin is tuple:
        item = typing.get_args(tp)[0]
        if isinstance(value, (list, tuple)):
            return tuple(_check(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    elif origin is dict:
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            return value
    else:  # pragma: no cover - a message field with a type this checker does not know
        raise TypeError(f"{where}: unsupported annotation {tp}")
    raise MessageError(f"{where}: expected {getattr(tp, '__name__', tp)}, got {type(value).__name__}", "invalid")


def encode(msg: Message, *, limit: int = MAX_MESSAGE_BYTES) -> bytes:
    """The wire form of ``msg``; :class:`MessageError` (reason ``"oversized"``) beyond ``limit``."""
    cls = type(msg)
    if registry.get(cls.KIND) is not cls:
        raise MessageError(f"{cls.__name__} is not a registered message type", "unknown")
    msg.validate()
    body: dict[str, Any] = {"_t": cls.KIND, "_v": SCHEMA_VERSION}
    for name, tp in _fields(cls).items():
        # Validating on the way out too means a sender learns about a bad field, not every receiver.
        body[name] = _check(getattr(msg, name), tp, f"{cls.KIND}.{name}")
    try:
        data: bytes = msgpack.packb(body, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as e:
        raise MessageError(f"{cls.KIND}: cannot encode ({e})", "unencodable") from None
    if len(data) > limit:
        raise MessageError(f"{cls.KIND}: {len(data)} bytes, limit {limit}", "oversized")
    return data


def from_dict(body: Mapping[str, Any]) -> Message:
    """Build and validate a message from a decoded map (envelope keys included)."""
    version = body.get("_v")
    if version != SCHEMA_VERSION:
        raise MessageError(f"schema version {version!r}, this build speaks {SCHEMA_VERSION}", "version")
    kind = body.get("_t")
    cls = registry.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise MessageError(f"unknown message kind {kind!r}", "unknown")
    hints = _fields(cls)
    extra = [k for k in body if k not in hints and k not in ("_t", "_v")]
    if extra:
        raise MessageError(f"{kind}: unknown fields {sorted(map(str, extra))}", "invalid")
    values = {name: _check(body[name], tp, f"{kind}.{name}") for name, tp in hints.items() if name in body}
    try:
        msg = cls(**values)
    except TypeError as e:  # a required field is missing
        raise MessageError(f"{kind}: {e}", "invalid") from None
    msg.validate()
    return msg


def decode(data: bytes, *, limit: int = MAX_MESSAGE_BYTES, expect: type[M] | None = None) -> Message:
    """Parse one wire message. Raises :class:`MessageError` with ``reason`` one of
    ``oversized``, ``undecodable``, ``version``, ``unknown``, ``invalid`` or ``unexpected``."""
    if len(data) > limit:
        raise MessageError(f"{len(data)} bytes, limit {limit}", "oversized")
    try:
        body = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as e:  # msgpack raises several unrelated types for corrupt input
        raise MessageError(f"not msgpack ({type(e).__name__}: {e})", "undecodable") from None
    if not isinstance(body, dict):
        raise MessageError(f"expected a map, got {type(body).__name__}", "undecodable")
    msg = from_dict(body)
    if expect is not None and not isinstance(msg, expect):
        raise MessageError(f"expected {expect.KIND}, got {msg.KIND}", "unexpected")
    return msg
