"""Where a benchmark figure came from: machine, instruction set, versions, commit, settings
and date (runs in the `synesthesia bench` process; area scripts may call it too)."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["collect", "for_script", "cpu_model", "git_commit", "repo_root"]


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def repo_root() -> Path | None:
    """The source checkout this package runs from (editable installs), else the working
    directory's checkout, else None."""
    here = Path(__file__).resolve()
    for base in (*here.parents, Path.cwd(), *Path.cwd().parents):
        if (base / "Cargo.toml").is_file() and (base / "python" / "synesthesia").is_dir():
            return base
    return None


def git_commit(root: Path | None = None) -> str:
    root = root or repo_root()
    if root is None:
        return "unknown"
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    # A result measured on uncommitted code must say so: nobody could rebuild it.
    return commit + ("+dirty" if dirty else "")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def collect(settings: Mapping[str, Any] | None = None, command: str | None = None,
            extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The provenance block every report carries."""
    from synesthesia import __version__, kernels

    try:
        simd = kernels.simd_level()
    except Exception:  # the native module may be missing in a source-only checkout
        simd = "unknown"
    versions = {"synesthesia": __version__, "python": platform.python_version()}
    try:
        from synesthesia import _native

        versions["native"] = str(_native.__version__)
    except (ImportError, AttributeError):
        pass
    for dist in ("numpy", "pyzmq", "msgpack"):
        v = _version(dist)
        if v:
            versions[dist] = v
    out: dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "command": command if command is not None else " ".join(["synesthesia", *sys.argv[1:]]),
        "cpu": cpu_model(),
        "simd_level": simd,
        "cores": os.cpu_count() or 0,
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
        "git_commit": git_commit(),
        "versions": versions,
        "settings": dict(settings) if settings is not None else {},
    }
    if extra:
        out.update(extra)
    return out


def for_script(script: str, options: Mapping[str, Any] | None = None, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """:func:`collect` for a script in ``bench/`` run on its own: the command as typed, and the
    script's options (less where it writes its output) as its settings."""
    opts = {k: v for k, v in (options or {}).items() if k not in ("out", "json")}
    return collect(opts, command=" ".join(["python", script, *sys.argv[1:]]), extra=extra)
