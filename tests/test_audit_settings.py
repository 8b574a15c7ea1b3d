"""Defects 4 and 5: every setting that cannot work is refused in one line before any stage
starts (no traceback, no crash-looping stage), and no number setting accepts nan or inf."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synesthesia.settings import SettingsError, load_settings


def _run(tmp: Path, *args: str, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str], float]:
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "synesthesia", "run", "--headless", "--duration", "30", *args],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "SYNESTHESIA_RUNTIME_DIR": str(tmp / "rt"), **(env or {})})
    return done, time.monotonic() - t0


def _one_line(done: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert done.returncode != 0, done
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert all(n in lines[0] for n in needles), lines[0]
    assert done.stdout == "", done.stdout  # no stage was started


def test_config_files_that_are_not_toml_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b'[world]\nprompt = "caf\xe9"\n')  # Latin-1, not UTF-8
    with pytest.raises(SettingsError, match="not UTF-8"):
        load_settings(bad, environ={})
    with pytest.raises(SettingsError, match="is a directory"):
        load_settings(tmp_path, environ={})
    done, _ = _run(tmp_path, "--config", str(tmp_path))
    _one_line(done, "config:", "directory")


def test_an_env_value_for_a_whole_section_is_one_line() -> None:
    for env in ({"SYNESTHESIA_CAPTURE": "1", "SYNESTHESIA_CAPTURE__SOURCE": "x"},
                {"SYNESTHESIA_CAPTURE__SOURCE": "x", "SYNESTHESIA_CAPTURE": "1"}):
        with pytest.raises(SettingsError, match="^capture"):
            load_settings(environ=env)


@pytest.mark.parametrize(("env", "key"), [
    ({"SYNESTHESIA_SUPERVISOR__MAX_RESTARTS": "-1"}, "supervisor.max_restarts"),
    ({"SYNESTHESIA_SUPERVISOR__RESTART_BACKOFF_S": "-0.5"}, "supervisor.restart_backoff_s"),
    ({"SYNESTHESIA_SUPERVISOR__HEARTBEAT_TIMEOUT_S": "nan"}, "supervisor.heartbeat_timeout_s"),
    ({"SYNESTHESIA_SUPERVISOR__HEARTBEAT_TIMEOUT_S": "inf"}, "supervisor.heartbeat_timeout_s"),
    ({"SYNESTHESIA_WORLD__FPS": "nan"}, "world.fps"),
    ({"SYNESTHESIA_DURATION_S": "-inf"}, "duration_s"),
    ({"SYNESTHESIA_CAPTURE__WAIT_S": "NaN"}, "capture.wait_s"),
    ({"SYNESTHESIA_WORLD__WIDTH": "17"}, "world.width"),
    ({"SYNESTHESIA_SERVE__TOKEN": "short"}, "serve.token"),
])
def test_out_of_range_and_non_finite_numbers_are_refused(env: dict[str, str], key: str) -> None:
    with pytest.raises(SettingsError, match=f"^{key.replace('.', '[.]')}: "):
        load_settings(environ=env)


def test_non_finite_numbers_are_refused_from_every_layer(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[supervisor]\nheartbeat_timeout_s = nan\n")
    with pytest.raises(SettingsError, match="finite"):
        load_settings(config, environ={})
    with pytest.raises(SettingsError, match="finite"):
        load_settings(environ={}, overrides={"world": {"time_constant_s": float("inf")}})


def test_trace_and_record_paths_are_checked(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="^trace: .* is a directory"):
        load_settings(environ={"SYNESTHESIA_TRACE": str(tmp_path)})
    with pytest.raises(SettingsError, match="^trace: the folder .* does not exist"):
        load_settings(environ={"SYNESTHESIA_TRACE": str(tmp_path / "missing" / "t.jsonl")})
    assert not (tmp_path / "missing").exists()
    assert load_settings(environ={"SYNESTHESIA_TRACE": str(tmp_path / "t.jsonl")}).trace


def test_run_refuses_what_used_to_crash_loop_a_stage(tmp_path: Path) -> None:
    """Each of these started the stages, which then crashed for seconds and printed pages."""
    cases = [
        ({"SYNESTHESIA_WORLD__WIDTH": "17"}, (), ("world.width",)),
        ({"SYNESTHESIA_SERVE__TOKEN": "short"}, (), ("serve.token",)),
        ({"SYNESTHESIA_SUPERVISOR__HEARTBEAT_TIMEOUT_S": "nan"}, (), ("heartbeat_timeout_s",)),
        ({}, ("--vocabulary", str(tmp_path / "missing.toml")), ("nlp.vocabulary", "missing.toml")),
    ]
    for env, args, needles in cases:
        done, took = _run(tmp_path, *args, env=env)
        _one_line(done, *needles)
        assert took < 20


def test_a_host_that_cannot_be_bound_is_refused_before_starting(tmp_path: Path) -> None:
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "synesthesia", "run", "--duration", "30", "--host", "no-such-host.invalid",
                           "--port", "0"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "SYNESTHESIA_RUNTIME_DIR": str(tmp_path / "rt")})
    _one_line(done, "serve.host", "no-such-host.invalid")
    assert time.monotonic() - t0 < 20
