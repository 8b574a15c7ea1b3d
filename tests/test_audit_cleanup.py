"""Defect 1: `cleanup` (and the clean-up at the start of `run`) must never delete a directory the
engine did not create, and nothing at all from a runtime directory that is not private."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from synesthesia.errors import SynesthesiaError
from synesthesia.supervisor.runtime import MARKER, RuntimeDir, cleanup_stale_runs, find_stale_runs


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "synesthesia", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=60)


def _user_folders(base: Path) -> list[Path]:
    folders = []
    for name in ("run-keepme", "run-photos", "run-notes"):
        (base / name).mkdir()
        (base / name / "precious.txt").write_text("do not delete")
        folders.append(base / name)
    (base / "run-notes" / "pid").write_text(str(_dead_pid()))  # even one that looks like a run
    return folders


def test_unmarked_run_folders_in_a_private_base_are_kept(tmp_path: Path) -> None:
    base = tmp_path / "rt"
    crashed = RuntimeDir.create(base)
    assert (crashed.path / MARKER).is_file()
    (crashed.path / "pid").write_text(str(_dead_pid()))
    folders = _user_folders(base)
    assert [r.path for r in find_stale_runs(base)] == [crashed.path]
    removed = cleanup_stale_runs(base, shm_dir=tmp_path)
    assert removed == [f"runtime directory {crashed.path}"]
    assert not crashed.path.exists()
    assert all((f / "precious.txt").read_text() == "do not delete" for f in folders)


def test_a_shared_base_is_refused_before_anything_is_removed(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    folders = _user_folders(shared)
    (shared / "run-old").mkdir()
    (shared / "run-old" / MARKER).write_text("x")  # even a marked one: the base is not ours
    with pytest.raises(SynesthesiaError, match="accessible to other users"):
        cleanup_stale_runs(shared, shm_dir=tmp_path)
    assert all(f.exists() for f in folders) and (shared / "run-old").exists()


def test_cleanup_and_run_cli_refuse_a_shared_base_in_one_line(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    folders = _user_folders(shared)
    env = {"SYNESTHESIA_RUNTIME_DIR": str(shared)}
    for args in (("cleanup",), ("run", "--headless", "--duration", "1")):
        done = _cli(*args, env=env)
        assert done.returncode == 1, done
        assert "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and "accessible to other users" in done.stderr
    assert all((f / "precious.txt").exists() for f in folders)
