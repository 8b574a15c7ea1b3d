"""Trace ids, hop names and the JSON Lines trace log (used in every process).

An interaction (an utterance or a typed prompt) carries one trace id from its first hop to the
frame a viewer shows. Each hop is stamped once with a ``CLOCK_MONOTONIC`` time in ns, which is
comparable across the processes of one host, so the bench harness can join records written by
different processes into per-stage latencies.

The log is off unless ``SYNESTHESIA_TRACE=FILE`` is set (it is also the ``trace`` setting, so
``trace = "FILE"`` in a TOML config works too: the supervisor then calls :func:`enable`, which
sets the variable so stage processes spawned afterwards inherit it). Every process appends whole lines with
one ``write`` on an ``O_APPEND`` descriptor: the kernel keeps concurrent appends to a regular
file from interleaving, so no lock or broker is needed and a crashed process loses at most its
own unfinished line.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synesthesia.messages import Message, new_trace_id

__all__ = [
    "ENV",
    "HOPS",
    "ORIGINS",
    "TraceRecord",
    "TraceLog",
    "enable",
    "disable",
    "enabled",
    "stamp",
    "stamp_message",
    "hop_of",
    "record_of",
    "read",
    "parse",
    "new_trace_id",
]

ENV = "SYNESTHESIA_TRACE"

#: Every hop an interaction can pass, in pipeline order. ``prompt`` is the typed-text origin
#: that stands where ``speech_end`` stands for speech.
HOPS: tuple[str, ...] = (
    "captured",
    "speech_start",
    "speech_end",
    "transcript_partial",
    "transcript_final",
    "prompt",
    "intent",
    "applied",
    "first_frame",
    "encoded",
    "sent",
    "displayed",
)

#: Hops that open an interaction: the end of speech (spoken) or the prompt (typed).
ORIGINS: tuple[str, ...] = ("speech_end", "prompt")

# Which hop a bus message is evidence of. Messages keep their producer's ``t_ns``, so a passive
# listener can stamp the hop with the producer's clock reading, not its own receive time.
_MESSAGE_HOPS: dict[str, str] = {
    "speech_start": "speech_start",
    "speech_end": "speech_end",
    "transcript_partial": "transcript_partial",
    "transcript_final": "transcript_final",
    "prompt": "prompt",
    "intent": "intent",
    "world_applied": "applied",
}


@dataclass(frozen=True, slots=True)
class TraceRecord:
    """One hop of one interaction. ``fields`` holds hop-specific extras (frame number, bytes,
    encode time) that the report can show; they never change the join."""

    trace_id: int
    hop: str
    t_ns: int
    stage: str = ""
    pid: int = 0
    fields: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        body: dict[str, Any] = {"trace_id": self.trace_id, "hop": self.hop, "t_ns": self.t_ns}
        if self.stage:
            body["stage"] = self.stage
        if self.pid:
            body["pid"] = self.pid
        if self.fields:
            body["fields"] = dict(self.fields)
        return json.dumps(body, separators=(",", ":"), default=str)

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> TraceRecord:
        tid, hop, t = body.get("trace_id"), body.get("hop"), body.get("t_ns")
        if not isinstance(tid, int) or not isinstance(hop, str) or not isinstance(t, int):
            raise ValueError(f"a trace record needs int trace_id, str hop and int t_ns, got {dict(body)!r}")
        extra = body.get("fields") or {}
        return cls(tid, hop, t, str(body.get("stage", "")), int(body.get("pid", 0)), dict(extra))


class TraceLog:
    """An append-only JSON Lines file shared by every process of a run."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self._pid = os.getpid()

    def write(self, rec: TraceRecord) -> None:
        line = (rec.to_json() + "\n").encode()
        # One write per line is what keeps lines from different processes whole.
        os.write(self._fd, line)

    def write_all(self, recs: Iterable[TraceRecord]) -> None:
        for rec in recs:
            self.write(rec)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> TraceLog:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


_lock = threading.Lock()
_log: TraceLog | None = None
_log_path: str | None = None


def _current() -> TraceLog | None:
    """The process's log for the path in the environment, opened on first use; reopened when
    the path changes and after a fork (a forked child must not share its parent's pid tag)."""
    global _log, _log_path
    path = os.environ.get(ENV) or None
    if path is None:
        return None
    log = _log
    if log is not None and _log_path == path and log._pid == os.getpid():
        return log
    with _lock:
        if _log is None or _log_path != path or _log._pid != os.getpid():
            _log = TraceLog(path)
            _log_path = path
        return _log


def enable(path: str | os.PathLike[str]) -> Path:
    """Switch the log on for this process and every process it starts from now on."""
    os.environ[ENV] = str(Path(path).resolve())
    _current()
    return Path(os.environ[ENV])


def disable() -> None:
    global _log, _log_path
    os.environ.pop(ENV, None)
    with _lock:
        if _log is not None and _log._pid == os.getpid():
            _log.close()
        _log = None
        _log_path = None


def enabled() -> bool:
    return bool(os.environ.get(ENV))


def stamp(hop: str, trace_id: int, t_ns: int | None = None, *, stage: str = "", **fields: Any) -> None:
    """Record that ``trace_id`` passed ``hop`` (now, unless ``t_ns`` is given). Costs one
    environment lookup when tracing is off, so stages may call it on every hop."""
    if not trace_id:
        return
    log = _current()
    if log is None:
        return
    if hop not in HOPS:
        raise ValueError(f"unknown trace hop {hop!r}; known: {', '.join(HOPS)}")
    log.write(TraceRecord(trace_id, hop, t_ns if t_ns is not None else _monotonic_ns(), stage, os.getpid(), fields))


def hop_of(msg: Message) -> str | None:
    """The hop a bus message stands for, or None when it is not part of a trace."""
    hop = _MESSAGE_HOPS.get(msg.KIND)
    if hop is None or not getattr(msg, "trace_id", 0):
        return None
    if getattr(msg, "provisional", False):
        return None  # an early guess from a partial transcript; the world acts on the final one
    return hop


def record_of(msg: Message, stage: str = "") -> TraceRecord | None:
    """The trace record a bus message carries, stamped with its producer's time."""
    hop = hop_of(msg)
    if hop is None:
        return None
    extra: dict[str, Any] = {}
    for name in ("intent_id", "frame", "text", "source", "provisional", "keywords"):
        if hasattr(msg, name):
            extra[name] = getattr(msg, name)
    return TraceRecord(int(msg.trace_id), hop, msg.t_ns, stage, 0, extra)  # type: ignore[attr-defined]


def stamp_message(msg: Message, stage: str = "") -> None:
    """Log the hop a bus message stands for (the supervisor calls this for every message it
    brokers, so any run with the log on records every traced event)."""
    if not enabled():
        return
    rec = record_of(msg, stage)
    if rec is not None:
        stamp(rec.hop, rec.trace_id, rec.t_ns, stage=stage, **rec.fields)


def read(path: str | os.PathLike[str]) -> tuple[list[TraceRecord], int]:
    """Every record in a trace log, and how many lines could not be read (a process killed
    mid-write leaves a partial last line; it is counted, not fatal)."""
    records: list[TraceRecord] = []
    bad = 0
    for line in _lines(path):
        rec = parse(line)
        if rec is None:
            bad += 1
        else:
            records.append(rec)
    return records, bad


def parse(line: str) -> TraceRecord | None:
    """One trace-log line as a record, or None when it is not one (a partial last line)."""
    try:
        return TraceRecord.from_dict(json.loads(line))
    except (ValueError, TypeError):
        return None


def _lines(path: str | os.PathLike[str]) -> Iterator[str]:
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.strip():
                yield line


def _monotonic_ns() -> int:
    import time

    return time.monotonic_ns()
