"""`synesthesia snapshot "a storm over the mountains at night" --out storm.png`: preview a
scene. Runs the text through the NLP and the procedural world, lets the transition
settle and writes the frame (PNG, or JPEG for .jpg/.jpeg). Runs in the calling process.

The keywords come from ``synesthesia.world.words``: the same dictionary (``synesthesia.intent``)
that turns speech and typed prompts into intents.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# World time of the snapshot: just after a lightning strike can begin, so "storm" and
# "lightning" previews show their bolt (strikes start on multiples of 1.6 s).
SNAPSHOT_TIME = 12.85


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", nargs="?", help="what to see, e.g. \"a storm over the mountains at night\"")
    parser.add_argument("--out", type=Path, required=True, help="output file (.png, .jpg or .jpeg)")
    parser.add_argument("--size", help="WIDTHxHEIGHT (default: 1280x704, or the session's)")
    parser.add_argument("--seed", type=int, default=0, help="world seed (default: 0)")
    parser.add_argument("--time", type=float, default=SNAPSHOT_TIME, help="world time in seconds")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality (default: 90)")
    parser.add_argument("--session", type=Path, help="a recorded session: show its state at --at instead of TEXT")
    parser.add_argument("--at", type=float, metavar="SECONDS", help="the moment of --session to show (seconds)")


def _size(text: str) -> tuple[int, int]:
    from synesthesia.cli.render import parse_size

    return parse_size(text, "snapshot")


def main(args: argparse.Namespace) -> int:
    from synesthesia import kernels
    from synesthesia.world import Intent, ProceduralBackend
    from synesthesia.world.png import write_png
    from synesthesia.world.words import keywords_from_text

    suffix = args.out.suffix.lower()
    if suffix not in (".png", ".jpg", ".jpeg"):
        raise SystemExit(f"synesthesia snapshot: --out must end in .png, .jpg or .jpeg, got {args.out}")
    if args.session is not None or args.at is not None:
        return _from_session(args, suffix)
    if not args.text:
        raise SystemExit("synesthesia snapshot: say what to see (TEXT), or give --session FILE --at SECONDS")
    width, height = _size(args.size or "1280x704")
    words = keywords_from_text(args.text)
    world = ProceduralBackend(width, height, seed=args.seed)
    if words:
        world.apply(Intent(keywords=words, prompt=args.text, trace_id="snapshot"))
    world.settle()
    world.set_world_time(args.time)
    frame = world.replay_frame()
    if suffix == ".png":
        write_png(args.out, frame)
    else:
        args.out.write_bytes(kernels.encode_jpeg(frame, quality=args.quality))
    found = ", ".join(words) if words else "none (the default scene)"
    print(f"{args.out}: {width}x{height}, seed {args.seed}, words: {found}", file=sys.stderr)
    return 0


def _from_session(args: argparse.Namespace, suffix: str) -> int:
    from synesthesia import kernels
    from synesthesia.cli.render import load
    from synesthesia.errors import SessionError
    from synesthesia.world.png import write_png
    from synesthesia.world.render import render_moment

    if args.session is None or args.at is None:
        raise SystemExit("synesthesia snapshot: --session and --at go together")
    if args.text:
        raise SystemExit("synesthesia snapshot: give TEXT or --session, not both")
    session = load(args.session, "snapshot")
    size = _size(args.size) if args.size else None
    try:
        frame = render_moment(session, args.at, size)
    except SessionError as e:
        raise SystemExit(f"synesthesia snapshot: {e}") from None
    if suffix == ".png":
        write_png(args.out, frame)
    else:
        args.out.write_bytes(kernels.encode_jpeg(frame, quality=args.quality))
    print(f"{args.out}: {frame.shape[1]}x{frame.shape[0]}, {args.session} at {args.at:g} s", file=sys.stderr)
    return 0
