"""The private runtime directory of a run, and the clean-up of runs that died without cleaning.

Runs in the supervisor (and in `synesthesia cleanup`). Each run gets `<base>/run-<id>/` with
mode 0700: its ZeroMQ ipc:// endpoints live there, `pid` holds the supervisor's pid, and
`segments` lists the shared-memory segment names the run created. A run whose supervisor pid
is gone (SIGKILLed, say) is stale: its segments are unlinked and its directory removed by the
next run or by `synesthesia cleanup`, which report what they removed.

Nothing is deleted from a base directory that is not private to this user (it may be a shared
folder someone pointed ``SYNESTHESIA_RUNTIME_DIR`` at), and only directories carrying the
:data:`MARKER` file this module writes when it creates a run are ever candidates: a ``run-*``
folder someone else made is left alone, whatever its name.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

from synesthesia.bus import default_runtime_path, runtime_dir
from synesthesia.errors import SynesthesiaError

__all__ = ["RuntimeDir", "StaleRun", "default_base", "find_stale_runs", "find_live_runs", "cleanup_stale_runs", "check_private", "SHM_PREFIX", "MARKER"]

#: Every segment a run creates is named `syn-<supervisor pid>-<run id>-<ring>`, so a leftover is
#: recognisable, and whether its run is still alive is known from the name alone.
SHM_PREFIX = "syn-"
SHM_DIR = Path("/dev/shm")
#: Written first into every run directory this module creates; cleanup removes nothing without it.
MARKER = ".synesthesia-run"


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
        (path / MARKER).write_text(f"{run_id}\n")
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


def check_private(base: Path) -> None:
    """Refuse a base directory that is not a directory owned by this user with no group or other
    access (a symlink included): it is not ours to clean."""
    st = base.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise SynesthesiaError(f"runtime dir {base} is not a directory owned by uid {os.getuid()}; nothing removed")
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise SynesthesiaError(f"runtime dir {base} is accessible to other users (mode {stat.S_IMODE(st.st_mode):o}); "
                               "use a private one (nothing removed)")


def _ours(run: Path) -> bool:
    """A real directory (not a link) owned by us that holds the marker of a run we created."""
    try:
        st = run.lstat()
        marker = (run / MARKER).lstat()
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and stat.S_ISREG(marker.st_mode)


def find_stale_runs(base: Path | None = None) -> list[StaleRun]:
    """Runs this engine created under ``base`` whose supervisor is gone. Raises
    `SynesthesiaError` when ``base`` is not private to this user."""
    base = base or default_base()
    stale: list[StaleRun] = []
    if not os.path.lexists(base):
        return stale
    check_private(base)
    for run in sorted(base.glob("run-*")):
        if not _ours(run):
            continue
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
            if not _ours(run):
                continue
            try:
                if _pid_alive(int((run / "pid").read_text().strip() or 0)):
                    runs.append((run.stat().st_mtime, run.name[len("run-") :], run))
            except (OSError, ValueError):
                continue
    return [(rid, path) for _, rid, path in sorted(runs, reverse=True)]
