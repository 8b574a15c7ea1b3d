"""Runtime directories and the clean-up of runs whose supervisor died."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from multiprocessing import resource_tracker, shared_memory
from pathlib import Path

from synesthesia.supervisor.runtime import RuntimeDir, cleanup_stale_runs, find_stale_runs


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_runtime_dir_is_private_and_removed(tmp_path: Path) -> None:
    rd = RuntimeDir.create(tmp_path / "base")
    assert stat.S_IMODE(rd.path.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "base").stat().st_mode) == 0o700
    assert rd.endpoint("bus").startswith("ipc://") and str(rd.path) in rd.endpoint("bus")
    assert rd.segment_name("frames") == f"syn-{os.getpid()}-{rd.run_id}-frames"
    assert find_stale_runs(tmp_path / "base") == []  # our own pid is alive
    rd.remove()
    assert not rd.path.exists()


def test_stale_run_segments_are_removed_and_reported(tmp_path: Path) -> None:
    base, shm = tmp_path / "base", tmp_path / "shm"
    shm.mkdir()
    crashed = RuntimeDir.create(base)
    name = crashed.segment_name("frames")
    (shm / name).write_bytes(b"x")
    (crashed.path / "pid").write_text(str(dead_pid()))
    alive = RuntimeDir.create(base)
    keep = alive.segment_name("frames")
    (shm / keep).write_bytes(b"x")
    orphan = shm / f"syn-{dead_pid()}-deadbeef-audio"  # its run directory is gone too
    orphan.write_bytes(b"x")
    unrelated = shm / "other-segment"
    unrelated.write_bytes(b"x")

    removed = cleanup_stale_runs(base, shm_dir=shm)
    assert any(name in line for line in removed)
    assert any(orphan.name in line for line in removed)
    assert not (shm / name).exists() and not orphan.exists() and not crashed.path.exists()
    assert (shm / keep).exists() and unrelated.exists() and alive.path.exists()
    assert cleanup_stale_runs(base, shm_dir=shm) == []


def test_real_segment_left_by_a_killed_run_is_unlinked(tmp_path: Path) -> None:
    crashed = RuntimeDir.create(tmp_path)
    name = crashed.segment_name("jpeg")
    seg = shared_memory.SharedMemory(name=name, create=True, size=4096)
    resource_tracker.unregister(seg._name, "shared_memory")  # type: ignore[attr-defined]
    seg.close()
    (crashed.path / "pid").write_text(str(dead_pid()))
    assert os.path.exists(f"/dev/shm/{name}")
    removed = cleanup_stale_runs(tmp_path)
    assert any(name in line for line in removed)
    assert not os.path.exists(f"/dev/shm/{name}")
