"""The `onnx` backend: a user-supplied generator model run with onnxruntime (CUDA provider
when present, else CPU), conditioned on the same scene state the procedural world uses.
Runs in the world stage process. onnxruntime is optional (``pip install synesthesia[onnx]``).

Model contract
--------------
Inputs (by name):
  ``state``  float32 [1, S]: the scene state vector, S = len(STATE_NAMES), in that order
             (scene mixture, time mixture, weather, effects, speed, wind, calm, tint).
  ``t``      float32 [1] (optional): world time in seconds, for models that animate.
Output: the first output, an image either
  float32 [1, 3, H, W] in [0, 1] (NCHW, the usual generator layout), or
  uint8 [1, H, W, 3] (NHWC).
Any H, W: frames are resized (bilinear, Rust kernel) to the backend's size when they differ.
Intents move the state exactly as in the procedural world (same vocabulary and easing).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from synesthesia import kernels
from synesthesia.errors import BackendUnavailable, WorldError
from synesthesia.world.base import DEFAULT_SIZE, Intent, WorldFrame
from synesthesia.world.procedural import STATE_NAMES, SteeredScene

__all__ = ["OnnxBackend"]


class OnnxBackend:
    name = "onnx"

    def __init__(
        self,
        model: str | Path | bytes,
        width: int = DEFAULT_SIZE[0],
        height: int = DEFAULT_SIZE[1],
        tau: float = 0.8,
        jump: float = 0.35,
        providers: Sequence[str] | None = None,
    ) -> None:
        try:
            import onnxruntime as ort  # type: ignore[import-untyped]
        except ImportError as e:
            raise BackendUnavailable(
                "the onnx backend needs onnxruntime: pip install 'synesthesia[onnx]' (or onnxruntime-gpu)"
            ) from e
        if isinstance(model, (str, Path)) and not Path(model).is_file():
            raise BackendUnavailable(f"onnx model not found: {model}")
        available = ort.get_available_providers()
        chosen = list(providers) if providers else [
            p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available
        ]
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        source = model if isinstance(model, bytes) else str(model)
        self._session = ort.InferenceSession(source, sess_options=opts, providers=chosen)
        self.providers = self._session.get_providers()
        inputs = {i.name: i for i in self._session.get_inputs()}
        if "state" not in inputs:
            raise WorldError(f"onnx model: needs an input named 'state' [1, {len(STATE_NAMES)}]; has {sorted(inputs)}")
        self._has_t = "t" in inputs
        self._output = self._session.get_outputs()[0].name
        self.width, self.height = width, height
        self._steer = SteeredScene(tau, jump)
        self._seq = 0

    def start(self, prompt: str = "") -> None:
        self._steer.start(prompt)

    def apply(self, intent: Intent) -> None:
        self._steer.apply(intent)

    def feed_audio(self, samples: npt.NDArray[np.float32]) -> None:
        pass  # the contract has no audio input

    def poll(self, now_ns: int) -> WorldFrame:
        values, t, first_for, reflects = self._steer.advance(now_ns)
        feeds = {"state": np.asarray(values, dtype=np.float32)[None, :]}
        if self._has_t:
            feeds["t"] = np.array([t], dtype=np.float32)
        raw = self._session.run([self._output], feeds)[0]
        self._seq += 1
        return WorldFrame(self._to_rgb(np.asarray(raw)), self._seq, now_ns, first_for, reflects)

    def _to_rgb(self, raw: npt.NDArray[np.generic]) -> npt.NDArray[np.uint8]:
        if raw.ndim == 4 and raw.shape[0] == 1 and raw.shape[1] == 3 and raw.dtype != np.uint8:
            img = np.ascontiguousarray(np.clip(np.transpose(raw[0], (1, 2, 0)) * 255.0 + 0.5, 0, 255), dtype=np.uint8)
        elif raw.ndim == 4 and raw.shape[0] == 1 and raw.shape[3] == 3 and raw.dtype == np.uint8:
            img = np.ascontiguousarray(raw[0])
        else:
            raise WorldError(
                f"onnx model output {raw.dtype}{list(raw.shape)}: expected float32 [1,3,H,W] or uint8 [1,H,W,3]"
            )
        if img.shape[:2] != (self.height, self.width):
            img = kernels.resize(img, (self.width, self.height), "bilinear")
        return img

    def stop(self) -> None:
        pass
