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
    parser.add_argument("--recognizer", action="append", choices=("whisper", "pocketsphinx", "vosk"), dest="recognizers",
                        help="recognizer to measure (repeatable: side by side in one table, same clips, same run; "
                             "default: whisper, or vosk with --vosk-model)")
    parser.add_argument("--vosk-model", type=Path, help="Vosk's model directory (with --recognizer vosk)")
    parser.add_argument("--min-posterior", type=float, default=None,
                        help="pocketsphinx: drop final command words whose lattice posterior is below this (0..1)")
    parser.add_argument("--no-partials", action="store_true",
                        help="no partial transcripts, so no early intents: only final ones")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="settings",
                        help="override one PocketSphinxConfig, WhisperConfig, ListenerConfig or EndpointerConfig field "
                             "(repeatable; a field both recognizers have goes to both), "
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


def parse_settings(items: list[str]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """``KEY=VALUE`` strings -> (PocketSphinxConfig overrides, ListenerConfig overrides, with an
    EndpointerConfig when one of its fields is set, WhisperConfig overrides); a key none has, or a
    value of the wrong kind, is an error naming it."""
    from dataclasses import fields

    from synesthesia.errors import SynesthesiaError
    from synesthesia.hearing.listener import ListenerConfig
    from synesthesia.hearing.recognizers import PocketSphinxConfig
    from synesthesia.hearing.vad import EndpointerConfig
    from synesthesia.hearing.whisper import WhisperConfig

    kinds: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({f.name: f.type for f in fields(PocketSphinxConfig)}, {}),
        ({f.name: f.type for f in fields(ListenerConfig) if f.name != "endpointer"}, {}),
        ({f.name: f.type for f in fields(EndpointerConfig)}, {}),
        ({f.name: f.type for f in fields(WhisperConfig)}, {})]
    for item in items:
        key, sep, text = item.partition("=")
        hit = False
        for known, out in kinds:
            if sep and key in known:
                try:
                    out[key] = _value(text, known[key])
                except ValueError as e:
                    raise SynesthesiaError(f"--set {item}: {e}") from None
                hit = True
        if not hit:
            names = [n for known, _ in kinds for n in sorted(known)]
            raise SynesthesiaError(f"--set {item!r}: expected KEY=VALUE with KEY one of {', '.join(names)}")
    listen = dict(kinds[1][1])
    if kinds[2][1]:
        listen["endpointer"] = EndpointerConfig(**kinds[2][1])
    return kinds[0][1], listen, kinds[3][1]


def main(args: argparse.Namespace) -> int:
    from synesthesia.errors import SynesthesiaError
    from dataclasses import replace

    from synesthesia.hearing import build_listener, listener_defaults
    from synesthesia.hearing.evaluate import evaluate, format_side_by_side, format_table, read_manifest, summarize
    from synesthesia.hearing.recognizers import PocketSphinxConfig
    from synesthesia.hearing.whisper import WhisperConfig
    from synesthesia.intent import load_vocabulary

    names = list(dict.fromkeys(args.recognizers or ["vosk" if args.vosk_model else "whisper"]))
    summaries: dict[str, dict[str, Any]] = {}
    per_clip: dict[str, list[Any]] = {}
    try:
        vocab = load_vocabulary(args.vocabulary)
        clips = read_manifest(args.manifest, vocab)[: args.limit]
        ps_over, listen_over, whisper_over = parse_settings(args.settings)
        for name in names:
            config = replace(listener_defaults(name), **{"partials": not args.no_partials, **listen_over})
            listener = build_listener(vocab, config=config, recognizer=name,
                                      vosk_model=args.vosk_model if name == "vosk" else None,
                                      min_posterior=args.min_posterior,
                                      pocketsphinx=PocketSphinxConfig(**ps_over), whisper=WhisperConfig(**whisper_over))

            def progress(i: int, n: int) -> None:
                if not args.quiet:
                    print(f"\r{name}: {i}/{n} clips", end="" if i < n else "\n", file=sys.stderr, flush=True)

            if hasattr(listener.recognizer, "keep_decodes"):
                listener.recognizer.keep_decodes = sys.maxsize  # every decode of the clips, for its figures
            results, timing = evaluate(clips, listener, vocab, progress)
            summaries[name] = summarize(results, timing)
            decodes = getattr(listener.recognizer, "decodes", None)
            if decodes is not None:
                summaries[name]["decode_ms"] = decode_figures(decodes)
            per_clip[name] = results
    except SynesthesiaError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(format_table(summaries[names[0]]) if len(names) == 1 else format_side_by_side(summaries))
    if args.json:
        def figures(name: str) -> dict[str, Any]:
            return {"recognizer": name, **summaries[name],
                    "clips": [{"file": r.file, "expect": list(r.expect), "keywords": list(r.keywords),
                               "latency_ms": r.latency_ms, "keyword_latency_ms": r.keyword_latency_ms,
                               "condition": r.condition,
                               "published": list(r.early_keywords), "transcript": r.transcript}
                              for r in per_clip[name]]}

        # one recognizer: its figures at the top level (the format before side-by-side runs)
        out: dict[str, Any] = figures(names[0]) if len(names) == 1 else {"recognizers": {n: figures(n) for n in names}}
        out["manifest"] = str(args.manifest)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    return 0


def decode_figures(decodes: list[Any]) -> dict[str, Any]:
    """Whisper's per-decode wall time, for decodes of at most 4 s of audio and over all of them."""
    import numpy as np

    short = [d.encode_ms for d in decodes if d.audio_s <= 4.0]
    short_cpu = [d.cpu_ms for d in decodes if d.audio_s <= 4.0]
    every = [d.encode_ms for d in decodes]
    tokens = [d.tokens for d in decodes]

    def pct(v: list[float], q: float) -> float | None:
        return round(float(np.percentile(v, q)), 1) if v else None

    return {"le4s_p50": pct(short, 50), "le4s_p99": pct(short, 99), "le4s_n": len(short),
            "le4s_cpu_p50": pct(short_cpu, 50), "le4s_cpu_p99": pct(short_cpu, 99),
            "all_p50": pct(every, 50), "all_p99": pct(every, 99), "all_n": len(every),
            # a loop shows as a decode that ran to its token budget
            "tokens_mean": round(float(np.mean(tokens)), 1) if tokens else None, "tokens_max": max(tokens, default=None),
            "out_of_budget": sum(d.tokens >= d.budget for d in decodes),
            "checked": sum(d.checked for d in decodes)}
