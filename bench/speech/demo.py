"""Synthesizes the bundled spoken demo, python/synesthesia/data/demo.flac (run by hand, not by the
tests; needs espeak-ng and sox). Nine commands, one about every 5.3 s, in a voice of the tune
split (bench/speech/synthesize.py): clearer than the Klatt voice the first demo was made with,
which Whisper tiny.en heard as "make it night" for "make it day" and pocketsphinx as "ticket
target" for "set it on fire". tests/test_demo.py checks every sentence yields its intent.

    python bench/speech/demo.py --out python/synesthesia/data/demo.flac
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).parent))
from synthesize import RATE, speak_wide  # noqa: E402

COMMANDS = ["take me to the ocean", "a storm over the ocean", "fill the sky with stars", "set it on fire",
            "let's go to the city", "rainy forest", "turn it purple", "make it day", "keep it calm"]
VOICE = "espeak:en-us+f2:60"
SLOT_S = 5.3


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--voice", default=VOICE)
    args = ap.parse_args()
    parts = []
    with tempfile.TemporaryDirectory() as td:
        for text in COMMANDS:
            speech = speak_wide(text, args.voice, 160, Path(td))
            speech = speech * (0.45 / (np.abs(speech).max() + 1e-9))
            lead = np.zeros(int(0.5 * RATE), np.float32)
            tail = np.zeros(max(0, int(SLOT_S * RATE) - len(lead) - len(speech)), np.float32)
            parts += [lead, speech.astype(np.float32), tail]
    sf.write(args.out, np.concatenate(parts), RATE, format="FLAC", subtype="PCM_16")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
