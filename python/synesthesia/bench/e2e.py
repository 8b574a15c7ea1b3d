"""End-to-end bench: run the real multiprocess pipeline, drive interactions through it, and
join the trace records into per-stage latencies (runs in the `synesthesia bench e2e` process,
which hosts the supervisor in its main thread and a passive tap beside it).

Evidence comes from three places, all stamped with the producer's monotonic clock:
  - the trace log (``SYNESTHESIA_TRACE``), where stages stamp hops explicitly;
  - the event bus: every traced message carries its trace id and creation time ``t_ns``;
  - the frame and jpeg rings: a slot header names the trace ids its frame answers to and when
    the slot was written and published.
The tap copies what it sees on the bus and rings into the same log, so the log alone is the
record of a run.

For spoken runs the clock starts where the voice stops, not where the VAD declares it stopped
(100 ms or more later): the tap also reads the audio ring (which sample of the played clip went
out when), the played clip is segmented by its own energy (as `bench listen` does), and each
utterance's acoustic end is mapped onto the run's clock (`voice_end`). An intent that arrives
before the voice ends (an early intent from a stable partial) counts from the end of the last
voiced stretch before it, the keyword's end as near as the audio alone tells (`keyword_end`). The joiner keeps the earliest stamp of each hop (the *first* frame showing
an intent is the one that counts) and reports an interaction that lacks any expected hop as
incomplete, naming the hops it lacks, instead of dropping it.
"""

from __future__ import annotations

import dataclasses
import io
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synesthesia import tracing
from synesthesia.bench.report import Interactions, LatencyRow, Reference, Report
from synesthesia.bench.stats import summarize
from synesthesia.tracing import HOPS, TraceRecord

__all__ = [
    "STAGE_HOPS",
    "REFERENCE",
    "Interaction",
    "Segment",
    "SEGMENTS",
    "FrameObs",
    "join",
    "expected_hops",
    "latency_rows",
    "build_report",
    "run_pipeline",
    "AudioObs",
    "Voice",
    "voice_in",
    "voice_times",
    "annotate_voice",
]

#: The hops each stage is responsible for stamping; a run expects the hops of the stages it
#: runs, so an interaction is complete relative to the pipeline that actually ran.
STAGE_HOPS: dict[str, tuple[str, ...]] = {
    "listen": ("speech_start", "speech_end", "transcript_final"),
    "nlp": ("intent",),
    "world": ("applied", "first_frame"),
    "encode": ("encoded",),
    "serve": ("sent",),
}

#: The reference system's published table (50 interactions).
REFERENCE: dict[str, Reference] = {
    "nlp": Reference("NLP", 1.22),
    "lag": Reference("AI interaction lag", 1274.8, 42.3),
    "backend": Reference("backend processing", 3.18),
    "total": Reference("total pipe", 1279.2),
}
REFERENCE_N = 50


@dataclass(slots=True)
class Interaction:
    trace_id: int
    hops: dict[str, int] = field(default_factory=dict)  # hop -> earliest t_ns
    fields: dict[str, Mapping[str, Any]] = field(default_factory=dict)  # hop -> that stamp's extras

    @property
    def origin(self) -> str:
        if "speech_end" in self.hops or "speech_start" in self.hops:
            return "speech"
        if "prompt" in self.hops:
            return "prompt"
        return "unknown"

    def missing(self, expected: Sequence[str]) -> list[str]:
        return [h for h in expected if h not in self.hops]

    def from_voice_ms(self, end: str) -> float | None:
        """Time from the voice's end to ``end``; from the keyword's end when ``end`` came first
        (an early intent)."""
        t1, voice = self.hops.get(end), self.hops.get("voice_end")
        if t1 is None or voice is None:
            return None
        t0 = voice if t1 >= voice else self.hops.get("keyword_end")
        return None if t0 is None else (t1 - t0) / 1e6

    def span_ms(self, start: Sequence[str], end: str) -> float | None:
        t0 = next((self.hops[h] for h in start if h in self.hops), None)
        t1 = self.hops.get(end)
        if t0 is None or t1 is None:
            return None
        return (t1 - t0) / 1e6


def join(records: Iterable[TraceRecord]) -> list[Interaction]:
    """Group records by trace id, keeping each hop's earliest stamp; interactions in order of
    their first stamp. Unknown hop names are ignored (a newer stage may stamp more)."""
    by_id: dict[int, Interaction] = {}
    for r in records:
        if r.hop not in HOPS or not r.trace_id:
            continue
        it = by_id.setdefault(r.trace_id, Interaction(r.trace_id))
        if r.hop not in it.hops or r.t_ns < it.hops[r.hop]:
            it.hops[r.hop] = r.t_ns
            it.fields[r.hop] = r.fields
        elif r.fields and r.t_ns == it.hops[r.hop]:
            # The same stamp seen twice (stage and tap): keep the richer set of extras.
            it.fields[r.hop] = {**r.fields, **it.fields.get(r.hop, {})}
    return sorted(by_id.values(), key=lambda i: min(i.hops.values()))


def expected_hops(stages: Iterable[str], origin: str, viewer: bool = False) -> list[str]:
    """The hops an interaction of ``origin`` ("speech" or "prompt") should show when
    ``stages`` run; ``displayed`` only when a browser viewer is attached."""
    names = set(stages)
    out = ["prompt"] if origin == "prompt" else list(STAGE_HOPS["listen"]) if "listen" in names else ["speech_end"]
    for stage in ("nlp", "world", "encode", "serve"):
        if stage in names:
            out += STAGE_HOPS[stage]
    if viewer:
        out.append("displayed")
    return [h for h in HOPS if h in out]


@dataclass(frozen=True, slots=True)
class Segment:
    """One report row: the time from the first present ``start`` hop to ``end``, or a value a
    stage stamped on a hop (``field``: (hop, key), in ms)."""

    key: str
    name: str
    start: tuple[str, ...] = ()
    end: str = ""
    field: tuple[str, str] | None = None
    reference: str | None = None
    target: tuple[str, float] | None = None  # (statistic, upper bound in ms)


_WIRE = "<wire>"  # stands for `sent` when a serve stage runs, else `encoded`
_VOICE = "<voice>"  # the acoustic end of the voice (or the keyword's, for an early intent)
SEGMENTS: tuple[Segment, ...] = (
    # Headline: what a person at the screen feels, from the end of their own words.
    Segment("voice_intent", "voice end -> intent", (_VOICE,), "intent"),
    Segment("voice_frame", "voice end -> first frame", (_VOICE,), "first_frame"),
    Segment("voice_encoded", "voice end -> encoded", (_VOICE,), "encoded", target=("p95", 200.0)),
    Segment("voice_wire", "voice end -> on the wire", (_VOICE,), _WIRE, reference="total"),
    Segment("voice_display", "voice end -> displayed", (_VOICE,), "displayed", target=("p95", 220.0)),
    # Where the voice rows' time goes: the VAD's end-of-speech decision, then the final's hops.
    Segment("voice_vad", "voice end -> VAD speech end", (_VOICE,), "speech_end"),
    Segment("recognize", "VAD speech end -> transcript final", ("speech_end",), "transcript_final"),
    Segment("nlp", "nlp compute (stamped by nlp)", field=("intent", "nlp_ms"), reference="nlp", target=("mean", 0.05)),
    Segment("to_intent", "transcript final / prompt -> intent", ("transcript_final", "prompt"), "intent"),
    Segment("accept", "intent -> applied", ("intent",), "applied"),
    Segment("render", "applied -> first frame", ("applied",), "first_frame"),
    Segment("lag", "intent -> first frame", ("intent",), "first_frame", reference="lag"),
    Segment("backend", "backend processing: resize + encode", field=("encoded", "encode_ms"), reference="backend",
            target=("mean", 0.3)),
    Segment("to_encoded", "first frame -> encoded", ("first_frame",), "encoded"),
    Segment("send", "encoded -> sent", ("encoded",), "sent"),
    Segment("display", "sent -> displayed", ("sent",), "displayed"),
    Segment("intent_wire", "intent -> on the wire", ("intent",), _WIRE, target=("p95", 60.0)),
    Segment("speech_wire", "VAD speech end -> on the wire", ("speech_end",), _WIRE, target=("p95", 250.0)),
    Segment("total", "total pipe: VAD speech end / prompt -> on the wire", ("speech_end", "prompt"), _WIRE,
            reference="total"),
    Segment("loop", "loop: VAD speech end / prompt -> displayed", ("speech_end", "prompt"), "displayed"),
)


def latency_rows(interactions: Sequence[Interaction], stages: Iterable[str], *, with_reference: bool = False,
                 keep_empty: bool = False) -> list[LatencyRow]:
    """A row per segment over every interaction that has the segment's hops (incomplete
    interactions still count for the parts they have; each row's n says how many)."""
    wire = "sent" if "serve" in set(stages) else "encoded"
    rows = []
    for seg in SEGMENTS:
        values: list[float] = []
        for it in interactions:
            if seg.field is not None:
                v = it.fields.get(seg.field[0], {}).get(seg.field[1])
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    values.append(float(v))
            else:
                end = wire if seg.end == _WIRE else seg.end
                span = it.from_voice_ms(end) if seg.start == (_VOICE,) else it.span_ms(seg.start, end)
                if span is not None:
                    values.append(span)
        stats = summarize(values)
        voice = seg.start == (_VOICE,)
        if stats.n == 0 and not keep_empty and (voice or not (with_reference and seg.reference)):
            continue
        name = seg.name.replace("on the wire", "on the wire" if wire == "sent" else "encoded (no serve stage)")
        row = LatencyRow(name, stats, reference=REFERENCE[seg.reference] if with_reference and seg.reference else None)
        if seg.target is not None:
            stat, bound = seg.target
            row.target = f"{stat} <= {bound:g} ms"
            got = getattr(stats, stat)
            row.met = None if got is None else got <= bound
        rows.append(row)
    return rows


# -- where the voice ends ---------------------------------------------------------------------

#: A 10 ms frame within this many dB of the clip's loudest counts as voiced (clean and moderately
#: noisy speech; `bench listen` estimates a clip's end the same way).
VOICED_DB = 30.0
#: Silence at least this long ends an utterance; a shorter one (between words) ends a stretch.
UTTERANCE_GAP_S = 0.3
WORD_GAP_S = 0.04


@dataclass(frozen=True, slots=True)
class Voice:
    """Where speech ends in a clip, in samples: each utterance's end and each voiced stretch's
    end (words, or runs of words said without a pause)."""

    utterance_ends: tuple[int, ...]
    stretch_ends: tuple[int, ...]


def voice_in(audio: Any, rate: int = 16000) -> Voice:
    """Segment a clip by its own energy into utterances and voiced stretches."""
    import numpy as np

    frame = rate // 100
    n = len(audio) // frame
    if n == 0:
        return Voice((), ())
    x = np.asarray(audio[: n * frame], dtype=np.float64).reshape(n, frame)
    rms = np.sqrt(np.mean(x * x, axis=1))
    peak = float(rms.max())
    if peak <= 0.0:
        return Voice((), ())
    # Within VOICED_DB of the loudest frame, and clearly (6 dB) above the noise floor.
    floor = float(np.percentile(rms, 10))
    voiced = np.flatnonzero(rms > max(peak * 10 ** (-VOICED_DB / 20), 2.0 * floor))
    # Runs of voiced frames: (first, last) frame indices.
    breaks = np.flatnonzero(np.diff(voiced) > 1)
    starts = np.concatenate([voiced[:1], voiced[breaks + 1]])
    ends = np.concatenate([voiced[breaks], voiced[-1:]])

    def merged(gap_s: float) -> tuple[int, ...]:
        gap = int(round(gap_s * 100))
        out: list[int] = []
        for i, end in enumerate(ends):
            if i + 1 < len(starts) and starts[i + 1] - end - 1 < gap:
                continue  # the next run follows too closely: same utterance / stretch
            out.append(int(end + 1) * frame)
        return tuple(out)

    return Voice(merged(UTTERANCE_GAP_S), merged(WORD_GAP_S))


@dataclass(frozen=True, slots=True)
class AudioObs:
    """One audio chunk the tap saw leave the capture stage: the clip's samples
    [offset, offset + n) and the capture time of its last sample."""

    offset: int
    n: int
    t_capture_ns: int


def voice_times(ends: Iterable[int], chunks: Sequence[AudioObs], rate: int = 16000) -> list[int]:
    """When, on the run's clock, the played audio reached each of ``ends`` (clip samples), once
    per pass of the clip (a looping source plays it again and again)."""
    ends = sorted(ends)
    out = []
    for c in chunks:
        for e in ends:
            if c.offset < e <= c.offset + c.n:
                out.append(c.t_capture_ns - (c.offset + c.n - e) * 1_000_000_000 // rate)
    return sorted(out)


def annotate_voice(interactions: Sequence[Interaction], utterance_ends_ns: Sequence[int],
                   stretch_ends_ns: Sequence[int]) -> int:
    """Give each spoken interaction its ``voice_end``: the last moment the played audio's voice
    stopped between the VAD declaring the utterance's start and its end. When its first intent
    came earlier than that, also ``keyword_end``: the end of the last voiced stretch before the
    intent. Returns how many interactions got a voice end."""
    import bisect

    done = 0
    for it in interactions:
        vad_end = it.hops.get("speech_end")
        if vad_end is None:
            continue
        lo = it.hops.get("speech_start", vad_end - 30_000_000_000)
        i = bisect.bisect_right(utterance_ends_ns, vad_end)
        if i == 0 or utterance_ends_ns[i - 1] < lo:
            continue
        voice = utterance_ends_ns[i - 1]
        it.hops["voice_end"] = voice
        done += 1
        intent = it.hops.get("intent")
        if intent is not None and intent < voice:
            j = bisect.bisect_right(stretch_ends_ns, intent)
            if j and stretch_ends_ns[j - 1] >= lo:
                it.hops["keyword_end"] = stretch_ends_ns[j - 1]
    return done


def why_incomplete(it: Interaction, missing: Sequence[str]) -> str:
    """A short reading of where an interaction stopped, from the hops it has."""
    intent = it.fields.get("intent", {})
    if "intent" in missing and "transcript_final" in it.hops:
        return "no command in the final transcript" + (f" ({t})" if (t := _text(it)) else "")
    if "intent" in it.hops and "applied" in missing and intent.get("keywords") == []:
        return "the final transcript retracted an early intent" + (f" ({t})" if (t := _text(it)) else "")
    if set(missing) <= {"sent", "displayed"}:
        return "no frame carrying it reached the viewer"
    present = [h for h in HOPS if h in it.hops]
    return f"stopped after {present[-1]}" if present else "no hop seen"


def _text(it: Interaction) -> str:
    text = it.fields.get("transcript_final", {}).get("text")
    return f'heard "{text}"' if text else ""


def tally(interactions: Sequence[Interaction], stages: Iterable[str], viewer: bool = False) -> Interactions:
    names = list(stages)
    out = Interactions(total=len(interactions))
    kinds = {it.origin for it in interactions} or {"prompt"}
    out.expected_hops = sorted({h for k in kinds for h in expected_hops(names, k, viewer)}, key=HOPS.index)
    for it in interactions:
        if it.origin == "unknown":
            # Seen downstream but never at an origin: say so rather than guess which it was.
            missing = ["prompt or speech_end", *(h for h in expected_hops(names, "prompt", viewer)[1:] if h not in it.hops)]
        else:
            missing = it.missing(expected_hops(names, it.origin, viewer))
        if missing:
            out.incomplete.append({"trace_id": it.trace_id, "origin": it.origin, "missing": missing,
                                   "present": [h for h in HOPS if h in it.hops], "why": why_incomplete(it, missing)})
        else:
            out.complete += 1
    return out


def frame_rows(frames: Sequence[FrameObs]) -> list[LatencyRow]:
    """Per-frame rows over every record the tap saw, traced or not: the cadence of each ring and
    the encode time of every frame (the jpeg slot's open -> publish)."""
    rows = []
    for ring in ("frames", "jpeg"):
        ts = sorted(f.t_publish_ns for f in frames if f.ring == ring)
        if len(ts) > 1:
            rows.append(LatencyRow(f"frame interval, {ring} ring (every frame)",
                                   summarize((b - a) / 1e6 for a, b in zip(ts, ts[1:]))))
    enc = [(f.t_publish_ns - f.t_write_ns) / 1e6 for f in frames if f.ring == "jpeg" and f.t_write_ns]
    if enc:
        row = LatencyRow("resize + encode (every frame)", summarize(enc), target="mean <= 0.3 ms")
        row.met = row.stats.mean is not None and row.stats.mean <= 0.3
        rows.append(row)
    return rows


def build_report(records: Iterable[TraceRecord], stages: Sequence[str], provenance: dict[str, Any], *,
                 title: str = "End-to-end latency", with_reference: bool = False, viewer: bool = False,
                 interactions: Sequence[Interaction] | None = None, frames: Sequence[FrameObs] = ()) -> Report:
    its = list(interactions) if interactions is not None else join(records)
    report = Report("e2e", title, provenance)
    report.latency = latency_rows(its, stages, with_reference=with_reference) + frame_rows(frames)
    report.interactions = tally(its, stages, viewer)
    report.notes.append(f"stages run: {', '.join(stages) or 'none'}; an interaction is complete when it shows every "
                        "hop those stages stamp. Each row's n counts the interactions that had both of its hops.")
    if with_reference:
        report.notes.append(f"Reference: the reference system's published table ({REFERENCE_N} interactions). "
                            "'reference / ours' above 1 means we are faster.")
    return report


# -- the live run ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FrameObs:
    """One record the tap saw on a ring (for frame-interval plots and the timeline)."""

    ring: str
    seq: int
    frame: int
    t_write_ns: int
    t_publish_ns: int
    trace_ids: tuple[int, ...]
    size: int


class Tap:
    """Watches the bus and the rings of a running arbiter and writes what it sees as trace
    records. Readers of a ring never slow its writer, so the tap cannot perturb the loop."""

    def __init__(self, log: tracing.TraceLog) -> None:
        self.log = log
        self.frames: list[FrameObs] = []
        self.audio: list[AudioObs] = []
        self.seen: dict[int, set[str]] = {}
        self.first_encoded = threading.Event()
        self.stop = threading.Event()
        self.cond = threading.Condition()
        self.threads: list[threading.Thread] = []
        self.errors: list[str] = []

    def _note(self, rec: TraceRecord, write: bool = True) -> None:
        with self.cond:
            hops = self.seen.setdefault(rec.trace_id, set())
            if rec.hop in hops and rec.hop in ("first_frame", "encoded"):
                return
            hops.add(rec.hop)
            if write:
                self.log.write(rec)
            self.cond.notify_all()

    def start(self, endpoints: Any, rings: Mapping[str, str]) -> None:
        self.threads = [threading.Thread(target=self._bus, args=(endpoints,), name="tap-bus", daemon=True),
                        threading.Thread(target=self._tail, name="tap-log", daemon=True)]
        if "audio" in rings:
            self.threads.append(threading.Thread(target=self._audio, args=(rings["audio"],), name="tap-audio",
                                                 daemon=True))
        for ring, hop in (("frames", "first_frame"), ("jpeg", "encoded")):
            if ring in rings:
                self.threads.append(threading.Thread(target=self._ring, args=(ring, rings[ring], hop),
                                                     name=f"tap-{ring}", daemon=True))
        for t in self.threads:
            t.start()

    def join(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(5.0)

    def _bus(self, endpoints: Any) -> None:
        from synesthesia.bus import Subscriber

        with Subscriber([""], endpoints) as sub:
            while not self.stop.is_set():
                got = sub.recv(timeout=0.05)
                if got is None:
                    continue
                topic, msg = got
                rec = tracing.record_of(msg, topic.split(".", 1)[0])
                if rec is not None:
                    self._note(rec)

    def _tail(self) -> None:
        """Follow the trace log for hops only a stage sees (`sent`, `displayed` in serve); a line
        that does not parse is counted when the whole log is read at the end."""
        with open(self.log.path, encoding="utf-8", errors="replace") as f:
            pending = ""
            while not self.stop.is_set():
                chunk = f.read()
                if not chunk:
                    time.sleep(0.02)
                    continue
                pending += chunk
                *lines, pending = pending.split("\n")
                for line in lines:
                    rec = tracing.parse(line)
                    if rec is not None and rec.hop in ("sent", "displayed"):
                        self._note(rec, write=False)

    def _ring(self, ring: str, name: str, hop: str) -> None:
        from synesthesia import shm

        try:
            handle: shm.FrameRing | shm.ByteRing = (shm.FrameRing if ring == "frames" else shm.ByteRing).attach(name)
        except Exception as e:  # a ring the graph does not have, or a layout we do not know
            self.errors.append(f"tap could not attach ring {ring}: {e}")
            return
        try:
            while not self.stop.is_set():
                rec = handle.read(timeout=0.05)
                if rec is None:
                    continue
                m = rec.meta
                seq = rec.seq
                del rec  # the ring refuses to close while a record still points into it
                self.frames.append(FrameObs(ring, seq, m.frame, m.t_write_ns, m.t_publish_ns, m.trace_ids, m.size))
                if ring == "jpeg":
                    self.first_encoded.set()
                for tid in m.trace_ids:
                    extra: dict[str, Any] = {"frame": m.frame}
                    if ring == "jpeg":
                        # The encode stage opens the slot, encodes straight into it and publishes:
                        # open -> publish is exactly resize + encode.
                        extra.update(encode_ms=(m.t_publish_ns - m.t_write_ns) / 1e6, bytes=m.size)
                    self._note(TraceRecord(tid, hop, m.t_publish_ns, "tap", 0, extra))
        finally:
            handle.close()

    def _audio(self, name: str) -> None:
        """Which samples of the played clip went out when (the capture stage stamps each chunk
        with the clip offset of its first sample and the capture time of its last)."""
        from synesthesia import shm

        try:
            handle = shm.FrameRing.attach(name)
        except Exception as e:
            self.errors.append(f"tap could not attach the audio ring: {e}")
            return
        try:
            while not self.stop.is_set():
                rec = handle.read(timeout=0.05)
                if rec is None:
                    continue
                obs = AudioObs(rec.meta.frame, int(rec.array.shape[0]), rec.meta.t_source_ns)
                del rec
                self.audio.append(obs)
        finally:
            handle.close()

    def wait_for(self, trace_id: int, hops: Sequence[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not set(hops) <= self.seen.get(trace_id, set()):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
        return True

    def quiet_for(self, seconds: float, limit: float) -> None:
        """Wait until no new hop has arrived for ``seconds`` (at most ``limit`` seconds)."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            with self.cond:
                before = sum(len(v) for v in self.seen.values())
                self.cond.wait(seconds)
                if sum(len(v) for v in self.seen.values()) == before:
                    return


@dataclass(slots=True)
class RunResult:
    records: list[TraceRecord]
    frames: list[FrameObs]
    stages: list[str]
    bad_lines: int
    exit_code: int
    log_tail: str
    errors: list[str]
    audio: list[AudioObs] = field(default_factory=list)
    played: Path | None = None  # the clip the capture stage played, when it is a file
    speech_end_s: float | None = None  # where its voice ends, when the clip's manifest says


Driver = Callable[["Any", Tap, Callable[[str], None]], None]


def run_pipeline(settings: Any, graph: Sequence[Any] | None, drive: Driver, trace_log: Path, *,
                 progress: Callable[[str], None] = lambda s: None, startup_timeout_s: float = 60.0,
                 browser: bool = False) -> RunResult:
    """Start the engine (supervisor in this thread: it owns signal handling), wait until the
    jpeg ring carries frames, call ``drive(arbiter, tap, progress)`` in a helper thread, stop
    the engine, and return every trace record of the run. With ``browser`` (the graph must run
    the serve stage), a headless chromium opens the viewer and draws every frame first, so the
    `sent` and `displayed` hops are stamped by a real page."""
    from synesthesia.supervisor.arbiter import Arbiter

    trace_log.parent.mkdir(parents=True, exist_ok=True)
    trace_log.write_text("")
    previous = os.environ.get(tracing.ENV)
    tracing.enable(trace_log)  # before the stages spawn, so they inherit it
    # The arbiter switches the log on from its settings: make sure it is this run's log.
    settings = dataclasses.replace(settings, trace=str(trace_log))
    out = io.StringIO()
    arbiter = Arbiter(settings, graph, out=out, live_view=False)
    errors: list[str] = []
    log = tracing.TraceLog(trace_log)
    tap = Tap(log)

    def driver() -> None:
        viewer: Any = None
        try:
            deadline = time.monotonic() + startup_timeout_s
            while time.monotonic() < deadline and not arbiter.stop_requested.is_set():
                if arbiter.endpoints is not None and arbiter.graph and len(arbiter.watchers) == len(arbiter.graph):
                    break
                time.sleep(0.02)
            if arbiter.endpoints is None:
                errors.append("the engine did not start")
                return
            tap.start(arbiter.endpoints, {k: r.name for k, r in arbiter.rings.items()})
            progress("e2e: waiting for the first encoded frame")
            while not tap.first_encoded.wait(0.1):
                if arbiter.stop_requested.is_set():
                    errors.append(f"the engine stopped before its first encoded frame ({arbiter.stop_reason})")
                    return
                if time.monotonic() > deadline:
                    errors.append(f"no encoded frame within {startup_timeout_s:g} s of start")
                    return
            # Every stage's loop must be turning (so its subscriptions exist) before the first prompt.
            while not all(w.state.value == "running" for w in arbiter.watchers.values()):
                if arbiter.stop_requested.is_set() or time.monotonic() > deadline:
                    errors.append("not every stage reached the running state: "
                                  + ", ".join(f"{w.name} {w.state.value}" for w in arbiter.watchers.values()))
                    return
                time.sleep(0.1)
            if browser:
                viewer = attach_browser(arbiter, deadline, progress)
            time.sleep(0.3)  # let subscriptions settle: PUB/SUB joins are asynchronous
            drive(arbiter, tap, progress)
        except Exception as e:  # report, then stop the engine: never leave it running
            errors.append(f"driver failed: {type(e).__name__}: {e}")
        finally:
            if viewer is not None:
                drawn = _frames_drawn(viewer)
                viewer.close()
                if drawn is not None:
                    progress(f"e2e: the browser drew {drawn} frames")
            arbiter.request_stop("bench finished")

    thread = threading.Thread(target=driver, name="bench-driver", daemon=True)
    thread.start()
    try:
        code = arbiter.run()
    finally:
        arbiter.request_stop("bench finished")
        thread.join(10.0)
        tap.join()
        log.close()
        if previous is None:
            tracing.disable()
        else:
            os.environ[tracing.ENV] = previous
    records, bad = tracing.read(trace_log)
    return RunResult(records, sorted(tap.frames, key=lambda f: f.t_publish_ns), [s.name for s in arbiter.graph], bad,
                     code, out.getvalue()[-4000:], errors + tap.errors, list(tap.audio), played_clip(settings))


def played_clip(settings: Any) -> Path | None:
    """The file the capture stage plays, if it plays one (not a microphone or a browser)."""
    source = settings.capture.source
    if source == "demo":
        from synesthesia.stages.capture import demo_path

        return demo_path()
    path = Path(source.removeprefix("file:"))
    return path if path.is_file() else None


def voice_ends(results: Sequence[RunResult], interactions: Sequence[Interaction]) -> str:
    """Annotate ``interactions`` with where the voice ended in each run's played clip; a note
    saying what was found."""
    from synesthesia.hearing.sources import RATE, read_audio

    utter: list[int] = []
    stretch: list[int] = []
    for res in results:
        if res.played is None or not res.audio:
            continue
        audio = read_audio(res.played)
        voice = voice_in(audio, RATE)
        if res.speech_end_s is not None:  # known timing beats the estimate
            voice = Voice((int(round(res.speech_end_s * RATE)),), voice.stretch_ends)
        # The clip's last chunk is padded to the ring's chunk size: its stamp is for its last real sample.
        chunks = [dataclasses.replace(c, n=min(c.n, len(audio) - c.offset)) for c in res.audio]
        utter += voice_times(voice.utterance_ends, chunks, RATE)
        stretch += voice_times(voice.stretch_ends, chunks, RATE)
    spoken = sum(1 for it in interactions if "speech_end" in it.hops)
    done = annotate_voice(interactions, sorted(utter), sorted(stretch))
    early = sum(1 for it in interactions if "keyword_end" in it.hops)
    known = sum(1 for res in results if res.speech_end_s is not None)
    how = (f"the manifest's speech_end_s ({known} clips) or else " if known else "") + "the played audio itself"
    return (f"voice end: where speech stops, from {how} (10 ms frames within {VOICED_DB:g} dB of the "
            f"loudest and above the noise floor; {UTTERANCE_GAP_S:g} s of silence ends an utterance), mapped onto the "
            "run's clock through the "
            f"audio ring's capture stamps; found for {done} of {spoken} spoken interactions. {early} had an early "
            "intent (from a partial transcript, before the voice ended): those count from the end of the last voiced "
            "stretch before it (the keyword's end as near as the audio tells). Rows named 'VAD speech end' start "
            "where the VAD declared the end instead.")


def attach_browser(arbiter: Any, deadline: float, progress: Callable[[str], None]) -> Any:
    """Open the run's viewer in headless chromium and wait until it draws frames; the caller
    closes the returned :class:`~synesthesia.bench.browser.Browser`."""
    from synesthesia.bench.browser import Browser

    progress("e2e: waiting for the viewer's address")
    while not arbiter.viewer_url:
        if arbiter.stop_requested.is_set() or time.monotonic() > deadline:
            raise RuntimeError("the serve stage never announced the viewer's address (is it in the pipeline?)")
        time.sleep(0.05)
    progress(f"e2e: opening {arbiter.viewer_url} in headless chromium")
    viewer = Browser()
    try:
        viewer.open_viewer(arbiter.viewer_url, timeout=max(10.0, deadline - time.monotonic()))
    except BaseException:
        viewer.close()
        raise
    return viewer


def _frames_drawn(viewer: Any) -> int | None:
    try:
        return int(viewer.page().js("window.synesthesia.framesDrawn"))
    except Exception:
        return None


def typed_driver(prompts: Sequence[str], n: int, timeout_s: float, gap_s: float, expected: Sequence[str]) -> Driver:
    """Send ``n`` typed prompts through the supervisor's `say` command, one at a time: the next
    goes out when the previous one showed every expected hop or ``timeout_s`` passed."""

    def drive(arbiter: Any, tap: Tap, progress: Callable[[str], None]) -> None:
        from synesthesia.bus import CommandClient

        done = 0
        with CommandClient(arbiter.endpoints.command("supervisor")) as client:
            for i in range(n):
                if arbiter.stop_requested.is_set():
                    break
                reply = client.call("say", {"text": prompts[i % len(prompts)]}, timeout=5.0)
                if reply is None or not reply.ok:
                    raise RuntimeError(f"say failed: {None if reply is None else reply.error}")
                tid = int(reply.result["trace_id"])
                if tap.wait_for(tid, expected, timeout_s):
                    done += 1
                progress(f"e2e: {i + 1}/{n} interactions, {done} complete")
                time.sleep(gap_s)
        tap.quiet_for(0.3, 2.0)

    return drive


def spoken_driver(duration_s: float, timeout_s: float, n: int | None = None) -> Driver:
    """For a run whose capture plays speech: wait until ``n`` utterances have ended (when given)
    or ``duration_s`` passed, then until the hops stop arriving."""

    def drive(arbiter: Any, tap: Tap, progress: Callable[[str], None]) -> None:
        end = time.monotonic() + duration_s
        while time.monotonic() < end and not arbiter.stop_requested.is_set():
            with tap.cond:
                spoken = sum(1 for hops in tap.seen.values() if "speech_end" in hops)
            if n is not None and spoken >= n:
                break
            progress(f"e2e: listening, {spoken}{'' if n is None else f'/{n}'} utterances, "
                     f"{max(0.0, end - time.monotonic()):.0f} s left")
            time.sleep(min(1.0, max(0.0, end - time.monotonic())))
        tap.quiet_for(timeout_s, timeout_s * 4)

    return drive


# -- the `synesthesia bench e2e` entry (registered in synesthesia.bench.areas) ----------------

HEADLESS_NOTE = ("headless run (no serve stage): the loop ends at `encoded`; `--browser` adds the serve stage and "
                 "a browser, for the `sent` and `displayed` hops")

#: Typed commands used when no manifest is given and no listen stage runs.
DEFAULT_PROMPTS: tuple[str, ...] = (
    "a storm over the mountains",
    "calm ocean at sunrise",
    "a forest in heavy rain",
    "desert dunes under a red sky",
    "snow falling on a quiet city",
    "lightning over a dark sea",
    "a meadow full of fireflies",
    "volcano glowing at night",
)


def _manifest(path: Path) -> list[tuple[Path, float | None]]:
    """Clips from a manifest: JSON (a list, or an object with ``clips``/``items``) or JSON
    Lines of objects with ``audio``/``path``/``file``, or plain lines of paths; relative paths
    are taken from the manifest's folder. An object's ``speech_end_s`` (where the voice ends in
    the clip, as `bench listen` manifests give it) comes along, else None."""
    import json

    text = path.read_text()
    entries: list[Any]
    try:
        doc = json.loads(text)
        entries = doc if isinstance(doc, list) else list(doc.get("clips") or doc.get("items") or [])
    except json.JSONDecodeError:
        entries = []
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                entries.append(line)
    clips: list[tuple[Path, float | None]] = []
    for e in entries:
        p = e if isinstance(e, str) else next((e[k] for k in ("audio", "path", "file", "wav") if k in e), None)
        if p is None:
            raise ValueError(f"{path}: entry {e!r} names no audio file (audio, path, file or wav)")
        end = None if isinstance(e, str) else e.get("speech_end_s")
        if end is not None and not (isinstance(end, (int, float)) and end >= 0):
            raise ValueError(f"{path}: entry {e!r}: speech_end_s must be a number of seconds >= 0")
        clips.append((Path(p) if Path(p).is_absolute() else path.parent / p, None if end is None else float(end)))
    return clips


def _clip_seconds(path: Path) -> float:
    import wave

    try:
        with wave.open(str(path)) as w:
            return float(w.getnframes()) / float(w.getframerate())
    except (wave.Error, OSError, EOFError):
        return 10.0  # not a WAV we can measure: a bound long enough for a short command


def run_from_args(args: Any) -> Report:
    import sys
    import tempfile

    from synesthesia.bench import provenance
    from synesthesia.settings import load_settings
    from synesthesia.supervisor.arbiter import default_graph

    def progress(text: str) -> None:
        print(f"\r\x1b[K{text}" if sys.stderr.isatty() else text, file=sys.stderr, end="" if sys.stderr.isatty() else "\n",
              flush=True)

    if args.browser and args.from_log:
        raise RuntimeError("--browser attaches a browser to a new run; --from-log reads a finished one "
                           "(use --viewer to say a browser was attached to it)")
    overrides: dict[str, Any] = {"headless": not args.browser, "log_level": "warning"}
    if args.browser:
        from synesthesia.bench.browser import require_chromium

        require_chromium()  # before the engine starts, not after
        overrides["serve"] = {"host": "127.0.0.1", "port": 0, "token": None}
    if args.backend:
        overrides["world"] = {"backend": args.backend}
    settings = load_settings(getattr(args, "config", None), overrides=overrides)
    graph = default_graph(settings)
    stages = [s.name for s in graph]
    spoken = bool(args.manifest) or ("listen" in stages and not args.prompt)
    viewer = bool(args.viewer or args.browser)
    log_path = Path(args.trace_log) if args.trace_log else Path(tempfile.mkdtemp(prefix="synesthesia-e2e-")) / "trace.jsonl"
    timeout = args.timeout if args.timeout is not None else 3.0 + (settings.world.emulate_mean_ms / 1e3 if settings.world.backend == "emulate" else 0.0)
    results: list[RunResult] = []
    if args.from_log:
        if args.stages:
            stages = [s.strip() for s in args.stages.split(",") if s.strip()]
        records, bad = tracing.read(args.from_log)
        results.append(RunResult(records, [], stages, bad, 0, "", []))
    elif spoken and args.manifest:
        for i, (clip, end_s) in enumerate(_manifest(Path(args.manifest))):
            progress(f"e2e: clip {i + 1}: {clip.name}")
            s = load_settings(getattr(args, "config", None), overrides={**overrides, "capture": {"source": str(clip), "loop": False}})
            res = run_pipeline(s, default_graph(s), spoken_driver(_clip_seconds(clip), timeout),
                               log_path.with_name(f"{log_path.stem}-{i}{log_path.suffix}"), progress=progress,
                               browser=args.browser)
            results.append(dataclasses.replace(res, speech_end_s=end_s))
    elif spoken:
        # The configured source (the bundled demo speech by default) plays until n utterances ended.
        results.append(run_pipeline(settings, graph, spoken_driver(args.interactions * 10.0, timeout, args.interactions),
                                    log_path, progress=progress, browser=args.browser))
    else:
        prompts = list(args.prompt or DEFAULT_PROMPTS)
        expected = expected_hops(stages, "prompt", viewer)
        results.append(run_pipeline(settings, graph, typed_driver(prompts, args.interactions, timeout, args.gap, expected),
                                    log_path, progress=progress, browser=args.browser))
    if sys.stderr.isatty():
        print(file=sys.stderr)
    records = [r for res in results for r in res.records]
    frames = [f for res in results for f in res.frames]
    interactions = join(records)
    voice_note = voice_ends(results, interactions) if spoken and not args.from_log else None
    emulate = settings.world.backend == "emulate"
    prov = provenance.collect(settings.to_dict(), extra={
        "interactions_requested": args.interactions, "mode": "spoken" if spoken else "typed",
        "trace_log": str(args.trace_log) if args.trace_log else "a temporary file (keep it with --trace-log FILE)",
        "browser": "headless chromium on the viewer" if args.browser else "none"})
    title = "End-to-end latency" + (" beside the reference system (world backend: emulate)" if emulate else "")
    report = build_report(records, stages, prov, title=title, with_reference=emulate or args.reference,
                          viewer=viewer, interactions=interactions, frames=frames)
    if voice_note:
        report.notes.append(voice_note)
    for res in results:
        if res.bad_lines:
            report.notes.append(f"{res.bad_lines} unreadable trace-log lines (a process stopped mid-write)")
        report.notes += res.errors
        if res.exit_code:
            report.notes.append(f"the engine exited with status {res.exit_code}; its last log lines: {res.log_tail[-800:]!r}")
    if "serve" not in stages:
        report.notes.append(HEADLESS_NOTE)
    if args.trace:
        from synesthesia.bench import perfetto

        perfetto.write(args.trace, interactions, frames, {"provenance": prov})
        report.notes.append(f"Perfetto trace: {args.trace} (open in ui.perfetto.dev)")
    if args.plots:
        from synesthesia.bench import plots

        for p in plots.write(args.plots, interactions, frames, stages):
            report.notes.append(f"plot: {p}")
    return report
