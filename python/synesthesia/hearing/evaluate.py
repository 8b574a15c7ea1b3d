"""Accuracy and latency evaluator over a folder of labelled audio (runs in the bench / CLI
process): the real VAD, recognizer and NLP in-process, each file streamed as fast as possible in
32 ms chunks, with latency measured on the audio clock plus the measured processing time.

Manifest: JSON Lines, one object per clip, ``{"file": "<path relative to the manifest>",
"expect": ["snow", ...]}``; an empty ``expect`` means the clip must produce no intent. Optional
``speech_end_s`` (where the speech ends in the clip), ``snr_db`` (null for clean speech) and
``condition`` (a label the table groups clips by; default "clean" or "snr N dB") are used when
present; without ``speech_end_s`` the end is estimated from the signal energy.

Latency of a clip: for the keywords of its final intent, the moment the last of them was first
published (early or final intent), minus the end of speech. That moment is the audio-clock end
of the chunk that produced it plus the wall time the pipeline spent on that chunk, i.e. what a
live capture would see.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synesthesia.errors import AudioSourceError
from synesthesia.hearing.listener import Listener, TranscriptFinal, TranscriptPartial
from synesthesia.hearing.sources import RATE, FileSource
from synesthesia.intent import Intent, IntentTracker, Vocabulary

__all__ = ["Clip", "ClipResult", "read_manifest", "evaluate", "summarize", "format_table", "format_side_by_side",
           "estimate_speech_end"]


@dataclass(frozen=True)
class Clip:
    path: Path
    file: str
    expect: tuple[str, ...]
    speech_end_s: float | None = None
    snr_db: float | None = None
    condition: str | None = None  # the manifest's own label ("fast 1.12x", "noise 10 dB", ...)
    keyword_end_s: float | None = None  # acoustic end of the command's last keyword, when known


@dataclass
class ClipResult:
    file: str
    expect: tuple[str, ...]
    keywords: tuple[str, ...]
    latency_ms: float | None
    condition: str
    early_keywords: tuple[str, ...] = ()  # published by some intent, final or not
    transcript: str = ""
    keyword_latency_ms: float | None = None  # from the end of the last keyword (keyword_end_s)


def read_manifest(path: str | Path, vocabulary: Vocabulary | None = None) -> list[Clip]:
    p = Path(path)
    if not p.is_file():
        raise AudioSourceError(f"manifest not found: {p}")
    clips = []
    for n, line in enumerate(p.read_text("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            file, expect = obj["file"], obj.get("expect", [])
            if not isinstance(file, str) or not isinstance(expect, list):
                raise TypeError("'file' must be a string and 'expect' a list")
        except (ValueError, KeyError, TypeError) as e:
            raise AudioSourceError(f"{p}:{n}: bad manifest line ({e})") from None
        if vocabulary is not None:
            unknown = [w for w in expect if w not in vocabulary.keywords]
            if unknown:
                raise AudioSourceError(f"{p}:{n}: expected keywords {unknown} are not canonical dictionary words")
        end, kw_end = obj.get("speech_end_s"), obj.get("keyword_end_s")
        cond = obj.get("condition")
        clips.append(Clip((p.parent / file), file, tuple(expect),
                          float(end) if end is not None else None, obj.get("snr_db"),
                          str(cond) if cond is not None else None,
                          float(kw_end) if kw_end is not None else None))
    if not clips:
        raise AudioSourceError(f"{p}: no clips")
    return clips


def estimate_speech_end(audio: np.ndarray) -> float:
    """End of the last 10 ms frame within 25 dB of the loudest: good for clean and moderately
    noisy clips; noisier ones should carry ``speech_end_s`` in the manifest."""
    frame = 160
    n = len(audio) // frame
    if n == 0:
        return len(audio) / RATE
    rms = np.sqrt(np.mean(audio[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    on = np.flatnonzero(rms > rms.max() * 10 ** (-25 / 20))
    return float((on[-1] + 1) * frame / RATE)


@dataclass
class _Timing:
    chunk_ms: list[float] = field(default_factory=list)
    nlp_ms: list[float] = field(default_factory=list)
    vad_ms: list[float] = field(default_factory=list)
    audio_s: float = 0.0
    busy_s: float = 0.0
    cpu_s: float = 0.0  # process CPU time (every thread) spent on the clips


def evaluate(clips: list[Clip], listener: Listener, vocabulary: Vocabulary,
             progress: Callable[[int, int], None] | None = None) -> tuple[list[ClipResult], _Timing]:
    timing = _Timing()
    results = []
    cpu0 = time.process_time()
    for i, clip in enumerate(clips):
        source = FileSource(clip.path, realtime=False)
        end_s = clip.speech_end_s
        if end_s is None and clip.expect:
            end_s = estimate_speech_end(source.audio)
        listener.reset()
        listener.vad_ns.clear()
        tracker = IntentTracker(vocabulary)
        first_pub: dict[str, float] = {}  # keyword -> audio-clock ms at first publication
        final: Intent | None = None
        transcript = ""

        def publish(intent: Intent | None, offset: int, t_cap: int) -> None:
            if intent is None:
                return
            at = offset * 1000 / RATE + (intent.t_intent_ns - t_cap) / 1e6
            for k in intent.keywords:
                first_pub.setdefault(k, at)

        def handle(events: list[Any]) -> None:
            nonlocal final, transcript
            for ev in events:
                if isinstance(ev, TranscriptPartial):
                    t0 = time.perf_counter_ns()
                    it = tracker.partial(ev.trace_id, ev.text, ev.t_ns)
                    timing.nlp_ms.append((time.perf_counter_ns() - t0) / 1e6)
                    publish(it, ev.offset, ev.t_capture_ns)
                elif isinstance(ev, TranscriptFinal):
                    t0 = time.perf_counter_ns()
                    it = tracker.final(ev.trace_id, ev.text, ev.t_ns)
                    timing.nlp_ms.append((time.perf_counter_ns() - t0) / 1e6)
                    publish(it, ev.offset, ev.t_capture_ns)
                    transcript = (transcript + " " + ev.text).strip()
                    if it is not None and it.keywords:
                        # several utterances in one clip: keep every final keyword
                        kws = tuple(dict.fromkeys((final.keywords if final else ()) + it.keywords))
                        final = it if final is None else Intent(it.trace_id, kws, (), "", it.text)

        for chunk in source:
            t0 = time.perf_counter_ns()
            events = listener.process(chunk)
            handle(events)
            dt = (time.perf_counter_ns() - t0) / 1e6
            timing.chunk_ms.append(dt)
            timing.busy_s += dt / 1000
        t0 = time.perf_counter_ns()
        handle(listener.flush(time.monotonic_ns()))
        timing.busy_s += (time.perf_counter_ns() - t0) / 1e9
        timing.audio_s += source.duration_s
        timing.vad_ms.extend(v / 1e6 for v in listener.vad_ns)

        keywords = final.keywords if final else ()
        latency = kw_latency = None
        if keywords and end_s is not None:
            latency = round(max(first_pub[k] for k in keywords) - end_s * 1000, 1)
        if keywords and clip.keyword_end_s is not None:
            kw_latency = round(max(first_pub[k] for k in keywords) - clip.keyword_end_s * 1000, 1)
        results.append(ClipResult(clip.file, clip.expect, keywords, latency,
                                  clip.condition or ("clean" if clip.snr_db is None else f"snr {clip.snr_db:g} dB"),
                                  tuple(first_pub), transcript, kw_latency))
        if progress:
            progress(i + 1, len(clips))
    timing.cpu_s = time.process_time() - cpu0
    return results, timing


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values else None


def summarize(results: list[ClipResult], timing: _Timing) -> dict[str, Any]:
    def accuracy(rs: list[ClipResult]) -> dict[str, Any]:
        cmd = [r for r in rs if r.expect]
        neg = [r for r in rs if not r.expect]
        want = sum(len(r.expect) for r in cmd)
        hit = sum(len(set(r.expect) & set(r.keywords)) for r in cmd)
        return {
            "command_clips": len(cmd),
            "keyword_recall": round(hit / want, 4) if want else None,
            "clips_all_keywords": round(sum(set(r.expect) <= set(r.keywords) for r in cmd) / len(cmd), 4) if cmd else None,
            "clips_wrong_extra_keyword": round(sum(bool(set(r.keywords) - set(r.expect)) for r in cmd) / len(cmd), 4) if cmd else None,
            "empty_clips": len(neg),
            # strict: an early intent later retracted still reached the world
            "false_intents": round(sum(bool(r.early_keywords) for r in neg) / len(neg), 4) if neg else None,
            "false_final_intents": round(sum(bool(r.keywords) for r in neg) / len(neg), 4) if neg else None,
        }

    lat = [r.latency_ms for r in results if r.latency_ms is not None]
    kw_lat = [r.keyword_latency_ms for r in results if r.keyword_latency_ms is not None]
    by_condition = {c: accuracy([r for r in results if r.condition == c])
                    for c in sorted({r.condition for r in results})}
    return {
        "clip_count": len(results),
        "overall": accuracy(results),
        "by_condition": by_condition,
        "latency_ms": {"p50": _pct(lat, 50), "p95": _pct(lat, 95), "n": len(lat)},
        "keyword_latency_ms": {"p50": _pct(kw_lat, 50), "p95": _pct(kw_lat, 95), "n": len(kw_lat)},
        "chunk_ms": {"p50": _pct(timing.chunk_ms, 50), "p99": _pct(timing.chunk_ms, 99), "n": len(timing.chunk_ms)},
        "vad_window_ms": {"p50": _pct(timing.vad_ms, 50), "p99": _pct(timing.vad_ms, 99)},
        "nlp_ms": {"p50": _pct(timing.nlp_ms, 50), "p99": _pct(timing.nlp_ms, 99), "n": len(timing.nlp_ms)},
        "real_time_factor": round(timing.busy_s / timing.audio_s, 4) if timing.audio_s else None,
        # CPU seconds per second of audio: the cores the stage would keep busy in real time
        "cpu_cores": round(timing.cpu_s / timing.audio_s, 4) if timing.audio_s else None,
        "audio_s": round(timing.audio_s, 1),
    }


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "-"
    if pct:
        return f"{100 * v:.1f}%"
    return f"{v:g}" if isinstance(v, (int, float)) and not math.isnan(v) else str(v)


_ACCURACY_ROWS = [("command_clips", "command clips"), ("keyword_recall", "keyword recall"),
                  ("clips_all_keywords", "clips with all keywords"),
                  ("clips_wrong_extra_keyword", "clips with a wrong extra keyword"),
                  ("empty_clips", "non-command / noise clips"),
                  ("false_intents", "false intents (any, incl. retracted early ones)"),
                  ("false_final_intents", "false final intents")]


def format_side_by_side(summaries: dict[str, dict[str, Any]]) -> str:
    """One table, a column per recognizer and condition (same clips, same run)."""
    names = list(summaries)
    conds = list(dict.fromkeys(c for s in summaries.values() for c in ["overall", *s["by_condition"]]))
    cols = [(n, c) for c in conds for n in names]

    def cell(n: str, c: str) -> dict[str, Any]:
        s = summaries[n]
        got: dict[str, Any] = s["overall"] if c == "overall" else s["by_condition"].get(c, {})
        return got

    lines = ["| metric | " + " | ".join(f"{n} {c}" for n, c in cols) + " |", "|---|" + "---|" * len(cols)]
    for key, label in _ACCURACY_ROWS:
        pct = key not in ("command_clips", "empty_clips")
        lines.append(f"| {label} | " + " | ".join(_fmt(cell(n, c).get(key), pct) for n, c in cols) + " |")
    lines += ["", "| timing | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]

    def row(label: str, get: Callable[[dict[str, Any]], str]) -> None:
        lines.append(f"| {label} | " + " | ".join(get(summaries[n]) for n in names) + " |")

    row("end of speech -> intent p50 / p95 (ms)",
        lambda s: f"{_fmt(s['latency_ms']['p50'])} / {_fmt(s['latency_ms']['p95'])} (n={s['latency_ms']['n']})")
    if any(s.get("keyword_latency_ms", {}).get("n") for s in summaries.values()):
        row("end of the last keyword -> intent p50 / p95 (ms)",
            lambda s: f"{_fmt(s['keyword_latency_ms']['p50'])} / {_fmt(s['keyword_latency_ms']['p95'])} "
            f"(n={s['keyword_latency_ms']['n']})")
    row("per 32 ms chunk p50 / p99 (ms)", lambda s: f"{_fmt(s['chunk_ms']['p50'])} / {_fmt(s['chunk_ms']['p99'])}")
    row("one decode of <= 4 s, wall p50 / p99 (ms)",
        lambda s: f"{_fmt(s['decode_ms']['le4s_p50'])} / {_fmt(s['decode_ms']['le4s_p99'])} (n={s['decode_ms']['le4s_n']})"
        if "decode_ms" in s else "-")
    row("one decode of <= 4 s, CPU p50 / p99 (ms, all threads)",
        lambda s: f"{_fmt(s['decode_ms']['le4s_cpu_p50'])} / {_fmt(s['decode_ms']['le4s_cpu_p99'])}"
        if "decode_ms" in s else "-")
    row("tokens per decode mean / max, decodes that used the whole budget",
        lambda s: f"{s['decode_ms']['tokens_mean']} / {s['decode_ms']['tokens_max']}, {s['decode_ms']['out_of_budget']}"
        if "tokens_mean" in s.get("decode_ms", {}) else "-")
    row("CPU cores while processing in real time", lambda s: _fmt(s.get("cpu_cores")))
    row("real-time factor (wall)", lambda s: _fmt(s["real_time_factor"]))
    first = summaries[names[0]]
    lines += ["", f"{first['clip_count']} clips, {first['audio_s']} s of audio"]
    return "\n".join(lines)


def format_table(summary: dict[str, Any]) -> str:
    cols = ["overall", *summary["by_condition"]]
    rows = {"overall": summary["overall"], **summary["by_condition"]}
    lines = ["| metric | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for key, label in _ACCURACY_ROWS:
        pct = key not in ("command_clips", "empty_clips")
        lines.append(f"| {label} | " + " | ".join(_fmt(rows[c][key], pct) for c in cols) + " |")
    s = summary
    lines += [
        "",
        f"| timing | p50 | p95/p99 |",
        "|---|---|---|",
        f"| end of speech -> intent (ms, n={s['latency_ms']['n']}) | {_fmt(s['latency_ms']['p50'])} | p95 {_fmt(s['latency_ms']['p95'])} |",
        *([f"| end of the last keyword -> intent (ms, n={s['keyword_latency_ms']['n']}) "
           f"| {_fmt(s['keyword_latency_ms']['p50'])} | p95 {_fmt(s['keyword_latency_ms']['p95'])} |"]
          if s["keyword_latency_ms"]["n"] else []),
        f"| per 32 ms chunk: VAD + recognizer + NLP (ms) | {_fmt(s['chunk_ms']['p50'])} | p99 {_fmt(s['chunk_ms']['p99'])} |",
        f"| VAD per 512-sample window (ms) | {_fmt(s['vad_window_ms']['p50'])} | p99 {_fmt(s['vad_window_ms']['p99'])} |",
        f"| NLP per transcript (ms) | {_fmt(s['nlp_ms']['p50'])} | p99 {_fmt(s['nlp_ms']['p99'])} |",
    ]
    d = s.get("decode_ms")
    if d:
        lines += [
            f"| one decode of <= 4 s, wall (ms, n={d['le4s_n']}) | {_fmt(d['le4s_p50'])} | p99 {_fmt(d['le4s_p99'])} |",
            f"| one decode of <= 4 s, CPU (ms, all threads) | {_fmt(d['le4s_cpu_p50'])} | p99 {_fmt(d['le4s_cpu_p99'])} |",
            f"| tokens per decode (mean, max; {d.get('out_of_budget')} used the whole budget) "
            f"| {d.get('tokens_mean')} | max {d.get('tokens_max')} |",
        ]
    lines += [
        "",
        f"real-time factor {_fmt(s['real_time_factor'])}, {_fmt(s.get('cpu_cores'))} CPU cores, "
        f"over {s['audio_s']} s of audio, {s['clip_count']} clips",
    ]
    return "\n".join(lines)
