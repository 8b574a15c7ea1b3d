"""Isolated per-call timings for the hearing budgets (run by hand): silero VAD per 512-sample
window on one onnxruntime thread, and the keyword NLP per transcript, each measured alone so the
figures are not mixed with the recognizer's time (the evaluator reports them in context).

    python bench/speech/timing.py
"""

from __future__ import annotations

import time

import numpy as np

from synesthesia.hearing.vad import WINDOW, SileroVAD
from synesthesia.intent import IntentTracker, load_vocabulary

TRANSCRIPTS = [
    "make it snow", "a golden sunset in the desert", "show me a stormy sea at night",
    "I think we should order lunch soon", "northern lights over the city", "go faster",
    "she is learning to play the piano", "purple lightning",
]


def pct(xs: list[float]) -> str:
    a = np.array(xs)
    return f"p50 {np.percentile(a, 50):.4f} ms, p99 {np.percentile(a, 99):.4f} ms (n={len(a)})"


def main() -> None:
    vad = SileroVAD()
    rng = np.random.default_rng(0)
    audio = (0.05 * rng.standard_normal(WINDOW * 2100)).astype(np.float32)
    times = []
    for i in range(2100):
        t0 = time.perf_counter_ns()
        vad(audio[i * WINDOW : (i + 1) * WINDOW])
        times.append((time.perf_counter_ns() - t0) / 1e6)
    print(f"VAD per 512-sample window: {pct(times[100:])}")

    vocab = load_vocabulary()
    times = []
    for i in range(20000):
        text = TRANSCRIPTS[i % len(TRANSCRIPTS)]
        tracker = IntentTracker(vocab)
        t0 = time.perf_counter_ns()
        tracker.final("t", text)
        times.append((time.perf_counter_ns() - t0) / 1e6)
    print(f"NLP per transcript (final intent incl. prompt): {pct(times)}")
    times = []
    for i in range(20000):
        text = TRANSCRIPTS[i % len(TRANSCRIPTS)]
        t0 = time.perf_counter_ns()
        vocab.match(text)
        times.append((time.perf_counter_ns() - t0) / 1e6)
    print(f"NLP keyword match only: {pct(times)}")


if __name__ == "__main__":
    main()
