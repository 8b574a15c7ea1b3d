"""`synesthesia status | stop | say`: commands to a running engine over its control socket."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", help="run id (default: the newest live run)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the answer (default: 5)")


def add_status_arguments(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the status as JSON")


def add_say_arguments(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser)
    parser.add_argument("text", help="the prompt, e.g. \"a storm over the mountains\"")


def _call(args: argparse.Namespace, command: str, cmd_args: dict[str, Any] | None = None) -> Any:
    from synesthesia.bus import CommandClient, Endpoints
    from synesthesia.supervisor.runtime import find_live_runs

    runs = find_live_runs()
    if args.run:
        runs = [r for r in runs if r[0] == args.run]
    if not runs:
        raise SystemExit(f"synesthesia {command}: no running engine found" + (f" with run id {args.run}" if args.run else "")
                         + " (start one with `synesthesia run`)")
    run_id, path = runs[0]
    endpoints = Endpoints.for_run(run_id, path)
    with CommandClient(endpoints.command("supervisor")) as client:
        reply = client.call(command, cmd_args, timeout=args.timeout)
    if reply is None:
        raise SystemExit(f"synesthesia {command}: run {run_id} did not answer within {args.timeout:g} s")
    if not reply.ok:
        raise SystemExit(f"synesthesia {command}: {reply.error}")
    return reply.result


def status(args: argparse.Namespace) -> int:
    result = _call(args, "status")
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(f"run {result['run']}  supervisor pid {result['pid']}  up {result['uptime_s']:.1f} s")
    print(f"{'stage':10} {'state':9} {'pid':>7} {'restarts':>8} {'mem MiB':>8}  streams")
    for st in result["stages"]:
        streams = "  ".join(f"{k}: {v['fps']:.1f}/s p50 {v['p50']:.0f}us p99 {v['p99']:.0f}us drops {v['dropped']}"
                            for k, v in st.get("streams", {}).items())
        mem = f"{st['memory_mb']:.0f}" if st.get("memory_mb") else "-"
        print(f"{st['name']:10} {st['state']:9} {st['pid'] or '-':>7} {st['restarts']:>8} {mem:>8}  {streams}")
        if st.get("fail_reason"):
            print(f"{'':10} failed: {st['fail_reason']}")
    print(f"last transcript: {result['last_transcript']!r}\nlast intent:     {result['last_intent']!r}")
    return 0


def stop(args: argparse.Namespace) -> int:
    _call(args, "stop")
    print("stopping")
    return 0


def say(args: argparse.Namespace) -> int:
    result = _call(args, "say", {"text": args.text})
    print(f"sent (trace id {result['trace_id']:x})")
    return 0


def main(args: argparse.Namespace) -> int:
    return {"status": status, "stop": stop, "say": say}[args.command](args)
