"""`synesthesia info`: what this installation runs on."""

from __future__ import annotations

import argparse
import json
import platform


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a JSON object instead of lines")


def main(args: argparse.Namespace) -> int:
    import numpy as np

    from synesthesia import __version__, _native, kernels

    info = {
        "synesthesia": __version__,
        "native": _native.__version__,
        "simd_level": kernels.simd_level(),
        "simd_available": kernels.available_simd_levels(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
    }
    if args.json:
        print(json.dumps(info))
    else:
        for key, value in info.items():
            print(f"{key:15} {value}")
    return 0
