"""The listen stage's CPU budget (run by hand): the world's frame-interval jitter while the
listener hears someone speak continuously, against silence and no listener at all, for Whisper
at 1 and 2 threads and for pocketsphinx. How `WhisperConfig.threads` was chosen.

A world process renders the procedural scene at 1280x704 and 25 fps, as the world stage does,
and records when each frame starts; this process plays audio to the listener in real time
(32 ms chunks on the wall clock) and records its own CPU time. Speech is the tune split's clean
clips back to back (bench/speech/synthesize.py --split wide-tune), so the recognizer never idles.

    .venv/bin/python bench/speech/jitter.py --clips bench/out/speech/wide-tune [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from synesthesia.hearing import build_listener
from synesthesia.hearing.sources import AudioChunk
from synesthesia.hearing.whisper import WhisperConfig
from synesthesia.intent import load_vocabulary

RATE, CHUNK, FPS = 16000, 512, 25.0


def world(seconds: float, out: mp.Queue) -> None:  # type: ignore[type-arg]
    from synesthesia import _native

    scene = _native.WorldScene(0.8, 0.35)
    scene.apply([("storm", 1.0), ("mountains", 1.0)])
    scene.settle()
    state = scene.current()
    renderer = _native.WorldRenderer(7)
    frame = np.empty((704, 1280, 3), np.uint8)
    starts = []
    period = 1.0 / FPS
    t0 = time.perf_counter()
    deadline = t0
    while deadline - t0 < seconds:
        now = time.perf_counter()
        if now < deadline:
            time.sleep(deadline - now)
        starts.append(time.perf_counter())
        renderer.render_into(frame, state, starts[-1] - t0)
        deadline += period
    out.put(np.diff(np.asarray(starts)) * 1e3)


def speech(folder: Path, seconds: float) -> np.ndarray:
    rows = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
    parts = []
    total = 0
    for r in rows:
        if r["condition"] != "clean" or r["speech_start_s"] is None:
            continue
        a, _ = sf.read(folder / r["file"], dtype="float32")
        a = a[int(r["speech_start_s"] * RATE) : int((r["speech_end_s"] + 0.12) * RATE)]
        parts.append(a)
        total += len(a)
        if total > seconds * RATE:
            break
    return np.concatenate(parts)[: int(seconds * RATE)]


def run(condition: str, audio: np.ndarray | None, seconds: float) -> dict[str, float]:
    q: mp.Queue = mp.get_context("spawn").Queue()  # type: ignore[type-arg]
    p = mp.get_context("spawn").Process(target=world, args=(seconds, q))
    listener = None
    if audio is not None:
        vocab = load_vocabulary()
        name, _, threads = condition.partition("/")
        opts = {"whisper": WhisperConfig(threads=int(threads))} if name == "whisper" else {}
        listener = build_listener(vocab, recognizer=name, **opts)  # type: ignore[arg-type]
    p.start()
    time.sleep(1.0)  # the world process's start-up
    c0, t0 = time.process_time(), time.perf_counter()
    if listener is not None and audio is not None:
        for i, start in enumerate(range(0, len(audio), CHUNK)):
            due = t0 + (i + 1) * CHUNK / RATE
            listener.process(AudioChunk(audio[start : start + CHUNK], start, time.monotonic_ns()))
            now = time.perf_counter()
            if due > now:
                time.sleep(due - now)
    else:
        time.sleep(seconds - 1.0)
    cores = (time.process_time() - c0) / (time.perf_counter() - t0)
    intervals = q.get()
    p.join()
    late = float(np.mean(intervals > 1e3 / FPS + 10))
    decodes = getattr(listener.recognizer, "decodes", []) if listener is not None else []
    walls, cpus = [d.encode_ms for d in decodes], [d.cpu_ms for d in decodes]
    return {"decode_wall_p50": float(np.median(walls)) if walls else float("nan"),
            "decode_cpu_p50": float(np.median(cpus)) if cpus else float("nan"), "decodes": len(walls),
            "p50": float(np.percentile(intervals, 50)), "p99": float(np.percentile(intervals, 99)),
            "max": float(intervals.max()), "late_share": late, "listen_cores": cores if listener else 0.0,
            "frames": len(intervals) + 1}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=Path, required=True, help="a wide split folder (manifest.jsonl inside)")
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    talk = speech(args.clips, args.seconds)
    quiet = np.zeros(int(args.seconds * RATE), np.float32)
    conditions = [("no listener", None), ("whisper/1 silence", quiet), ("whisper/1 speech", talk),
                  ("whisper/2 speech", talk), ("pocketsphinx/0 speech", talk)]
    print("| condition | frame interval p50 / p99 / max (ms) | frames > 50 ms | listen CPU cores "
          "| decodes, wall / CPU p50 (ms) |")
    print("|---|---|---|---|---|")
    for name, audio in conditions:
        key = name.split(" ")[0] if audio is not None else name
        r = run(key, audio, args.seconds)
        print(f"| {name} | {r['p50']:.1f} / {r['p99']:.1f} / {r['max']:.1f} | {100 * r['late_share']:.1f}% "
              f"| {r['listen_cores']:.3f} | {r['decodes']}, {r['decode_wall_p50']:.1f} / {r['decode_cpu_p50']:.1f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
