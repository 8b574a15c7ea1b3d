"""`synesthesia bench listen`: hearing accuracy and latency over labelled audio (CLI process).

Runs the real VAD, recognizer and NLP on every clip of a JSON Lines manifest
(`{"file": ..., "expect": [...]}`, files relative to the manifest) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", type=Path, required=True, help="JSON Lines manifest; files are relative to it")
    parser.add_argument("--json", type=Path, help="also write the figures and per-clip results here")
    parser.add_argument("--vocabulary", type=Path, help="keyword dictionary TOML (default: the packaged one)")
    parser.add_argument("--vosk-model", type=Path, help="use Vosk with this model directory instead of pocketsphinx")
    parser.add_argument("--min-posterior", type=float, default=None,
                        help="pocketsphinx: drop final command words whose lattice posterior is below this (0..1)")
    parser.add_argument("--no-partials", action="store_true",
                        help="no partial transcripts, so no early intents: only final ones")
    parser.add_argument("--limit", type=int, help="only the first N clips")
    parser.add_argument("--quiet", action="store_true", help="no progress line")


def main(args: argparse.Namespace) -> int:
    from synesthesia.errors import SynesthesiaError
    from synesthesia.hearing import build_listener
    from synesthesia.hearing.listener import ListenerConfig
    from synesthesia.hearing.evaluate import evaluate, format_table, read_manifest, summarize
    from synesthesia.intent import load_vocabulary

    try:
        vocab = load_vocabulary(args.vocabulary)
        clips = read_manifest(args.manifest, vocab)[: args.limit]
        config = ListenerConfig(partials=not args.no_partials)
        listener = build_listener(vocab, config=config, vosk_model=args.vosk_model, min_posterior=args.min_posterior)

        def progress(i: int, n: int) -> None:
            if not args.quiet:
                print(f"\r{i}/{n} clips", end="" if i < n else "\n", file=sys.stderr, flush=True)

        results, timing = evaluate(clips, listener, vocab, progress)
    except SynesthesiaError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    summary = summarize(results, timing)
    print(format_table(summary))
    if args.json:
        out = {**summary, "manifest": str(args.manifest),
               "clips": [{"file": r.file, "expect": list(r.expect), "keywords": list(r.keywords),
                          "latency_ms": r.latency_ms, "condition": r.condition,
                          "published": list(r.early_keywords), "transcript": r.transcript}
                         for r in results]}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    return 0
