"""`synesthesia kernels-demo`: the Rust kernels on a generated frame sequence.

It renders a moving synthetic scene, encodes every frame both as the viewer's nano stream
(4:1, 4:2:0, turbo tables) and at full size, and reports per-frame encode times, sizes and the bitrate each stream would need at
the output frame rate. `--save DIR` keeps the last frames and an MJPEG of the nano stream.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, default=125, help="frames to render and encode (default: 125, 5 s of video)")
    parser.add_argument("--fps", type=float, default=25.0, help="output frame rate used for bitrates (default: 25)")
    parser.add_argument("--size", default="1280x704", help="frame size WIDTHxHEIGHT (default: 1280x704)")
    parser.add_argument("--quality", type=int, default=75, help="JPEG quality of the full-size stream (default: 75)")
    parser.add_argument("--method", choices=("nearest", "bilinear", "area"), default="nearest", help="nano downscale (default: nearest)")
    parser.add_argument("--save", type=Path, metavar="DIR", help="write nano.mjpeg and the last nano/full JPEGs here")


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"synesthesia kernels-demo: --size must look like 1280x704, got {text!r}") from None
    if w < 16 or h < 16:
        raise SystemExit(f"synesthesia kernels-demo: --size must be at least 16x16, got {text!r}")
    return w, h


def _stats(samples_us: list[float]) -> str:
    import numpy as np

    a = np.asarray(samples_us)
    return f"median {np.median(a):8.1f} us   p99 {np.percentile(a, 99):8.1f} us"


def main(args: argparse.Namespace) -> int:
    from synesthesia import kernels
    from synesthesia.frames import synthetic_frame

    if args.frames < 1:
        raise SystemExit("synesthesia kernels-demo: --frames must be >= 1")
    if args.fps <= 0:
        raise SystemExit("synesthesia kernels-demo: --fps must be > 0")
    width, height = _size(args.size)
    nano = kernels.NanoEncoder(scale=4, method=args.method)
    full = kernels.JpegEncoder(quality=args.quality)
    mjpeg = None
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        mjpeg = open(args.save / "nano.mjpeg", "wb")  # noqa: SIM115 - closed below
    print(f"synesthesia: kernels demo, {args.frames} frames of {width}x{height}, SIMD {kernels.simd_level()}")
    nano_us: list[float] = []
    full_us: list[float] = []
    nano_bytes = full_bytes = 0
    last_nano = last_full = b""
    started = time.monotonic()
    try:
        for i in range(args.frames):
            frame = synthetic_frame(i / args.fps, width, height)
            t0 = time.perf_counter_ns()
            last_nano = nano.encode(frame)
            t1 = time.perf_counter_ns()
            last_full = full.encode(frame)
            t2 = time.perf_counter_ns()
            nano_us.append((t1 - t0) / 1e3)
            full_us.append((t2 - t1) / 1e3)
            nano_bytes += len(last_nano)
            full_bytes += len(last_full)
            if mjpeg:
                mjpeg.write(last_nano)
            if sys.stdout.isatty() and i % 25 == 0:
                print(f"\r  frame {i + 1}/{args.frames}", end="", flush=True)
    finally:
        if mjpeg:
            mjpeg.close()
    if sys.stdout.isatty():
        print("\r", end="")
    n = args.frames
    nw, nh = nano.output_size(width, height)
    print(f"  nano {nw}x{nh} 4:2:0 turbo:  {_stats(nano_us)}   {nano_bytes / n / 1024:6.1f} KiB/frame   "
          f"{nano_bytes * 8 * args.fps / n / 1e6:5.2f} Mbps at {args.fps:g} fps")
    print(f"  full {width}x{height} 4:2:0 q{args.quality}: {_stats(full_us)}   {full_bytes / n / 1024:6.1f} KiB/frame   "
          f"{full_bytes * 8 * args.fps / n / 1e6:5.2f} Mbps at {args.fps:g} fps")
    print(f"  done in {time.monotonic() - started:.1f} s (frame synthesis included)")
    if args.save:
        (args.save / "nano.jpg").write_bytes(last_nano)
        (args.save / "full.jpg").write_bytes(last_full)
        print(f"  wrote {args.save / 'nano.mjpeg'}, {args.save / 'nano.jpg'}, {args.save / 'full.jpg'}")
    return 0
