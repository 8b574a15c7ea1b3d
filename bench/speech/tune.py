"""Recognizer settings sweep on the *tune* split (run by hand; the record of how the defaults were
chosen is bench/results/listen.md). Decodes each clip's VAD-bounded utterance offline (no
latency), so many settings can be compared quickly; the evaluator then checks the chosen ones on
held-out speech with the real streaming path.

    python bench/speech/tune.py bench/out/speech/tune/manifest.jsonl word_garbage=0.5 phone_garbage=0.05
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import fields
from pathlib import Path

from synesthesia.hearing.recognizers import PocketSphinxConfig, PocketSphinxRecognizer
from synesthesia.hearing.sources import RATE, read_audio
from synesthesia.intent import load_vocabulary


def main() -> int:
    manifest = Path(sys.argv[1])
    kinds = {f.name: f.type for f in fields(PocketSphinxConfig)}
    overrides = {}
    for arg in sys.argv[2:]:
        k, _, v = arg.partition("=")
        if k not in kinds:
            print(f"unknown setting {k}; known: {sorted(kinds)}", file=sys.stderr)
            return 2
        overrides[k] = float(v)
    vocab = load_vocabulary()
    rec = PocketSphinxRecognizer(vocab.forms, PocketSphinxConfig(**overrides))
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    stats = {"clean": [0, 0, 0], "noisy": [0, 0, 0]}  # found, expected, clips with extras
    false_int = [0, 0]
    t0 = time.perf_counter()
    misses: list[str] = []
    for r in rows:
        audio = read_audio(manifest.parent / r["file"])
        if r.get("speech_start_s") is not None:
            a = max(0, int((r["speech_start_s"] - 0.25) * RATE))
            b = int((r["speech_end_s"] + 0.3) * RATE)
            audio = audio[a:b]
        rec.start()
        for i in range(0, len(audio), 512):
            rec.feed(audio[i : i + 512])
        hyp = rec.finish()
        got = {k.word for k in vocab.match(hyp.text)}
        want = set(r["expect"])
        if not want:
            false_int[0] += bool(got)
            false_int[1] += 1
            if got:
                misses.append(f"FALSE {sorted(got)} <- {r['text']!r} {r['voice']} snr={r['snr_db']}")
            continue
        s = stats["clean" if r["snr_db"] is None else "noisy"]
        s[0] += len(got & want)
        s[1] += len(want)
        s[2] += bool(got - want)
        if want - got:
            misses.append(f"MISS {sorted(want - got)} got {sorted(got)} hyp={hyp.text!r} <- {r['text']!r} snr={r['snr_db']}")
    dt = time.perf_counter() - t0
    for k, (f, n, x) in stats.items():
        print(f"{k}: recall {f / max(n, 1):.3f} ({f}/{n}), clips with extra keyword {x}")
    print(f"false intents {false_int[0]}/{false_int[1]} = {false_int[0] / max(false_int[1], 1):.3f}")
    print(f"settings {overrides} wall {dt:.1f}s")
    if "-v" in sys.argv or True:
        print("\n".join(misses[:40]), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
