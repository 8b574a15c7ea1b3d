"""A Perfetto-loadable trace of a bench run (runs in the bench process).

Written in the Chrome trace-event JSON format, which ui.perfetto.dev and chrome://tracing both
open: one track per pipeline stage with a slice for each hop-to-hop step of every interaction,
one track per interaction for its whole span, and one track per ring with a slice per record
from slot open to publish. Times are microseconds from the run's first stamp.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from synesthesia.bench.e2e import FrameObs, Interaction
from synesthesia.tracing import HOPS

__all__ = ["trace_events", "write"]

# Which track a step lands on: the stage that produced the step's later hop.
_STAGE_OF_HOP = {
    "captured": "capture", "speech_start": "listen", "speech_end": "listen", "transcript_partial": "listen",
    "transcript_final": "listen", "prompt": "input", "intent": "nlp", "applied": "world", "first_frame": "world",
    "encoded": "encode", "sent": "serve", "displayed": "viewer",
}
_PID = 1
_TRACKS = ["input", "capture", "listen", "nlp", "world", "encode", "serve", "viewer", "interactions", "ring frames", "ring jpeg"]


def trace_events(interactions: Sequence[Interaction], frames: Sequence[FrameObs] = ()) -> list[dict[str, Any]]:
    stamps = [t for it in interactions for t in it.hops.values()] + [f.t_write_ns for f in frames if f.t_write_ns]
    if not stamps:
        return []
    t0 = min(stamps)

    def us(t: int) -> float:
        return (t - t0) / 1e3

    tid = {name: i + 1 for i, name in enumerate(_TRACKS)}
    events: list[dict[str, Any]] = [{"ph": "M", "pid": _PID, "name": "process_name", "args": {"name": "synesthesia"}}]
    for name, i in tid.items():
        events.append({"ph": "M", "pid": _PID, "tid": i, "name": "thread_name", "args": {"name": name}})
        events.append({"ph": "M", "pid": _PID, "tid": i, "name": "thread_sort_index", "args": {"sort_index": i}})
    for it in interactions:
        hops = [h for h in HOPS if h in it.hops]
        label = f"{it.trace_id:x}"
        for a, b in zip(hops, hops[1:]):
            events.append({"ph": "X", "pid": _PID, "tid": tid[_STAGE_OF_HOP[b]], "name": f"{a} -> {b}",
                           "ts": us(it.hops[a]), "dur": max(0.0, us(it.hops[b]) - us(it.hops[a])),
                           "args": {"trace_id": label, **{k: v for k, v in it.fields.get(b, {}).items() if k != "text"}}})
        for h in hops:
            events.append({"ph": "i", "s": "t", "pid": _PID, "tid": tid[_STAGE_OF_HOP[h]], "name": h,
                           "ts": us(it.hops[h]), "args": {"trace_id": label}})
        if hops:
            text = str(it.fields.get("prompt", {}).get("text", ""))
            events.append({"ph": "X", "pid": _PID, "tid": tid["interactions"], "name": text or label,
                           "ts": us(it.hops[hops[0]]), "dur": max(0.0, us(it.hops[hops[-1]]) - us(it.hops[hops[0]])),
                           "args": {"trace_id": label, "hops": hops}})
    for f in frames:
        if not f.t_write_ns:
            continue
        events.append({"ph": "X", "pid": _PID, "tid": tid[f"ring {f.ring}"], "name": f"frame {f.frame}",
                       "ts": us(f.t_write_ns), "dur": max(0.0, us(f.t_publish_ns) - us(f.t_write_ns)),
                       "args": {"seq": f.seq, "bytes": f.size, "trace_ids": [f"{t:x}" for t in f.trace_ids]}})
    return events


def write(path: str | Path, interactions: Sequence[Interaction], frames: Sequence[FrameObs] = (),
          metadata: dict[str, Any] | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"traceEvents": trace_events(interactions, frames), "displayTimeUnit": "ms", "otherData": metadata or {}}
    text = json.dumps(doc, default=str, separators=(",", ":"))
    if path.suffix == ".gz":  # Perfetto opens gzipped JSON as is; a long run's trace shrinks ~10x
        import gzip

        path.write_bytes(gzip.compress(text.encode(), mtime=0))
    else:
        path.write_text(text)
    return path
