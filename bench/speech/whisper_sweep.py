"""Whisper decoding settings, side by side on the *tune* split (run by hand; the record of how
`WhisperConfig`'s defaults were chosen is bench/results/listen.md). Every clip is cut to its
speech +-0.3 s (noise-only clips are decoded whole) and decoded once by each setting in turn, clip
by clip, so that the settings share the machine's load alike. Per setting: command clips with
every keyword, non-command and noise clips with an intent, tokens per decode, decodes that ran
out of budget (a loop the budget cut), the prompt check's second decodes, wall and CPU ms.

    .venv/bin/python bench/speech/whisper_sweep.py bench/out/speech/wide-tune/manifest.jsonl \\
        base: t1:threads=1 rp:threads=1,repetition_penalty=1.3 [--every 2] [--json out.json]

A setting is ``name:key=value,key=value`` over `WhisperConfig`'s fields.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

from synesthesia.cli.bench_listen import parse_settings
from synesthesia.hearing.sources import RATE, read_audio
from synesthesia.hearing.whisper import WhisperConfig, WhisperRecognizer
from synesthesia.intent import load_vocabulary


def parse(spec: str) -> tuple[str, WhisperConfig]:
    name, _, rest = spec.partition(":")
    ps, listen, whisper = parse_settings([item for item in rest.split(",") if item])
    if ps or listen:
        raise SystemExit(f"{spec}: only WhisperConfig fields can be swept here, not {sorted({**ps, **listen})}")
    return name, WhisperConfig(**whisper)


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q)) if xs else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("manifest", type=Path)
    ap.add_argument("settings", nargs="+")
    ap.add_argument("--every", type=int, default=1, help="every Nth clip")
    ap.add_argument("--margin", type=float, default=0.3, help="audio kept around the speech (s)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    vocab = load_vocabulary()
    recs = {name: WhisperRecognizer(vocab.forms, cfg) for name, cfg in map(parse, args.settings)}
    rows = [json.loads(line) for line in args.manifest.read_text().splitlines() if line.strip()][:: args.every]
    res: dict[str, list[dict[str, Any]]] = {name: [] for name in recs}
    for i, r in enumerate(rows):
        audio = read_audio(args.manifest.parent / r["file"])
        if r.get("speech_start_s") is not None:
            a = max(0, int((r["speech_start_s"] - args.margin) * RATE))
            audio = audio[a : int((r["speech_end_s"] + args.margin) * RATE)]
        for name, rec in recs.items():
            d = rec.transcribe(audio)
            found = sorted({k.word for k in vocab.match(" ".join(d.words))})
            res[name].append({"file": r["file"], "expect": r["expect"], "condition": r["condition"], "voice": r["voice"],
                              "text": r["text"], "heard": d.text, "words": " ".join(d.words), "found": found,
                              "tokens": d.tokens, "budget": d.budget, "checked": d.checked, "wall_ms": d.encode_ms,
                              "cpu_ms": d.cpu_ms, "audio_s": d.audio_s, "avg_logprob": d.avg_logprob})
        if (i + 1) % 20 == 0:
            print(f"{i + 1}/{len(rows)}", file=sys.stderr)

    print(f"{len(rows)} clips of {args.manifest}\n")
    print("| setting | commands: every keyword | non-commands with an intent | noise with an intent "
          "| tokens mean / max | out of budget | checked | wall p50 / p90 ms | CPU p50 / p90 ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, out in res.items():
        cmd = [o for o in out if o["expect"]]
        non = [o for o in out if not o["expect"] and o["condition"] != "noise only"]
        noise = [o for o in out if o["condition"] == "noise only"]
        ok = sum(set(o["expect"]) <= set(o["found"]) for o in cmd)
        toks = [float(o["tokens"]) for o in out]
        over = sum(o["tokens"] >= o["budget"] for o in out)
        wall = [float(o["wall_ms"]) for o in out]
        cpu = [float(o["cpu_ms"]) for o in out]
        print(f"| {name} | {ok}/{len(cmd)} ({100 * ok / max(len(cmd), 1):.1f}%) | {sum(bool(o['found']) for o in non)}/{len(non)} "
              f"| {sum(bool(o['found']) for o in noise)}/{len(noise)} | {statistics.mean(toks):.1f} / {max(toks):.0f} "
              f"| {over} | {sum(bool(o['checked']) for o in out)} | {pct(wall, 50):.1f} / {pct(wall, 90):.1f} "
              f"| {pct(cpu, 50):.1f} / {pct(cpu, 90):.1f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"manifest": str(args.manifest), "settings": args.settings, "results": res}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
