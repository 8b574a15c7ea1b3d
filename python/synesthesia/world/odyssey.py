"""The `odyssey` backend: an adapter for Odyssey's official Python SDK (a remote world model
that streams 1280x704 RGB frames about every 50 ms). Runs in the world stage process, with the
SDK's asyncio client on a private event-loop thread.

What it adds to the SDK: a timeout on every awaited call, reconnection that restores the
current prompt, error mapping onto Synesthesia's errors, and timing of each intent from
send -> acknowledged -> first frame after the acknowledgement (``timings``).

The SDK is optional (it needs Python >= 3.12 and the network): it is imported when the backend
is created, and its absence is reported as :class:`BackendUnavailable`. Tested against a fake
module with the SDK's interface only; not run against the live service.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from synesthesia.errors import BackendTimeout, BackendUnavailable, WorldError
from synesthesia.world.base import DEFAULT_SIZE, Intent, LatestFrame, WorldFrame, validate_intent

__all__ = ["OdysseyBackend", "IntentTiming"]

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class IntentTiming:
    """Monotonic ns at each hop of one intent through the remote model (0: not yet)."""

    sent_ns: int = 0
    acknowledged_ns: int = 0
    first_frame_ns: int = 0


def _import_sdk() -> ModuleType:
    try:
        return importlib.import_module("odyssey")
    except ImportError as e:
        raise BackendUnavailable(
            "the odyssey backend needs Odyssey's Python SDK (Python >= 3.12, network access): "
            "pip install odyssey, then set ODYSSEY_API_KEY"
        ) from e


def _frame_array(args: tuple[Any, ...]) -> tuple[npt.NDArray[np.uint8], int | None]:
    """The RGB array and timestamp from an ``on_video_frame`` call, whatever its packaging."""
    obj = args[0]
    ts = args[1] if len(args) > 1 else getattr(obj, "timestamp", None)
    for attr in ("data", "frame", "array"):
        if hasattr(obj, attr) and not isinstance(obj, np.ndarray):
            obj = getattr(obj, attr)
            break
    arr = np.asarray(obj)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise WorldError(f"odyssey frame: expected uint8 (H, W, 3), got {arr.dtype}{list(arr.shape)}")
    return arr, None if ts is None else int(ts)


class OdysseyBackend:
    name = "odyssey"

    def __init__(
        self,
        width: int = DEFAULT_SIZE[0],
        height: int = DEFAULT_SIZE[1],
        api_key: str | None = None,
        timeout_s: float = 10.0,
        reconnect_attempts: int = 3,
        backoff_s: float = 0.5,
        portrait: bool = False,
        sdk: ModuleType | None = None,
    ) -> None:
        self._sdk = sdk if sdk is not None else _import_sdk()
        self._api_key = api_key or os.environ.get("ODYSSEY_API_KEY", "")
        if not self._api_key:
            raise BackendUnavailable("the odyssey backend needs an API key: set ODYSSEY_API_KEY")
        self.width, self.height = width, height
        self.timeout_s, self.reconnect_attempts, self.backoff_s = timeout_s, reconnect_attempts, backoff_s
        self.portrait = portrait
        self._slot = LatestFrame()
        self._seq = 0
        self._client: Any = None
        self._prompt = ""
        self._started = asyncio.Event()
        self._sent: deque[str] = deque()
        self._acked: list[str] = []
        self.timings: dict[str, IntentTiming] = {}
        self.status = "idle"
        self.last_error: str | None = None
        self.reconnects = 0
        self._reconnecting = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="odyssey-sdk", daemon=True)
        self._thread.start()

    # --- plumbing ------------------------------------------------------------------------------
    async def _timed(self, what: str, coro: Coroutine[Any, Any, T]) -> T:
        try:
            return await asyncio.wait_for(coro, self.timeout_s)
        except asyncio.TimeoutError as e:
            raise BackendTimeout(f"odyssey {what}: no answer within {self.timeout_s} s") from e
        except (WorldError, asyncio.CancelledError):
            raise
        except Exception as e:  # the SDK's own errors, mapped once here
            if "auth" in type(e).__name__.lower() or "unauthor" in str(e).lower():
                raise BackendUnavailable(f"odyssey {what}: API key rejected ({e})") from e
            raise WorldError(f"odyssey {what} failed: {type(e).__name__}: {e}") from e

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run on the SDK thread and wait (the coroutine carries its own timeouts)."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(self.timeout_s * 4 + 5)

    # --- SDK callbacks (on the SDK thread) -------------------------------------------------------
    def _on_video_frame(self, *args: Any) -> None:
        try:
            arr, _ts = _frame_array(args)
        except WorldError as e:
            self.last_error = str(e)
            return
        now = time.monotonic_ns()
        first = tuple(self._acked)
        for tid in first:
            self.timings[tid].first_frame_ns = now
        self._acked.clear()
        self._seq += 1
        self._slot.put(WorldFrame(arr, self._seq, now, first, first))

    def _on_stream_started(self, *args: Any) -> None:
        self._started.set()

    def _on_interact_acknowledged(self, *args: Any) -> None:
        if self._sent:
            tid = self._sent.popleft()
            self.timings[tid].acknowledged_ns = time.monotonic_ns()
            self._acked.append(tid)

    def _on_error(self, *args: Any) -> None:
        self.last_error = " ".join(str(a) for a in args) or "stream error"
        log.warning("odyssey: %s", self.last_error)
        if not self._reconnecting and self.status == "streaming":
            self._loop.create_task(self._reconnect())

    def _on_status_change(self, *args: Any) -> None:
        log.info("odyssey status: %s", args)

    # --- connection ------------------------------------------------------------------------------
    async def _open(self, prompt: str) -> None:
        self._client = self._sdk.Odyssey(api_key=self._api_key)
        self._started = asyncio.Event()
        await self._timed(
            "connect",
            self._client.connect(
                on_video_frame=self._on_video_frame,
                on_stream_started=self._on_stream_started,
                on_interact_acknowledged=self._on_interact_acknowledged,
                on_stream_error=self._on_error,
                on_error=self._on_error,
                on_status_change=self._on_status_change,
            ),
        )
        await self._timed("start_stream", self._client.start_stream(prompt, portrait=self.portrait))
        self.status = "streaming"

    async def _close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        for what, call in (("end_stream", client.end_stream), ("disconnect", client.disconnect)):
            try:
                await self._timed(what, call())
            except WorldError as e:
                log.warning("%s", e)

    async def _reconnect(self) -> None:
        """Reopen the stream on the current prompt, with backoff; give up after the attempts."""
        self._reconnecting = True
        self.status = "reconnecting"
        try:
            for attempt in range(1, self.reconnect_attempts + 1):
                await self._close()
                try:
                    await self._open(self._prompt)
                    self.reconnects += 1
                    return
                except WorldError as e:
                    self.last_error = str(e)
                    log.warning("odyssey reconnect %d/%d failed: %s", attempt, self.reconnect_attempts, e)
                    await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
            self.status = "failed"
        finally:
            self._reconnecting = False

    async def _interact(self, prompt: str, trace_id: str) -> None:
        timing = self.timings.setdefault(trace_id, IntentTiming())
        self._sent.append(trace_id)
        timing.sent_ns = time.monotonic_ns()
        try:
            await self._timed("interact", self._client.interact(prompt))
        except WorldError as e:
            self.last_error = str(e)
            if trace_id in self._sent:
                self._sent.remove(trace_id)
            log.warning("%s; reconnecting", e)
            if not self._reconnecting:
                await self._reconnect()

    # --- interface -------------------------------------------------------------------------------
    def start(self, prompt: str = "") -> None:
        self._prompt = prompt or "a calm landscape"
        self._run(self._open(self._prompt))

    def apply(self, intent: Intent) -> None:
        validate_intent(intent, None)
        prompt = intent.prompt.strip() or " ".join(intent.keywords)
        # The prompt in force is what a reconnect restores.
        self._prompt = prompt
        asyncio.run_coroutine_threadsafe(self._interact(prompt, intent.trace_id or f"anon-{time.monotonic_ns()}"), self._loop)

    def feed_audio(self, samples: npt.NDArray[np.float32]) -> None:
        pass  # the remote model takes no audio

    def poll(self, now_ns: int) -> WorldFrame | None:
        return self._slot.take()

    def stop(self) -> None:
        try:
            self._run(self._close())
        finally:
            self.status = "stopped"
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            if not self._thread.is_alive():
                self._loop.close()
