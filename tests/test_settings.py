"""The settings tree: layering and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from synesthesia.settings import Settings, SettingsError, load_settings


def test_defaults_are_the_embedded_default() -> None:
    s = load_settings(environ={})
    assert s.capture.source == "demo"
    assert s.world.backend == "procedural"
    assert (s.world.width, s.world.height, s.world.fps) == (1280, 704, 25.0)
    assert s.encode.mode == "nano" and s.encode.bitrate_bps == 2_000_000
    assert s.serve.host == "127.0.0.1"


def test_layers_override_in_order(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text('[serve]\nport = 9000\nhost = "0.0.0.0"\n[world]\nfps = 30\n')
    env = {"SYNESTHESIA_SERVE__PORT": "9100", "SYNESTHESIA_HEADLESS": "true"}
    s = load_settings(config, environ=env, overrides={"serve": {"port": 9200}})
    assert s.serve.port == 9200  # flag beats env beats file
    assert s.serve.host == "0.0.0.0"  # file beats default
    assert s.world.fps == 30.0
    assert s.headless is True
    s = load_settings(config, environ=env)
    assert s.serve.port == 9100


@pytest.mark.parametrize(
    "data, key, words",
    [
        ({"serve": {"prot": 1}}, "serve.prot", "unknown setting"),
        ({"world": {"backend": "dalle"}}, "world.backend", "'dalle'"),
        ({"world": {"fps": 0}}, "world.fps", "must be in"),
        ({"serve": {"port": "http"}}, "serve.port", "expected an integer"),
        ({"encode": {"quality": 101}}, "encode.quality", "101"),
        ({"headless": "maybe"}, "headless", "expected true or false"),
        ({"world": 3}, "world", "expected a table"),
        ({"listen": {"vad_threshold": 0.1}}, "listen.vad_threshold", "must be in 0.2..0.95"),
    ],
)
def test_errors_name_the_key_and_value(data: dict[str, object], key: str, words: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_dict(data)
    assert info.value.key == key
    assert str(info.value).startswith(f"{key}: ") and words in str(info.value)


def test_settings_that_cannot_work_together_are_refused() -> None:
    with pytest.raises(SettingsError, match=r"^record: needs the serve stage"):
        load_settings(environ={}, overrides={"headless": True, "record": "out.avi"})
    with pytest.raises(SettingsError, match=r"^capture\.source: 'browser' needs the serve stage"):
        load_settings(environ={"SYNESTHESIA_HEADLESS": "1"}, overrides={"capture": {"source": "browser"}})
    with pytest.raises(SettingsError, match=r"^capture\.wait_s: invalid value -1"):
        load_settings(environ={}, overrides={"capture": {"wait_s": -1}})
    assert load_settings(environ={}, overrides={"record": "out.avi"}).record == "out.avi"


def test_environment_errors_name_the_key() -> None:
    with pytest.raises(SettingsError, match=r"^serve\.port: invalid value 'x'"):
        load_settings(environ={"SYNESTHESIA_SERVE__PORT": "x"})
    with pytest.raises(SettingsError, match=r"^wrld: unknown setting"):
        load_settings(environ={"SYNESTHESIA_WRLD__FPS": "30"})


def test_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="no such file"):
        load_settings(tmp_path / "missing.toml", environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[serve\nport=1")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(bad, environ={})


def test_optional_values_accept_none_from_text() -> None:
    s = load_settings(environ={"SYNESTHESIA_DURATION_S": "2.5", "SYNESTHESIA_SERVE__TOKEN": "none"})
    assert s.duration_s == 2.5 and s.serve.token is None
    assert Settings.from_dict(s.to_dict()) == s


def test_the_vad_threshold_reaches_the_listener() -> None:
    from synesthesia.stages.listen import listener_config

    config = listener_config(load_settings(environ={"SYNESTHESIA_LISTEN__VAD_THRESHOLD": "0.7"}))
    assert config.endpointer.threshold == 0.7
    assert listener_config(load_settings(environ={})).endpointer.threshold == 0.5
