"""`synesthesia run`: launch, watch and heal the whole pipeline (the README's run command).

Settings come from defaults < `--config FILE` < `SYNESTHESIA_*` environment < these flags.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Launch every stage as its own process, keep them healthy and stop them cleanly. "
        "With no arguments: the bundled spoken demo drives the procedural world."
    )
    parser.add_argument("--config", metavar="FILE", help="TOML settings file (sections as in the README)")
    parser.add_argument("--source", help="audio source: mic, demo, browser or a WAV/FLAC file (default: demo)")
    parser.add_argument("--device", help="microphone name or index (with --source mic)")
    parser.add_argument("--backend", choices=("procedural", "odyssey", "onnx", "emulate"), help="world backend (default: procedural)")
    parser.add_argument("--recognizer", choices=("whisper", "pocketsphinx", "vosk"),
                        help="speech recognizer (default: whisper; pocketsphinx uses the least CPU; vosk needs listen.vosk_model)")
    parser.add_argument("--vocabulary", metavar="FILE", help="keyword dictionary (TOML); default: the bundled one")
    parser.add_argument("--mode", choices=("nano", "preview", "full"), help="stream mode (default: nano, 4:1 downscale)")
    parser.add_argument("--bitrate", type=float, metavar="MBPS", help="target stream bitrate in Mbit/s (default: 2)")
    parser.add_argument("--host", help="viewer address to bind (default: 127.0.0.1; others need the printed token)")
    parser.add_argument("--port", type=int, help="viewer port (default: 8765)")
    parser.add_argument("--record", metavar="FILE", help="also record the encoded stream to FILE (MJPEG)")
    parser.add_argument("--headless", action="store_true", default=None, help="no viewer and no live terminal view")
    parser.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this long (default: run until stopped)")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"), help="default: info")


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The flags that were given, as a nested settings mapping (absent flags change nothing)."""
    out: dict[str, Any] = {}

    def put(path: str, value: Any) -> None:
        if value is None:
            return
        node = out
        *parents, leaf = path.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value

    put("capture.source", args.source)
    put("capture.device", args.device)
    put("world.backend", args.backend)
    put("listen.recognizer", args.recognizer)
    put("nlp.vocabulary", args.vocabulary)
    put("encode.mode", args.mode)
    put("encode.bitrate_bps", None if args.bitrate is None else int(args.bitrate * 1_000_000))
    put("serve.host", args.host)
    put("serve.port", args.port)
    put("record", args.record)
    put("headless", args.headless)
    put("duration_s", args.duration)
    put("log_level", args.log_level)
    return out


def main(args: argparse.Namespace) -> int:
    from synesthesia.settings import SettingsError, load_settings
    from synesthesia.supervisor.arbiter import Arbiter

    try:
        settings = load_settings(args.config, overrides=overrides(args))
    except SettingsError as exc:
        print(f"synesthesia run: {exc}", file=sys.stderr)
        return 2
    return Arbiter(settings).run()
