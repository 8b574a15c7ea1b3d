"""PNG plots of a bench run (runs in the bench process; needs matplotlib, from the `bench`
dependency group, imported only when plots are asked for).

Three figures: latency CDFs per stage, the histogram of intervals between frames on each ring
(cadence and jitter), and a per-frame timeline with the interactions' hops marked on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from synesthesia.bench.e2e import SEGMENTS, FrameObs, Interaction
from synesthesia.tracing import HOPS

__all__ = ["write"]


def write(directory: str | Path, interactions: Sequence[Interaction], frames: Sequence[FrameObs], stages: Sequence[str]) -> list[Path]:
    try:
        import matplotlib  # type: ignore[import-not-found, unused-ignore]

        matplotlib.use("Agg")  # files only: never open a window from a benchmark
        import matplotlib.pyplot as plt  # type: ignore[import-not-found, unused-ignore]
    except ImportError as e:
        raise RuntimeError("--plots needs matplotlib (pip install --group bench, or pip install matplotlib)") from e
    import numpy as np

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    wire = "sent" if "serve" in stages else "encoded"

    fig, ax = plt.subplots(figsize=(8, 5))
    styles = ("-", "--", ":", "-.")
    for seg in SEGMENTS:
        if seg.field is not None:
            vals = [float(it.fields.get(seg.field[0], {}).get(seg.field[1])) for it in interactions  # type: ignore[arg-type]
                    if isinstance(it.fields.get(seg.field[0], {}).get(seg.field[1]), (int, float))]
        else:
            end = wire if seg.end == "<wire>" else seg.end
            vals = [v for it in interactions if (v := it.span_ms(seg.start, end)) is not None]
        if vals:
            xs = np.sort(vals)
            # Ten colours, then the next line style: every row stays tellable apart.
            ax.step(xs, np.arange(1, len(xs) + 1) / len(xs), where="post", label=f"{seg.name} (n={len(xs)})",
                    linestyle=styles[(len(ax.lines) // 10) % len(styles)])
    ax.set_xscale("log")
    ax.set_xlabel("latency, ms (log)")
    ax.set_ylabel("fraction of interactions")
    ax.set_title("Latency CDF per stage")
    ax.grid(True, alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=7)
    written.append(out / "latency_cdf.png")
    fig.savefig(written[-1], dpi=110, bbox_inches="tight")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 4))
    for ring in sorted({f.ring for f in frames}):
        ts = np.array([f.t_publish_ns for f in frames if f.ring == ring], dtype=np.float64)
        if ts.size > 1:
            ax.hist(np.diff(ts) / 1e6, bins=60, alpha=0.6, label=f"{ring} ring (n={ts.size - 1})")
    ax.set_xlabel("interval between frames, ms")
    ax.set_ylabel("count")
    ax.set_title("Frame intervals")
    if ax.patches:
        ax.legend()
    written.append(out / "frame_intervals.png")
    fig.savefig(written[-1], dpi=110, bbox_inches="tight")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(10, 4))
    stamps = [f.t_publish_ns for f in frames] + [t for it in interactions for t in it.hops.values()]
    if stamps:
        t0 = min(stamps)
        rings = sorted({f.ring for f in frames})
        for y, ring in enumerate(rings):
            fs = sorted((f for f in frames if f.ring == ring), key=lambda f: f.t_publish_ns)
            # A frame is marked when it answers to a trace id its predecessor did not: the first
            # changed frame of an interaction (later frames keep carrying the id).
            fresh = [bool(set(f.trace_ids) - set(fs[i - 1].trace_ids if i else ())) for i, f in enumerate(fs)]
            ax.scatter([(f.t_publish_ns - t0) / 1e9 for f in fs], [y] * len(fs), s=[30 if n else 3 for n in fresh],
                       c=["tab:red" if n else "tab:gray" for n in fresh])
        hop_y = len(rings)
        for it in interactions:
            for h, t in it.hops.items():
                if h not in HOPS:
                    continue  # a hop outside the pipeline's order (a partial transcript, say)
                # Hops of one interaction stack upward in pipeline order within one band.
                ax.scatter([(t - t0) / 1e9], [hop_y + 0.8 * HOPS.index(h) / len(HOPS)], s=10, marker="|", c="tab:blue")
        ax.set_yticks(list(range(len(rings))) + [hop_y + 0.4], [f"{r} ring" for r in rings] + ["hops"])
    ax.set_xlabel("seconds since the first stamp (red: the first frame carrying an interaction's trace id)")
    ax.set_title("Per-frame timeline")
    written.append(out / "timeline.png")
    fig.savefig(written[-1], dpi=110, bbox_inches="tight")
    plt.close(fig)
    return written
