"""`synesthesia serve --demo` as a person runs it: a real process, its printed URL and token."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def _serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "synesthesia", "serve", "--demo", "--port", "0", "--size", "320x176", *args],
        capture_output=True, text=True, timeout=60,
    )


def test_serve_demo_records_a_clip(tmp_path: Path) -> None:
    clip = tmp_path / "clip.avi"
    done = _serve("--seconds", "1.5", "--record", str(clip))
    assert done.returncode == 0, done.stderr
    assert "viewer at http://127.0.0.1:" in done.stdout and "token" not in done.stdout
    assert clip.read_bytes()[:4] == b"RIFF" and "recorded" in done.stdout


def test_serve_beyond_loopback_prints_a_token() -> None:
    done = _serve("--host", "0.0.0.0", "--seconds", "0.5")
    assert done.returncode == 0, done.stderr
    token = next(line.split()[-1] for line in done.stdout.splitlines() if "access token" in line)
    assert len(token) >= 16 and f"?token={token}" in done.stdout


@pytest.mark.parametrize(("args", "message"), [(("--size", "big"), "--size"), (("--token", "short"), "token")])
def test_serve_rejects_bad_options(args: tuple[str, ...], message: str) -> None:
    done = _serve(*args, "--seconds", "0.1")
    assert done.returncode != 0 and message in done.stderr
