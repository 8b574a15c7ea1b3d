"""What each NLP tolerance rule (synesthesia.intent.TOLERANCES) gains and costs (run by hand): over
the transcripts a `bench listen --json` run wrote, command clips whose every keyword is found
and non-command clips that raise an intent, with no rule, each rule alone, all but each, and all.

    .venv/bin/python bench/speech/nlp_rules.py bench/results/listen-wide-heldout.json [more.json ...]
"""

from __future__ import annotations

import json
import sys
from itertools import chain
from pathlib import Path
from typing import Any

from synesthesia.intent import TOLERANCES, load_vocabulary


def clips(path: Path) -> list[dict[str, Any]]:
    data = json.loads(path.read_text("utf-8"))
    runs = data["recognizers"].values() if "recognizers" in data else [data]
    return [dict(c, recognizer=r.get("recognizer", "?")) for r in runs for c in r["clips"]]


def score(rules: frozenset[str], rows: list[dict[str, Any]]) -> tuple[int, int, int, int]:
    vocab = load_vocabulary(tolerance=rules)
    hit = cmd = false = neg = 0
    for c in rows:
        found = {k.word for k in vocab.match(c["transcript"])}
        if c["expect"]:
            cmd += 1
            hit += set(c["expect"]) <= found
        else:
            neg += 1
            false += bool(found)
    return hit, cmd, false, neg


def main() -> int:
    rows = list(chain.from_iterable(clips(Path(p)) for p in sys.argv[1:]))
    if not rows:
        print(__doc__)
        return 1
    sets = [("none", frozenset())] + [(f"only {r}", frozenset({r})) for r in sorted(TOLERANCES)] + \
           [(f"all but {r}", TOLERANCES - {r}) for r in sorted(TOLERANCES)] + [("all (default)", TOLERANCES)]
    for rec in sorted({c["recognizer"] for c in rows}):
        sub = [c for c in rows if c["recognizer"] == rec]
        print(f"\n{rec}: {len(sub)} clips\n")
        print("| rules | command clips with every keyword | non-command clips with an intent |")
        print("|---|---|---|")
        for name, rules in sets:
            hit, cmd, false, neg = score(rules, sub)
            print(f"| {name} | {hit}/{cmd} ({100 * hit / max(1, cmd):.1f}%) | {false}/{neg} ({100 * false / max(1, neg):.1f}%) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
