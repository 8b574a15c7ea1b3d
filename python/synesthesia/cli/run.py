"""`synesthesia run`: launch, watch and heal the whole pipeline (the README's run command).

Settings come from defaults < `--config FILE` < `SYNESTHESIA_*` environment < these flags.
"""

from __future__ import annotations

import argparse
import os
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
    parser.add_argument("--codec", choices=("h264", "jpeg"), help="stream codec (default: h264 to pages that decode it, JPEG to others)")
    parser.add_argument("--record", metavar="FILE", help="also record the stream: FILE.mp4 (H.264) or FILE.avi (MJPEG, implies --codec jpeg)")
    parser.add_argument("--tls-cert", metavar="PEM", help="serve the viewer over https with this certificate")
    parser.add_argument("--tls-key", metavar="PEM", help="the certificate's private key")
    parser.add_argument("--tls", choices=("self-signed",), help="self-signed: make a short-lived certificate at start (prints its SHA-256)")
    parser.add_argument("--headless", action="store_true", default=None, help="no viewer and no live terminal view")
    parser.add_argument("--session", metavar="FILE", help="log what steers the picture to FILE (JSON Lines), for render and resume")
    parser.add_argument("--resume", metavar="FILE", help="start from a session's last state and append to it")
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
    put("encode.codec", args.codec or ("jpeg" if (args.record or "").lower().endswith(".avi") else None))
    put("serve.tls_cert", args.tls or args.tls_cert)
    put("serve.tls_key", args.tls_key)
    put("encode.bitrate_bps", None if args.bitrate is None else int(args.bitrate * 1_000_000))
    put("serve.host", args.host)
    put("serve.port", args.port)
    put("record", args.record)
    put("session", args.session)
    put("headless", args.headless)
    put("duration_s", args.duration)
    put("log_level", args.log_level)
    return out


def main(args: argparse.Namespace) -> int:
    from synesthesia.errors import SynesthesiaError
    from synesthesia.settings import SettingsError, load_settings
    from synesthesia.supervisor.arbiter import Arbiter

    try:
        flags = overrides(args)
        if args.resume:
            flags = _resume(args, flags)
        settings = load_settings(args.config, overrides=flags)
        if settings.session:
            settings.session = os.path.abspath(settings.session)  # the world stage may run elsewhere
            if not args.resume and _has_records(settings.session):
                raise SettingsError("session", f"{settings.session} already holds a session: continue it with "
                                    "--resume, or choose another file")
    except SettingsError as exc:
        print(f"synesthesia run: {exc}", file=sys.stderr)
        return 2
    try:
        return Arbiter(settings).run()
    except SynesthesiaError as exc:  # refused before any stage started (preflight, runtime dir)
        print(f"synesthesia run: {exc}", file=sys.stderr)
        return 1


def _has_records(path: str) -> bool:
    from pathlib import Path

    p = Path(path)
    return p.exists() and p.stat().st_size > 0


def _resume(args: argparse.Namespace, flags: dict[str, Any]) -> dict[str, Any]:
    """The session's picture-shaping settings, so the resumed run draws what it drew."""
    from synesthesia.errors import SessionError
    from synesthesia.settings import SettingsError
    from synesthesia.world.session import read_session

    if args.session and args.session != args.resume:
        raise SettingsError("session", "--resume appends to its own file: drop --session")
    try:
        session = read_session(args.resume)
        session.header.check_replayable()
    except SessionError as e:
        raise SettingsError("resume", f"{args.resume}: {e}") from None
    if session.stopped and not session.cut_short:
        raise SettingsError("resume", f"{args.resume} is damaged ({session.stopped}); render it, or start a new session")
    h = session.header
    world = flags.setdefault("world", {})
    if world.get("backend", "procedural") != "procedural":
        raise SettingsError("world.backend", "a resumed session keeps its own backend (procedural)")
    world.update(backend=h.backend, seed=h.seed, width=h.width, height=h.height, fps=h.fps, time_constant_s=h.tau)
    flags["session"] = args.resume
    return flags
