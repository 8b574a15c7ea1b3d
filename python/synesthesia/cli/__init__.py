"""The `synesthesia` command line. One module per subcommand, imported only when chosen, so
that `--help` answers at once."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# subcommand -> (module, one-line help[, the module's function that adds its arguments])
COMMANDS: dict[str, tuple[str, ...]] = {
    "run": ("synesthesia.cli.run", "launch the whole pipeline (no arguments: the embedded spoken demo)"),
    "status": ("synesthesia.cli.control", "show each stage of a running engine", "add_status_arguments"),
    "stop": ("synesthesia.cli.control", "stop a running engine"),
    "say": ("synesthesia.cli.control", "send a typed prompt to a running engine", "add_say_arguments"),
    "devices": ("synesthesia.cli.devices", "list audio input devices (with a clear answer when there are none)"),
    "doctor": ("synesthesia.cli.doctor", "check the native module, models, ports and shared memory; say what to fix"),
    "cleanup": ("synesthesia.cli.cleanup", "remove shared memory and sockets left by crashed runs"),
    "info": ("synesthesia.cli.info", "show the native module, SIMD level and versions"),
    "bench": ("synesthesia.cli.bench", "benchmarks: kernels, transport, listen, world, stream, render, e2e, soak (one report format)"),
    "kernels-demo": ("synesthesia.cli.kernels_demo", "encode a generated frame sequence with the Rust kernels and report"),
    "serve": ("synesthesia.cli.serve", "serve the browser viewer (today: over the in-process demo pipeline)"),
    "snapshot": ("synesthesia.cli.snapshot", "render a scene described in words, or a session's moment, to a PNG or JPEG"),
    "render": ("synesthesia.cli.render", "re-render a recorded session to MP4 at final quality, with its audio"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="synesthesia",
        description="Synesthesia: speak, and a live generated world changes to match.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text, *adder) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        getattr(importlib.import_module(module), adder[0] if adder else "add_arguments")(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "_module", None) is None:
        build_parser().print_help()
        return 2
    try:
        return int(importlib.import_module(args._module).main(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `synesthesia status --json | head`: the reader left, not an error
        sys.stderr.close()
        return 0
