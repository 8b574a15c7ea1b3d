"""`synesthesia render SESSION --out FILE.mp4`: re-render a recorded session offline, at final
quality, with its captured audio as the soundtrack. Runs in the calling process (worker
threads draw frames; the encoder runs its own).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("session", type=Path, help="session log written by `synesthesia run --session`")
    parser.add_argument("--out", type=Path, required=True, help="output video (.mp4)")
    parser.add_argument("--size", help="WIDTHxHEIGHT, even sides (default: the session's)")
    parser.add_argument("--fps", type=float, help="frame rate (default: the session's; others ease world time to each frame)")
    quality = parser.add_mutually_exclusive_group()
    quality.add_argument("--crf", type=int, help="H.264 constant rate factor, 0-51 (default: 20)")
    quality.add_argument("--bitrate", type=float, metavar="MBPS", help="target video bitrate in Mbit/s instead of --crf")
    parser.add_argument("--preset", default="superfast", help="x264 preset (default: superfast)")
    parser.add_argument("--from", dest="start", type=float, default=0.0, metavar="SECONDS", help="start here (default: 0)")
    parser.add_argument("--to", dest="end", type=float, metavar="SECONDS", help="stop here (default: the end)")
    parser.add_argument("--audio", choices=("aac", "opus"), default="aac", help="soundtrack codec (default: aac)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                        help="threads drawing frames (default: 2 or the core count, if fewer)")


def parse_size(text: str, command: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"synesthesia {command}: --size must look like 1920x1056, got {text!r}") from None
    if not (32 <= w <= 8192 and 32 <= h <= 8192):
        raise SystemExit(f"synesthesia {command}: --size must be 32..8192 on each side, got {text!r}")
    return w, h


def load(path: Path, command: str):  # type: ignore[no-untyped-def]
    """Read a session, saying where a damaged one stops; refusals are one line naming the field."""
    from synesthesia.errors import SessionError
    from synesthesia.world.session import read_session

    try:
        session = read_session(path)
        session.header.check_replayable()
    except SessionError as e:
        raise SystemExit(f"synesthesia {command}: {path}: {e}") from None
    if session.stopped:
        print(f"synesthesia {command}: {path} is damaged at {session.stopped}; using the {len(session.frames)} "
              f"frames before it ({session.duration_s():.2f} s)", file=sys.stderr)
    if not session.frames:
        raise SystemExit(f"synesthesia {command}: {path}: no frames recorded")
    return session


def main(args: argparse.Namespace) -> int:
    import av

    from synesthesia.errors import SessionError
    from synesthesia.world.render import Progress, render_session

    if args.out.suffix.lower() != ".mp4":
        raise SystemExit(f"synesthesia render: --out must end in .mp4, got {args.out}")
    if args.crf is not None and not 0 <= args.crf <= 51:
        raise SystemExit(f"synesthesia render: --crf must be 0..51, got {args.crf}")
    size = parse_size(args.size, "render") if args.size else None
    session = load(args.session, "render")
    h = session.header
    try:  # before minutes of rendering: FFmpeg would only find out when it writes
        args.out.open("wb").close()
    except OSError as e:
        raise SystemExit(f"synesthesia render: cannot write {args.out}: {e.strerror}") from None
    try:
        result = render_session(
            session, args.out, size=size, fps=args.fps, start_s=args.start, end_s=args.end, crf=args.crf,
            bitrate=None if args.bitrate is None else int(args.bitrate * 1e6), preset=args.preset,
            audio_codec=args.audio, workers=max(1, args.workers), progress=Progress,
        )
    except SessionError as e:
        args.out.unlink(missing_ok=True)
        raise SystemExit(f"synesthesia render: {e}") from None
    except (OSError, av.error.FFmpegError) as e:  # an unwritable --out, a codec this FFmpeg lacks
        raise SystemExit(f"synesthesia render: cannot write {args.out}: {e}") from None
    for note in result.notes:
        print(f"synesthesia render: {note}", file=sys.stderr)
    w, hh = size or (h.width, h.height)
    speed = result.seconds / result.elapsed_s if result.elapsed_s > 0 else float("inf")
    print(f"{args.out}: {result.frames} frames, {w}x{hh} at {args.fps or h.fps:g} fps, {result.seconds:.2f} s of video "
          f"in {result.elapsed_s:.1f} s ({speed:.2f}x real time)", file=sys.stderr)
    if result.checked:
        if result.mismatched:
            print(f"synesthesia render: {len(result.mismatched)} of {result.checked} checked frames differ from the "
                  f"live run (first: frame {result.mismatched[0]}); the renderer changed since it was recorded?",
                  file=sys.stderr)
            return 1
        print(f"checked {result.checked} frames against the live checksums: all match", file=sys.stderr)
    return 0
