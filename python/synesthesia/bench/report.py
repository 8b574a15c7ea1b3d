"""The one report format every `synesthesia bench` area shares (runs in the bench process).

A report has a provenance block, latency rows (a stage's statistics in ms, optionally beside a
reference figure and a target), free-form tables (an area's side-by-side comparison), an
interaction tally for runs that join traces, and notes. It renders as Markdown for people and
as JSON for machines; the JSON form is described by ``report.schema.json`` next to this file
(:data:`SCHEMA_PATH`), and :func:`validate` checks a document against it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synesthesia.bench.stats import FIELDS, Stats, fmt

__all__ = ["Report", "LatencyRow", "Table", "Reference", "Interactions", "SCHEMA_PATH", "SCHEMA_VERSION", "validate"]

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("report.schema.json")

Scalar = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class Reference:
    """A published figure to compare against (the reference system's table)."""

    label: str
    mean: float
    std: float | None = None


@dataclass(slots=True)
class LatencyRow:
    name: str
    stats: Stats
    unit: str = "ms"
    reference: Reference | None = None
    target: str = ""
    met: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        ref = None
        if self.reference is not None:
            ref = {"label": self.reference.label, "mean": self.reference.mean, "std": self.reference.std}
        return {"name": self.name, "unit": self.unit, **self.stats.to_dict(), "reference": ref,
                "target": self.target, "met": self.met}


@dataclass(slots=True)
class Table:
    name: str
    columns: list[str]
    rows: list[list[Scalar]] = field(default_factory=list)

    @classmethod
    def from_records(cls, name: str, records: Sequence[Mapping[str, Any]]) -> Table:
        """A table from a list of flat dicts (an area script's rows), columns in first-seen order."""
        columns: list[str] = []
        for r in records:
            columns += [k for k in r if k not in columns]
        return cls(name, columns, [[_scalar(r.get(c)) for c in columns] for r in records])


@dataclass(slots=True)
class Interactions:
    """How many interactions ran and which were incomplete, with the hops each one lacks."""

    total: int = 0
    complete: int = 0
    expected_hops: list[str] = field(default_factory=list)
    incomplete: list[dict[str, Any]] = field(default_factory=list)  # {"trace_id", "origin", "missing", "present", "why"}


@dataclass(slots=True)
class Report:
    area: str
    title: str
    provenance: dict[str, Any]
    latency: list[LatencyRow] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    interactions: Interactions | None = None
    notes: list[str] = field(default_factory=list)

    # -- JSON ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        inter = None
        if self.interactions is not None:
            i = self.interactions
            inter = {"total": i.total, "complete": i.complete, "expected_hops": list(i.expected_hops),
                     "incomplete": list(i.incomplete)}
        return {
            "schema_version": SCHEMA_VERSION,
            "area": self.area,
            "title": self.title,
            "provenance": _jsonable(self.provenance),
            "latency": [r.to_dict() for r in self.latency],
            "tables": [{"name": t.name, "columns": list(t.columns), "rows": [list(r) for r in t.rows]} for t in self.tables],
            "interactions": inter,
            "notes": list(self.notes),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    # -- Markdown -----------------------------------------------------------------------
    def to_markdown(self) -> str:
        p = self.provenance
        lines = [f"# {self.title}", ""]
        if p.get("command"):
            lines += [f"Command: `{p['command']}`", ""]
        lines += ["| provenance | |", "| --- | --- |"]
        for key, value in p.items():
            if key in ("command", "settings"):
                continue
            if isinstance(value, Mapping):
                value = ", ".join(f"{k} {v}" for k, v in value.items())
            lines.append(f"| {key} | {_cell(value)} |")
        if p.get("settings"):
            lines.append(f"| settings | `{json.dumps(p['settings'], separators=(',', ':'), default=str)}` |")
        lines.append("")
        if self.latency:
            lines += self._latency_md()
        if any(r.reference is not None for r in self.latency):
            lines += self._reference_md()
        if self.interactions is not None:
            lines += self._interactions_md()
        for t in self.tables:
            lines += [f"## {t.name}", "", "| " + " | ".join(t.columns) + " |",
                      "| " + " | ".join("---" for _ in t.columns) + " |"]
            lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in t.rows]
            lines.append("")
        if self.notes:
            lines += ["## Notes", "", *(f"- {n}" for n in self.notes), ""]
        return "\n".join(lines)

    def _latency_md(self) -> list[str]:
        unit = self.latency[0].unit
        head = f"| stage | n | {' | '.join(f'{f} {unit}' for f in FIELDS)} | target | met |"
        lines = ["## Latency", "", head, "| --- | ---: |" + " ---: |" * len(FIELDS) + " --- | --- |"]
        for r in self.latency:
            vals = " | ".join(fmt(getattr(r.stats, f), 3 if r.unit == "ms" else 1) for f in FIELDS)
            met = "" if r.met is None else ("yes" if r.met else "**no**")
            lines.append(f"| {r.name} | {r.stats.n} | {vals} | {r.target} | {met} |")
        return [*lines, ""]

    def _reference_md(self) -> list[str]:
        lines = ["## Beside the reference system", "",
                 "| reference row | our measurement | reference mean ms | reference σ ms | ours mean ms | ours σ ms | ours p95 ms | n | reference / ours |",
                 "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for r in self.latency:
            ref = r.reference
            if ref is None:
                continue
            m = r.stats.mean
            ratio = f"{ref.mean / m:,.1f}x" if m else ""
            lines.append(f"| {ref.label} | {r.name} | {fmt(ref.mean)} | {fmt(ref.std)} | {fmt(m, 3)} | "
                         f"{fmt(r.stats.std, 3)} | {fmt(r.stats.p95, 3)} | {r.stats.n} | {ratio} |")
        return [*lines, ""]

    def _interactions_md(self) -> list[str]:
        i = self.interactions
        assert i is not None
        lines = ["## Interactions", "",
                 f"{i.total} interactions, {i.complete} complete, {len(i.incomplete)} incomplete "
                 f"(expected hops: {', '.join(i.expected_hops)}).", ""]
        if i.incomplete:
            lines += ["| trace id | origin | why | missing hops | hops seen |", "| --- | --- | --- | --- | --- |"]
            lines += [f"| {x['trace_id']:x} | {x['origin']} | {x.get('why', '')} | {', '.join(x['missing'])} | "
                      f"{', '.join(x['present'])} |" for x in i.incomplete]
            lines.append("")
        return lines


def _scalar(v: Any) -> Scalar:
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    return str(v)


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v).replace("|", "\\|").replace("\n", " ")


def _jsonable(v: Any) -> Any:
    return json.loads(json.dumps(v, default=str))


def load_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())  # type: ignore[no-any-return]


def validate(doc: Mapping[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``doc`` is a valid report (needs the
    ``jsonschema`` package, a test dependency)."""
    import jsonschema  # type: ignore[import-untyped, unused-ignore]

    jsonschema.validate(doc, load_schema())


def rows_for(names: Iterable[str], rows: Iterable[LatencyRow]) -> list[LatencyRow]:
    wanted = set(names)
    return [r for r in rows if r.name in wanted]
