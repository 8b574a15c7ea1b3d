"""The optional backends: emulate (latency profile), onnx (a tiny generated model), odyssey
(against a fake SDK module with the real one's interface), and the snapshot command."""

from __future__ import annotations

import asyncio
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from synesthesia.cli import main as cli_main
from synesthesia.errors import BackendTimeout, BackendUnavailable, IntentRejected, WorldError
from synesthesia.world import STATE_NAMES, Intent, create_backend
from synesthesia.world.emulate import EmulatedBackend, LatencyProfile

MS = 1_000_000


# --- emulate ----------------------------------------------------------------------------------
def test_emulate_delays_the_intent_by_its_profile() -> None:
    world = EmulatedBackend(96, 64, profile=LatencyProfile(200.0, 0.0, "constant"))
    world.poll(0)
    world.apply(Intent({"night": 1.0}, trace_id="late", t_ns=10 * MS))
    early = world.poll(150 * MS)
    assert early.first_for == () and world.inner.target()["night"] == 0.0
    later = world.poll(230 * MS)
    assert later.first_for == ("late",)
    assert world.timings["late"] == (10 * MS, 230 * MS)
    with pytest.raises(IntentRejected):
        world.apply(Intent({"nope": 1.0}))


def test_latency_profile_defaults_to_the_reference_wall() -> None:
    profile = LatencyProfile()
    assert (profile.mean_ms, profile.std_ms) == (1274.8, 42.3)
    rng = np.random.default_rng(0)
    for dist in ("normal", "lognormal", "uniform"):
        p = LatencyProfile(distribution=dist)  # type: ignore[arg-type]
        samples = np.array([p.sample_ms(rng) for _ in range(2000)])
        assert abs(samples.mean() - 1274.8) < 6 and abs(samples.std() - 42.3) < 5
    with pytest.raises(ValueError, match="distribution"):
        LatencyProfile(distribution="cauchy")  # type: ignore[arg-type]


# --- onnx -----------------------------------------------------------------------------------
def tiny_generator(h: int = 8, w: int = 16, nhwc_uint8: bool = False) -> bytes:
    """state [1, S] -> MatMul -> Sigmoid -> image [1, 3, h, w] (or uint8 NHWC)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    s = len(STATE_NAMES)
    weights = np.random.default_rng(1).normal(0, 2, (s, 3 * h * w)).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["state", "W"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["s"]),
        helper.make_node("Reshape", ["s", "shape"], ["image" if not nhwc_uint8 else "nchw"]),
    ]
    inits = [numpy_helper.from_array(weights, "W"), numpy_helper.from_array(np.array([1, 3, h, w], np.int64), "shape")]
    out_type, out_shape = TensorProto.FLOAT, [1, 3, h, w]
    if nhwc_uint8:
        nodes += [
            helper.make_node("Transpose", ["nchw"], ["nhwc"], perm=[0, 2, 3, 1]),
            helper.make_node("Mul", ["nhwc", "k255"], ["scaled"]),
            helper.make_node("Cast", ["scaled"], ["image"], to=TensorProto.UINT8),
        ]
        inits.append(numpy_helper.from_array(np.array(255.0, np.float32), "k255"))
        out_type, out_shape = TensorProto.UINT8, [1, h, w, 3]
    graph = helper.make_graph(
        nodes,
        "tiny_generator",
        [helper.make_tensor_value_info("state", TensorProto.FLOAT, [1, s])],
        [helper.make_tensor_value_info("image", out_type, out_shape)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


@pytest.mark.parametrize("nhwc", [False, True])
def test_onnx_backend_turns_state_into_frames(nhwc: bool, tmp_path: Path) -> None:
    path = tmp_path / "gen.onnx"
    path.write_bytes(tiny_generator(nhwc_uint8=nhwc))
    world = create_backend("onnx", model=path, width=64, height=32)
    assert "CPUExecutionProvider" in world.providers  # type: ignore[attr-defined]
    first = world.poll(0)
    assert first is not None and first.pixels.shape == (32, 64, 3) and first.pixels.dtype == np.uint8
    world.apply(Intent({"space": 1.0, "night": 1.0}, trace_id="s"))
    second = world.poll(40 * MS)
    assert second is not None and second.first_for == ("s",)
    assert not np.array_equal(first.pixels, second.pixels)


def test_onnx_backend_explains_what_it_needs(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailable, match="not found"):
        create_backend("onnx", model=tmp_path / "missing.onnx")
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "wrong",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    with pytest.raises(WorldError, match="'state'"):
        create_backend("onnx", model=model.SerializeToString())


# --- odyssey ------------------------------------------------------------------------------------
class FakeOdyssey:
    """The SDK's client surface; behaviour steered by class attributes per test."""

    instances: list[FakeOdyssey] = []
    hang_connect = False
    fail_interacts = 0
    auth_error = False

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.calls: list[tuple[str, Any]] = []
        self.cb: dict[str, Any] = {}
        self.task: asyncio.Task[None] | None = None
        self.prompt = ""
        FakeOdyssey.instances.append(self)

    async def connect(self, **callbacks: Any) -> None:
        if FakeOdyssey.auth_error:
            raise PermissionError("401 Unauthorized")
        if FakeOdyssey.hang_connect:
            await asyncio.sleep(60)
        self.cb = callbacks
        self.calls.append(("connect", None))

    async def start_stream(self, prompt: str, portrait: bool = False) -> str:
        self.calls.append(("start_stream", prompt))
        self.prompt = prompt
        self.cb["on_stream_started"]("stream-1")
        self.task = asyncio.get_running_loop().create_task(self._frames())
        return "stream-1"

    async def _frames(self) -> None:
        n = 0
        while True:
            n += 1
            frame = types.SimpleNamespace(data=np.full((704, 1280, 3), n % 256, np.uint8), timestamp=n)
            self.cb["on_video_frame"](frame)
            await asyncio.sleep(0.01)

    async def interact(self, prompt: str) -> str:
        if FakeOdyssey.fail_interacts > 0:
            FakeOdyssey.fail_interacts -= 1
            raise ConnectionError("socket closed")
        self.calls.append(("interact", prompt))
        self.prompt = prompt
        asyncio.get_running_loop().call_later(0.02, self.cb["on_interact_acknowledged"], prompt)
        return prompt

    async def end_stream(self) -> None:
        self.calls.append(("end_stream", None))
        if self.task:
            self.task.cancel()

    async def disconnect(self) -> None:
        self.calls.append(("disconnect", None))


@pytest.fixture
def fake_sdk(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType("odyssey")
    module.Odyssey = FakeOdyssey  # type: ignore[attr-defined]
    FakeOdyssey.instances = []
    FakeOdyssey.hang_connect = False
    FakeOdyssey.fail_interacts = 0
    FakeOdyssey.auth_error = False
    monkeypatch.setitem(sys.modules, "odyssey", module)
    monkeypatch.setenv("ODYSSEY_API_KEY", "test-key")
    return module


def wait_for(cond: Any, timeout: float = 3.0) -> None:
    import time

    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)


def test_odyssey_streams_frames_and_times_intents(fake_sdk: types.ModuleType) -> None:
    world = create_backend("odyssey", timeout_s=1.0)
    try:
        world.start("a quiet beach")
        client = FakeOdyssey.instances[-1]
        assert client.api_key == "test-key" and ("start_stream", "a quiet beach") in client.calls
        wait_for(lambda: world.poll(0) is not None)
        world.apply(Intent({"storm": 1.0}, prompt="a storm rolls in", trace_id="i1"))
        marked: list[Any] = []

        def got_mark() -> bool:
            f = world.poll(0)
            if f is not None and "i1" in f.first_for:
                marked.append(f)
            return bool(marked)

        wait_for(got_mark)
        t = world.timings["i1"]  # type: ignore[attr-defined]
        assert 0 < t.sent_ns < t.acknowledged_ns <= t.first_frame_ns
        assert marked[0].pixels.shape == (704, 1280, 3)
    finally:
        world.stop()
    assert ("end_stream", None) in client.calls and ("disconnect", None) in client.calls


def test_odyssey_reconnects_with_the_current_prompt(fake_sdk: types.ModuleType) -> None:
    world = create_backend("odyssey", timeout_s=1.0, backoff_s=0.01)
    try:
        world.start("first prompt")
        FakeOdyssey.fail_interacts = 1
        world.apply(Intent({}, prompt="snowy forest", trace_id="i2"))
        wait_for(lambda: world.reconnects == 1)  # type: ignore[attr-defined]
        newest = FakeOdyssey.instances[-1]
        assert len(FakeOdyssey.instances) == 2
        assert ("start_stream", "snowy forest") in newest.calls
        assert "ConnectionError" in str(world.last_error)  # type: ignore[attr-defined]
    finally:
        world.stop()


def test_odyssey_timeouts_and_error_mapping(fake_sdk: types.ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    FakeOdyssey.hang_connect = True
    world = create_backend("odyssey", timeout_s=0.1)
    with pytest.raises(BackendTimeout, match="connect"):
        world.start("x")
    world.stop()
    FakeOdyssey.hang_connect = False
    FakeOdyssey.auth_error = True
    world = create_backend("odyssey", timeout_s=0.5)
    with pytest.raises(BackendUnavailable, match="API key"):
        world.start("x")
    world.stop()
    with pytest.raises(IntentRejected):
        world.apply(Intent({"rain": float("inf")}))
    monkeypatch.delenv("ODYSSEY_API_KEY")
    with pytest.raises(BackendUnavailable, match="ODYSSEY_API_KEY"):
        create_backend("odyssey")
    monkeypatch.setitem(sys.modules, "odyssey", None)
    with pytest.raises(BackendUnavailable, match="Python >= 3.12"):
        create_backend("odyssey")


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown 'dream'"):
        create_backend("dream")


# --- snapshot -----------------------------------------------------------------------------------
def test_snapshot_writes_png_and_jpeg(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png, jpg = tmp_path / "storm.png", tmp_path / "storm.jpg"
    text = "a storm over the mountains at night"
    assert cli_main(["snapshot", text, "--out", str(png), "--size", "160x88", "--seed", "3"]) == 0
    assert "storm, mountains, night" in capsys.readouterr().err
    assert cli_main(["snapshot", text, "--out", str(jpg), "--size", "160x88", "--seed", "3"]) == 0
    a = np.asarray(Image.open(png).convert("RGB"))
    b = np.asarray(Image.open(jpg).convert("RGB"))
    assert a.shape == b.shape == (88, 160, 3)
    assert np.mean(np.abs(a.astype(int) - b.astype(int))) < 6
    with pytest.raises(SystemExit, match="--out"):
        cli_main(["snapshot", text, "--out", str(tmp_path / "x.gif")])
