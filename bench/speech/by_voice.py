"""Per-voice figures of a `bench listen --json` run (run by hand): command clips with every
keyword and non-command clips that raised any intent (early or final), per recognizer and voice,
as the markdown table in bench/results/listen.md. Voices come from the run's manifest.

    .venv/bin/python bench/speech/by_voice.py bench/results/listen-wide-heldout.json
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path


def main() -> int:
    data = json.loads(Path(sys.argv[1]).read_text("utf-8"))
    manifest = Path(data["manifest"])
    voice = {}
    for line in manifest.read_text("utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            voice[row["file"]] = "noise only (pink, babble, music)" if row["condition"] == "noise only" else row["voice"]
    runs = data["recognizers"] if "recognizers" in data else {data["recognizer"]: data}
    cells: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0, 0, 0]))
    for name, run in runs.items():
        for c in run["clips"]:
            v = voice[Path(c["file"]).name]
            cell = cells[v][name]
            if c["expect"]:
                cell[0] += set(c["expect"]) <= set(c["keywords"])
                cell[1] += 1
            else:
                cell[2] += bool(c["keywords"] or c["published"])
                cell[3] += 1
    names = list(runs)
    print("| voice | " + " | ".join(f"{n} commands" for n in names) + " | "
          + " | ".join(f"{n} non-commands" for n in names) + " |")
    print("|---|" + "---|" * 2 * len(names))
    for v in sorted(cells, key=lambda v: (v.startswith("noise"), v)):
        cmd = [f"{c[0]}/{c[1]} ({100 * c[0] / c[1]:.0f}%)" if c[1] else "" for c in (cells[v][n] for n in names)]
        non = [f"{c[2]}/{c[3]}" for c in (cells[v][n] for n in names)]
        print(f"| {v} | " + " | ".join(cmd) + " | " + " | ".join(non) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
