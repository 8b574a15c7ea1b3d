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
    parser.add_argument("--codec", choices=("h264", "jpeg"), help="stream codec (default: h264 to pages that decode it, JPEG to others)")
    parser.add_argument("--record", type=Path, metavar="FILE", help="record the stream: FILE.mp4 (H.264) or FILE.avi (MJPEG, implies --codec jpeg)")
    parser.add_argument("--tls-cert", metavar="PEM", help="serve over https with this certificate")
    parser.add_argument("--tls-key", metavar="PEM", help="the certificate's private key")
    parser.add_argument("--tls", choices=("self-signed",), help="self-signed: make a short-lived certificate now (prints its SHA-256)")
    parser.add_argument("--seconds", type=float, default=0.0, help="stop after this long (default: run until Ctrl-C)")


def main(args: argparse.Namespace) -> int:
    import logging

    from synesthesia.errors import StreamConfigError
    from synesthesia.stream.demo import DemoPipeline
    from synesthesia.stream.recorder import RECORD_SUFFIXES
    from synesthesia.stream.tls import self_signed, server_context

    if not args.demo:
        raise SystemExit("synesthesia serve: only --demo is available until the pipeline stages land")
    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise SystemExit(f"synesthesia serve: --size must look like 1280x704, got {args.size!r}") from None
    if args.bitrate <= 0 or args.fps <= 0:
        raise SystemExit("synesthesia serve: --bitrate and --fps must be > 0")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    codec = args.codec or ("jpeg" if args.record is not None and args.record.suffix.lower() == ".avi" else "h264")
    try:
        ssl_context = None
        if args.tls == "self-signed":
            cert = self_signed(args.host)
            print(f"synesthesia: self-signed TLS certificate, SHA-256 {cert.fingerprint}", flush=True)
            print(f"synesthesia: its public key's SHA-256 (SPKI, base64) {cert.spki_sha256}", flush=True)
            ssl_context = server_context(cert.cert, cert.key)
        elif args.tls_cert or args.tls_key:
            if not (args.tls_cert and args.tls_key):
                raise StreamConfigError("--tls-cert and --tls-key go together")
            ssl_context = server_context(args.tls_cert, args.tls_key)
        if args.record is not None and RECORD_SUFFIXES.get(args.record.suffix.lower()) != codec:
            raise StreamConfigError(f"--record: {args.record.name} cannot hold the {codec} stream (.mp4: h264, .avi: jpeg)")
        pipeline = DemoPipeline(
            host=args.host, port=args.port, token=args.token, width=w, height=h, fps=args.fps,
            mode=args.mode, target_bps=args.bitrate * 1e6, record=args.record, codec=codec, ssl_context=ssl_context,
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
