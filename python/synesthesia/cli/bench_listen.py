"""`synesthesia bench listen`: hearing accuracy and latency over labelled audio (CLI process).

Runs the real VAD, recognizer and NLP on every clip of a JSON Lines manifest
(`{"file": ..., "expect": [...]}`, files relative to the manifest) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", type=Path, required=True, help="JSON Lines manifest; files are relative to it")
    parser.add_argument("--json", type=Path, help="also write the figures and per-clip results here")
    parser.add_argument("--vocabulary", type=Path, help="keyword dictionary TOML (default: the packaged one)")
    parser.add_argument("--vosk-model", type=Path, help="use Vosk with this model directory instead of pocketsphinx")
    parser.add_argument("--min-posterior", type=float, default=None,
                        help="pocketsphinx: drop final command words whose lattice posterior is below this (0..1)")
    parser.add_argument("--no-partials", action="store_true",
                        help="no partial transcripts, so no early intents: only final ones")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="settings",
                        help="override one PocketSphinxConfig, ListenerConfig or EndpointerConfig field (repeatable), "
                             "e.g. --set lw=8 --set stable_partials=3; for sweeps on the tune split")
    parser.add_argument("--limit", type=int, help="only the first N clips")
    parser.add_argument("--quiet", action="store_true", help="no progress line")


def _value(text: str, kind: object) -> object:
    kind = str(kind)
    if text == "None" and "None" in kind:
        return None
    if kind.startswith("bool"):
        if text not in ("true", "false"):
            raise ValueError(f"expected true or false, got {text!r}")
        return text == "true"
    if kind.startswith("int"):
        return int(text)
    if kind.startswith("float"):
        return float(text)
    return text


def parse_settings(items: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``KEY=VALUE`` strings -> (PocketSphinxConfig overrides, ListenerConfig overrides, with an
    EndpointerConfig when one of its fields is set); a key none has, or a value of the wrong kind,
    is an error naming it."""
    from dataclasses import fields

    from synesthesia.errors import SynesthesiaError
    from synesthesia.hearing.listener import ListenerConfig
    from synesthesia.hearing.recognizers import PocketSphinxConfig
    from synesthesia.hearing.vad import EndpointerConfig

    kinds: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({f.name: f.type for f in fields(PocketSphinxConfig)}, {}),
        ({f.name: f.type for f in fields(ListenerConfig) if f.name != "endpointer"}, {}),
        ({f.name: f.type for f in fields(EndpointerConfig)}, {})]
    for item in items:
        key, sep, text = item.partition("=")
        for known, out in kinds:
            if sep and key in known:
                try:
                    out[key] = _value(text, known[key])
                except ValueError as e:
                    raise SynesthesiaError(f"--set {item}: {e}") from None
                break
        else:
            names = [n for known, _ in kinds for n in sorted(known)]
            raise SynesthesiaError(f"--set {item!r}: expected KEY=VALUE with KEY one of {', '.join(names)}")
    listen = dict(kinds[1][1])
    if kinds[2][1]:
        listen["endpointer"] = EndpointerConfig(**kinds[2][1])
    return kinds[0][1], listen


def main(args: argparse.Namespace) -> int:
    from synesthesia.errors import SynesthesiaError
    from synesthesia.hearing import build_listener
    from synesthesia.hearing.listener import ListenerConfig
    from synesthesia.hearing.recognizers import PocketSphinxConfig
    from synesthesia.hearing.evaluate import evaluate, format_table, read_manifest, summarize
    from synesthesia.intent import load_vocabulary

    try:
        vocab = load_vocabulary(args.vocabulary)
        clips = read_manifest(args.manifest, vocab)[: args.limit]
        ps_over, listen_over = parse_settings(args.settings)
        config = ListenerConfig(**{"partials": not args.no_partials, **listen_over})
        listener = build_listener(vocab, config=config, vosk_model=args.vosk_model, min_posterior=args.min_posterior,
                                  pocketsphinx=PocketSphinxConfig(**ps_over))

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
