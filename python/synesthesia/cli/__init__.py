"""The `synesthesia` command line. One module per subcommand, imported only when chosen, so
that `--help` answers at once."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# subcommand -> (module, one-line help)
COMMANDS = {
    "run": ("synesthesia.cli.run", "run the engine on its embedded default (today: the kernel demo)"),
    "info": ("synesthesia.cli.info", "show the native module, SIMD level and versions"),
    "bench": ("synesthesia.cli.bench", "benchmarks: `bench listen` measures hearing accuracy and latency"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="synesthesia",
        description="Synesthesia: speak, and a live generated world changes to match.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(p)
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
