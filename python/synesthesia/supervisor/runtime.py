"""The private runtime directory of a run, and the clean-up of runs that died without cleaning.

Runs in the supervisor (and in `synesthesia cleanup`). Each run gets `<base>/run-<id>/` with
mode 0700: its ZeroMQ ipc:// endpoints live there, `pid` holds the supervisor's pid, and
`segments` lists the shared-memory segment names the run created. A run whose supervisor pid
is gone (SIGKILLed, say) is stale: its segments are unlinked and its directory removed by the
next run or by `synesthesia cleanup`, which report what they removed.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from synesthesia.bus import default_runtime_path, runtime_dir

__all__ = ["RuntimeDir", "StaleRun", "default_base", "find_stale_runs", "find_live_runs", "cleanup_stale_runs", "SHM_PREFIX"]

#: Every segment a run creates is named `syn-<supervisor pid>-<run id>-<ring>`, so a leftover is
#: recognisable, and whether its run is still alive is known from the name alone.
SHM_PREFIX = "syn-"
SHM_DIR = Path("/dev/shm")


def default_base() -> Path:
    """The directory that holds every run's directory (the bus's runtime path)."""
    return default_runtime_path()


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); it is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


@dataclass
class RuntimeDir:
    """One run's directory. `create()` makes it; `remove()` at a clean exit deletes it."""

    path: Path
    run_id: str

    @classmethod
    def create(cls, base: Path | None = None) -> RuntimeDir:
        # The bus creates it 0700 and refuses one another user could reach.
        base = runtime_dir(base or default_base())
        run_id = secrets.token_hex(4)
        path = base / f"run-{run_id}"
        path.mkdir(mode=0o700)
        (path / "pid").write_text(str(os.getpid()))
        (path / "segments").touch()
        return cls(path, run_id)

    def endpoint(self, name: str) -> str:
        """An ipc:// endpoint inside the private directory."""
        return f"ipc://{self.path / name}.sock"

    def segment_name(self, ring: str) -> str:
        """The shared-memory name for `ring`, recorded so a crashed run can be cleaned."""
        name = f"{SHM_PREFIX}{os.getpid()}-{self.run_id}-{ring}"
        with open(self.path / "segments", "a") as f:
            f.write(name + "\n")
        return name

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


@dataclass
class StaleRun:
    path: Path
    pid: int
    segments: list[str] = field(default_factory=list)


def find_stale_runs(base: Path | None = None) -> list[StaleRun]:
    base = base or default_base()
    stale: list[StaleRun] = []
    if not base.is_dir():
        return stale
    for run in sorted(base.glob("run-*")):
        try:
            pid = int((run / "pid").read_text().strip() or 0)
        except (OSError, ValueError):
            pid = 0
        if _pid_alive(pid):
            continue
        try:
            segments = [s for s in (run / "segments").read_text().split() if s]
        except OSError:
            segments = []
        stale.append(StaleRun(run, pid, segments))
    return stale


def cleanup_stale_runs(base: Path | None = None, shm_dir: Path = SHM_DIR) -> list[str]:
    """Remove what dead runs left behind; returns one line per thing removed."""
    base = base or default_base()
    removed: list[str] = []
    for run in find_stale_runs(base):
        for name in run.segments:
            seg = shm_dir / name
            if seg.exists():
                seg.unlink(missing_ok=True)
                removed.append(f"shared memory segment {name} (run {run.path.name}, pid {run.pid} is gone)")
        shutil.rmtree(run.path, ignore_errors=True)
        removed.append(f"runtime directory {run.path}")
    # Segments whose run directory vanished too (e.g. /tmp was cleaned): the pid in the name
    # says whether their supervisor lives.
    if shm_dir.is_dir():
        for seg in shm_dir.glob(f"{SHM_PREFIX}*"):
            pid_text = seg.name[len(SHM_PREFIX) :].split("-", 1)[0]
            if not pid_text.isdigit() or _pid_alive(int(pid_text)):
                continue
            try:
                if seg.stat().st_uid != os.getuid():
                    continue
            except FileNotFoundError:
                continue
            seg.unlink(missing_ok=True)
            removed.append(f"shared memory segment {seg.name} (its supervisor, pid {pid_text}, is gone)")
    return removed


def find_live_runs(base: Path | None = None) -> list[tuple[str, Path]]:
    """(run id, directory) of every run whose supervisor is alive, newest first."""
    base = base or default_base()
    runs = []
    if base.is_dir():
        for run in base.glob("run-*"):
            try:
                if _pid_alive(int((run / "pid").read_text().strip() or 0)):
                    runs.append((run.stat().st_mtime, run.name[len("run-") :], run))
            except (OSError, ValueError):
                continue
    return [(rid, path) for _, rid, path in sorted(runs, reverse=True)]
