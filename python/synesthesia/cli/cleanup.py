"""`synesthesia cleanup`: remove what crashed runs left behind (segments, sockets, directories)."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="only list what would be removed")


def main(args: argparse.Namespace) -> int:
    from synesthesia.errors import SynesthesiaError

    try:
        return _clean(args.dry_run)
    except SynesthesiaError as exc:
        print(f"synesthesia cleanup: {exc}", file=sys.stderr)
        return 1


def _clean(dry_run: bool) -> int:
    from synesthesia.supervisor.runtime import cleanup_stale_runs, find_stale_runs

    if dry_run:
        stale = find_stale_runs()
        for run in stale:
            print(f"would remove {run.path} (supervisor pid {run.pid} is gone) and {len(run.segments)} segment(s)")
        if not stale:
            print("nothing to clean up")
        return 0
    removed = cleanup_stale_runs()
    for line in removed:
        print(f"removed {line}")
    if not removed:
        print("nothing to clean up")
    return 0
