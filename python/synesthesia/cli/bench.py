"""`synesthesia bench <area>`: the per-area benchmarks and the end-to-end run, one report
format for all (runs in the invoking process; `e2e` also hosts the supervisor).

Every area prints a Markdown report on stdout (provenance first) and can also write it as JSON
(`--json FILE`, schema in synesthesia/bench/report.schema.json) or Markdown (`--out FILE`).
Progress goes to stderr. Arguments after `--` go to the area itself.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

# The area names and help are listed here, not imported from the harness, so `--help` stays
# instant; synesthesia.bench.areas is the registry that says what runs.
_AREAS = {
    "kernels": "resize and JPEG kernels against OpenCV, Pillow and simplejpeg",
    "transport": "shared-memory rings and the bus against the alternatives",
    "listen": "capture, VAD, recognizers and NLP on a manifest of clips",
    "world": "world backends and the pacer",
    "stream": "adaptive encoder and the WebSocket stream",
    "render": "offline session render speed and the session log's cost to a live run",
    "e2e": "the real multiprocess pipeline: per-stage latency and the end-to-end loop",
    "soak": "a long run under viewers, speech and random stage kills: leaks, frame gaps, leftovers",
}


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", metavar="FILE", type=Path, help="also write the report as JSON (documented schema)")
    p.add_argument("--out", metavar="FILE", type=Path, help="also write the Markdown report to FILE")
    p.add_argument("--plots", metavar="DIR", type=Path, help="write PNG plots here (e2e; needs matplotlib)")
    p.add_argument("--trace", metavar="FILE", type=Path, help="write a Perfetto-loadable trace of the run (e2e)")
    p.add_argument("--quick", action="store_true", help="a short smoke run, not a measurement")
    p.add_argument("extra", nargs="*", metavar="-- ARGS", help="arguments passed to the area's own benchmark")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="area", metavar="AREA", required=True)
    for name, help_text in _AREAS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == "listen":
            # The hearing evaluator keeps its own contract: its table, and a --json with every
            # clip's keywords and latency (see synesthesia.cli.bench_listen).
            from synesthesia.cli import bench_listen

            bench_listen.add_arguments(p)
            continue
        if name == "soak":
            p.add_argument("--minutes", type=float, default=10.0, help="how long to run (default: 10)")
            p.add_argument("--viewers", type=int, default=8, help="WebSocket viewers (default: 8)")
            p.add_argument("--kill-every", type=float, default=10.0, metavar="S", help="SIGKILL a random stage this often (default: 10 s; 0: never)")
            p.add_argument("--seed", type=int, default=1, help="seed of the kill and prompt choices")
            p.add_argument("--leak-minutes", type=float, default=0.0, metavar="M",
                           help="then run M minutes without kills and report its growth beside (default: 0, none)")
            p.add_argument("--idle-connections", type=int, default=0, metavar="N",
                           help="at the end (of the run without kills, if any) open N connections to the serve "
                                "stage that never read and report their cost and how soon they close (default: 0)")
            p.add_argument("--note", default="", help="a sentence on the machine's load for the report")
            p.add_argument("--out", metavar="FILE", type=Path, help="also write the Markdown report to FILE")
            continue
        _common(p)
        if name == "e2e":
            p.add_argument("--backend", choices=("procedural", "odyssey", "onnx", "emulate"),
                           help="world backend; emulate adds the reference table beside ours")
            p.add_argument("-n", "--interactions", type=int, default=50, help="interactions to run (default: 50)")
            p.add_argument("--prompt", action="append", metavar="TEXT", help="a typed prompt (repeatable; default: a built-in set)")
            p.add_argument("--manifest", metavar="PATH", help="spoken commands: one run per clip (needs the listen stage)")
            p.add_argument("--timeout", type=float, metavar="S", help="seconds to wait for an interaction's hops (default: 3, + the emulated lag)")
            p.add_argument("--gap", type=float, default=0.2, metavar="S", help="pause between interactions (default: 0.2)")
            p.add_argument("--browser", action="store_true",
                           help="run the serve stage and attach headless chromium to the viewer, so the `sent` "
                                "(on the wire) and `displayed` hops are measured on a real page (needs chromium)")
            p.add_argument("--viewer", action="store_true",
                           help="with --from-log: a browser was attached to that run, expect the `displayed` hop")
            p.add_argument("--reference", action="store_true", help="print the reference table beside ours with any backend")
            p.add_argument("--config", metavar="FILE", help="TOML settings file")
            p.add_argument("--trace-log", metavar="FILE", help="keep the run's JSON Lines trace log here (default: a temp file)")
            p.add_argument("--from-log", metavar="FILE", help="no run: join an existing trace log (e.g. SYNESTHESIA_TRACE of a `run`)")
            p.add_argument("--stages", metavar="A,B", help="with --from-log: the stages that ran (default: this build's pipeline)")


def main(args: argparse.Namespace) -> int:
    from synesthesia.bench.areas import AREAS, AreaUnavailable, run_area

    if args.area == "listen":
        from synesthesia.cli import bench_listen

        return bench_listen.main(args)
    if args.area == "soak":
        from synesthesia.bench import soak

        return soak.main(args)
    area = AREAS[args.area]
    extra = list(args.extra)
    if args.area == "e2e" and args.quick:
        args.interactions = min(args.interactions, 5)
    command = "synesthesia " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    print(f"bench {args.area}: running", file=sys.stderr, flush=True)
    try:
        report = run_area(area, args, extra, command)
    except AreaUnavailable as e:
        print(e, file=sys.stderr)
        return 2
    except RuntimeError as e:
        print(f"synesthesia bench {args.area}: {e}", file=sys.stderr)
        return 1
    report.provenance["command"] = command
    if args.area != "e2e" and (args.plots or args.trace):
        report.notes.append("--plots and --trace apply to e2e runs; this area draws none")
    text = report.to_markdown()
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(report.to_json())
    return 0
