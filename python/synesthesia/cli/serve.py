"""`synesthesia serve --demo`: the viewer server over an in-process demo pipeline.

Until the stages are wired to the rings and the bus, this animates a synthetic scene, encodes it
with the adaptive encoder and serves it with the real server, so the viewer page, prompts, the
browser microphone and recording can be used and tested end to end.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--demo", action="store_true", help="serve the in-process demo pipeline (required for now)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1; any other needs a token)")
    parser.add_argument("--port", type=int, default=8765, help="TCP port (default: 8765, 0 picks a free one)")
    parser.add_argument("--token", help="access token (default: generated when binding beyond loopback)")
    parser.add_argument("--mode", choices=("nano", "preview", "full"), default="nano", help="encoder mode (default: nano)")
    parser.add_argument("--bitrate", type=float, default=2.0, help="target bitrate in Mbps (default: 2)")
    parser.add_argument("--fps", type=float, default=25.0, help="frame rate (default: 25)")
    parser.add_argument("--size", default="1280x704", help="world frame size WIDTHxHEIGHT (default: 1280x704)")
    parser.add_argument("--record", type=Path, metavar="FILE.avi", help="record the encoded stream as an MJPEG AVI")
    parser.add_argument("--seconds", type=float, default=0.0, help="stop after this long (default: run until Ctrl-C)")


def main(args: argparse.Namespace) -> int:
    import logging

    from synesthesia.errors import StreamConfigError
    from synesthesia.stream.demo import DemoPipeline

    if not args.demo:
        raise SystemExit("synesthesia serve: only --demo is available until the pipeline stages land")
    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise SystemExit(f"synesthesia serve: --size must look like 1280x704, got {args.size!r}") from None
    if args.bitrate <= 0 or args.fps <= 0:
        raise SystemExit("synesthesia serve: --bitrate and --fps must be > 0")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        pipeline = DemoPipeline(
            host=args.host, port=args.port, token=args.token, width=w, height=h, fps=args.fps,
            mode=args.mode, target_bps=args.bitrate * 1e6, record=args.record,
        )
    except StreamConfigError as exc:
        raise SystemExit(f"synesthesia serve: {exc}") from None
    with pipeline:
        print(f"synesthesia: viewer at {pipeline.server.url}", flush=True)
        if pipeline.server.token:
            print(f"synesthesia: access token {pipeline.server.token}", flush=True)
        deadline = time.monotonic() + args.seconds if args.seconds > 0 else None
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2)
    if args.record:
        print(f"synesthesia: recorded {pipeline.recorder.frames if pipeline.recorder else 0} frames to {args.record}")
    return 0
