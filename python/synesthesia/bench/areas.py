"""The registry of bench areas: `synesthesia bench <area>` looks the area up here (runs in the
`synesthesia bench` process).

An area plugs in with one :func:`register` call naming a target, which is one of:
  - ``"bench/<script>.py"``: a script in the checkout's ``bench/`` folder (or an absolute
    path), run with this
    interpreter as ``script [--quick] --json FILE [extra args]``;
  - ``"package.module:function"``: a ``main(argv) -> int`` taking the same arguments, or a
    `synesthesia.cli`-style module's ``main(args)`` (its ``add_arguments`` parses argv);
  - ``"package.module:function"`` registered with ``native=True``: a ``fn(args) -> Report``
    that builds the shared report itself (``args`` is the parsed command line).
A target may list alternatives; the first that exists is used, so an area can be registered
before the branch providing it is merged ("not available" until then).

Whatever an area writes with ``--json`` is folded into the shared report: a document that is
already a report (it has ``schema_version``) is taken as is; the ``{"provenance", "rows"}``
shape of ``bench/kernels.py`` becomes one table per row ``group``.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synesthesia.bench import provenance
from synesthesia.bench.report import SCHEMA_VERSION, Interactions, LatencyRow, Reference, Report, Table
from synesthesia.bench.stats import Stats

__all__ = ["Area", "AREAS", "register", "resolve", "run_area", "AreaUnavailable", "fold"]


class AreaUnavailable(RuntimeError):
    """The area is registered but none of its targets exists in this installation."""


@dataclass(frozen=True, slots=True)
class Area:
    name: str
    help: str
    targets: tuple[str, ...]
    native: bool = False
    title: str = ""


AREAS: dict[str, Area] = {}


def register(name: str, targets: str | Sequence[str], help: str, *, native: bool = False, title: str = "") -> Area:
    area = Area(name, help, (targets,) if isinstance(targets, str) else tuple(targets), native, title or f"{name} benchmark")
    AREAS[name] = area
    return area


# The areas of the other issues. Targets named here before their branches land resolve to
# "not available" until the file or module exists; the lead adjusts a line when merging.
register("kernels", "bench/kernels.py", "resize and JPEG kernels against OpenCV, Pillow and simplejpeg",
         title="Kernel benchmark")
register("transport", ("bench/transport.py", "synesthesia.bench_transport:main"),
         "shared-memory rings and the bus against the alternatives", title="Transport benchmark")
register("listen", ("synesthesia.hearing.bench:main", "synesthesia.cli.bench_listen:main", "bench/listen.py"),
         "capture, VAD, recognizers and NLP on a manifest of clips", title="Listen benchmark")
register("world", ("bench/world.py", "synesthesia.world.bench:main"), "world backends and the pacer",
         title="World benchmark")
register("stream", ("bench/stream.py", "synesthesia.serve.bench:main"), "adaptive encoder and the WebSocket stream",
         title="Stream benchmark")
register("render", "bench/render.py", "offline session render speed and the session log's cost to a live run",
         title="Session benchmark")
register("e2e", "synesthesia.bench.e2e:run_from_args", "the whole pipeline, prompt or speech to the frame on the wire",
         native=True, title="End-to-end latency")


def _script(target: str) -> Path | None:
    if Path(target).is_absolute():
        return Path(target)
    root = provenance.repo_root()
    return None if root is None else root / target


def _exists(target: str) -> bool:
    if target.endswith(".py"):
        script = _script(target)
        return script is not None and script.is_file()
    module = target.split(":", 1)[0]
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package is missing
        return False


def resolve(area: Area) -> str:
    for target in area.targets:
        if _exists(target):
            return target
    raise AreaUnavailable(f"bench {area.name}: not available in this checkout (looked for {', '.join(area.targets)}); "
                          "it arrives with the branch that builds that area")


def _load(target: str) -> Callable[..., Any]:
    module, _, fn = target.partition(":")
    return getattr(importlib.import_module(module), fn or "main")  # type: ignore[no-any-return]


def _call_argv(target: str, argv: Sequence[str]) -> int:
    """Call a ``module:function`` area with argv. A `synesthesia.cli`-style module (one with
    ``add_arguments(parser)`` beside ``main(args)``) gets its own parser run over argv first,
    so a subcommand module plugs in unchanged."""
    import argparse

    module = importlib.import_module(target.partition(":")[0])
    fn = _load(target)
    adder = getattr(module, "add_arguments", None)
    if adder is None:
        return int(fn(list(argv)) or 0)
    parser = argparse.ArgumentParser(prog=f"synesthesia bench ({target})")
    adder(parser)
    return int(fn(parser.parse_args(list(argv))) or 0)


def run_area(area: Area, args: Any, extra: Sequence[str], command: str) -> Report:
    """Run ``area`` and return its result in the shared report format."""
    target = resolve(area)
    if area.native:
        return _load(target)(args)  # type: ignore[no-any-return]
    with tempfile.TemporaryDirectory(prefix="synesthesia-bench-") as tmp:
        out = Path(tmp) / "area.json"
        argv = [*(["--quick"] if getattr(args, "quick", False) else []), "--json", str(out), *extra]
        if target.endswith(".py"):
            # The script's own Markdown goes to stderr with its progress: stdout is the harness's.
            proc = subprocess.run([sys.executable, str(_script(target)), *argv], stdout=sys.stderr, check=False)
            code = proc.returncode
        else:
            code = _call_argv(target, argv)
        if code != 0:
            raise RuntimeError(f"{target} exited with status {code}")
        if not out.exists():
            raise RuntimeError(f"{target} wrote no --json output")
        doc = json.loads(out.read_text())
    return fold(area, doc, command)


def fold(area: Area, doc: Mapping[str, Any], command: str) -> Report:
    """An area's JSON output as a shared report, whatever of the known shapes it has."""
    base = provenance.collect(command=command)
    if doc.get("schema_version") == SCHEMA_VERSION:
        prov = {**base, **doc.get("provenance", {}), "command": command}
        rep = Report(str(doc.get("area", area.name)), str(doc.get("title", area.title)), prov)
        for r in doc.get("latency", []):
            ref = r.get("reference")
            rep.latency.append(LatencyRow(r["name"], Stats(**{k: r.get(k) for k in Stats.__slots__}),
                                          r.get("unit", "ms"), Reference(**ref) if ref else None, r.get("target", ""), r.get("met")))
        rep.tables = [Table(t["name"], list(t["columns"]), [list(x) for x in t["rows"]]) for t in doc.get("tables", [])]
        if doc.get("interactions"):
            rep.interactions = Interactions(**doc["interactions"])
        rep.notes = list(doc.get("notes", []))
        return rep
    own = dict(doc.get("provenance") or {})
    area_command = own.pop("command", None)
    versions = base["versions"]
    prov = {**base, **{k: v for k, v in own.items() if k not in base and versions.get(k) != v}}
    if area_command:
        prov["area_command"] = area_command
    rep = Report(area.name, area.title, prov)
    rows = doc.get("rows")
    if isinstance(rows, list) and all(isinstance(r, Mapping) for r in rows):
        groups: dict[str, list[Mapping[str, Any]]] = {}
        for r in rows:
            groups.setdefault(str(r.get("group", area.name)), []).append({k: v for k, v in r.items() if k != "group"})
        rep.tables = [Table.from_records(g, rs) for g, rs in groups.items()]
    else:
        rep.notes.append(f"{area.name} wrote JSON in a shape the harness does not know (keys: {', '.join(doc)}); "
                         "emit `rows` or a report (synesthesia.bench.report) to get a table here")
    rep.notes += [str(n) for n in doc.get("notes", []) if n]
    return rep
