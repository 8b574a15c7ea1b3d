"""A real headless chromium attached to the viewer, driven over the DevTools protocol.

`bench e2e --browser` uses it so that the last two hops of the loop (`sent`, `displayed`) are
measured on a page that really decodes and draws the frames; the viewer tests use it too. Only
chromium's own remote-debugging socket is spoken to: no driver package is needed.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

__all__ = ["BrowserError", "find_chromium", "require_chromium", "launch_chromium", "Cdp", "Browser", "VIEWER_STATE", "CANVAS_DIGEST",
           "NO_RGBA_COPY"]

#: Where to look for chromium, after ``$SYNESTHESIA_CHROMIUM``.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


class BrowserError(RuntimeError):
    """Chromium is missing, did not start, or the page did not reach an expected state."""


def find_chromium() -> str | None:
    for name in (os.environ.get("SYNESTHESIA_CHROMIUM", ""), *CHROMIUM_NAMES):
        if name and (path := shutil.which(name)):
            return path
    return None


def require_chromium() -> str:
    """The chromium to use, or :class:`BrowserError` saying how to get one."""
    found = find_chromium()
    if found is None:
        raise BrowserError("no chromium found: install it (Debian: apt-get install chromium) or set "
                           "SYNESTHESIA_CHROMIUM to its path")
    return found


def launch_chromium(exe: str, profile: Path, log_path: Path, fake_audio: Path | None = None,
                    extra_args: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
    """Start headless chromium with a fresh profile and remote debugging on a free port. With
    ``fake_audio`` (a WAV), the page's microphone plays that file; permissions are granted."""
    args = [
        exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-default-apps", "--no-first-run", "--no-default-browser-check", "--mute-audio",
        "--autoplay-policy=no-user-gesture-required", "--window-size=1100,700",
        "--remote-debugging-port=0", f"--user-data-dir={profile}",
    ]
    if fake_audio is not None:
        args += ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                 f"--use-file-for-fake-audio-capture={fake_audio}"]
    args += extra_args
    with open(log_path, "wb") as log:  # the child keeps its own copy of the handle
        return subprocess.Popen([*args, "about:blank"], stdout=subprocess.DEVNULL, stderr=log)


def devtools_url(proc: subprocess.Popen[bytes], profile: Path, log_path: Path, timeout: float = 60.0) -> str:
    """The browser's DevTools WebSocket address, once chromium has written it."""
    port_file = profile / "DevToolsActivePort"
    end = time.monotonic() + timeout
    while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
        if proc.poll() is not None or time.monotonic() > end:
            tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
            raise BrowserError(f"chromium did not start within {timeout:g} s: {tail}")
        time.sleep(0.1)
    port, path = port_file.read_text().splitlines()[:2]
    return f"ws://127.0.0.1:{port}{path}"


class Cdp:
    """A minimal DevTools-protocol client: one browser connection, one attached page session."""

    def __init__(self, ws_url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.ids = itertools.count(1)
        self.page: str | None = None
        try:
            self.session, self.ws = self.loop.run_until_complete(self._connect(ws_url))
        except BaseException:
            self.loop.close()
            raise

    @staticmethod
    async def _connect(ws_url: str) -> tuple[aiohttp.ClientSession, aiohttp.ClientWebSocketResponse]:
        session = aiohttp.ClientSession()
        try:
            return session, await session.ws_connect(ws_url, max_msg_size=64 << 20)
        except BaseException:
            await session.close()
            raise

    def call(self, method: str, params: dict[str, Any] | None = None, timeout: float = 20.0) -> dict[str, Any]:
        return self.loop.run_until_complete(self._call(method, params or {}, timeout))

    async def _call(self, method: str, params: dict[str, Any], timeout: float) -> dict[str, Any]:
        msg_id = next(self.ids)
        msg: dict[str, Any] = {"id": msg_id, "method": method, "params": params}
        if self.page is not None and not method.startswith("Target."):
            msg["sessionId"] = self.page
        await self.ws.send_str(json.dumps(msg))
        end = time.monotonic() + timeout
        while True:
            reply = await self.ws.receive(timeout=max(0.1, end - time.monotonic()))
            if reply.type != aiohttp.WSMsgType.TEXT:
                raise BrowserError(f"DevTools connection ended: {reply.type}")
            data = json.loads(reply.data)
            if data.get("id") == msg_id:
                if "error" in data:
                    raise BrowserError(f"{method}: {data['error']}")
                return data["result"]  # type: ignore[no-any-return]

    def open(self, url: str) -> None:
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.page = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.call("Page.enable")
        self.call("Page.navigate", {"url": url})

    def js(self, expression: str, gesture: bool = False) -> Any:
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True, "userGesture": gesture},
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"page threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait(self, expression: str, timeout: float = 15.0, what: str = "", state: str = "") -> Any:
        """Poll ``expression`` until it is truthy; on timeout raise with ``state`` (a page
        expression) evaluated, so the error shows what the page was doing."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.1)
        seen = f"; page state: {self.js(state)}" if state else ""
        raise BrowserError(f"timed out after {timeout:g} s waiting for {what or expression}{seen}")

    def close(self) -> None:
        self.loop.run_until_complete(self.ws.close())
        self.loop.run_until_complete(self.session.close())
        self.loop.close()


#: The viewer's state, for error messages (the last few events only).
VIEWER_STATE = ("JSON.stringify(window.synesthesia && "
                "{...window.synesthesia, events: window.synesthesia.events.slice(-5)})")

#: Page expression: a hash, the size and the mean RGB of what the viewer's canvas shows now.
CANVAS_DIGEST = """(() => {
  const c = document.getElementById('view');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let h = 0, sum = [0, 0, 0];
  for (let i = 0; i < d.length; i += 4) { h = (h * 31 + d[i] + d[i + 1] * 7 + d[i + 2] * 13) | 0; sum[0] += d[i]; sum[1] += d[i + 1]; sum[2] += d[i + 2]; }
  const n = d.length / 4;
  return {hash: h, w: c.width, h: c.height, mean: sum.map((s) => s / n)};
})()"""


#: A script to run ahead of the viewer: VideoFrame.copyTo cannot convert to RGBA (as in older
#: browsers), so the page paints decoded video with its drawImage fallback.
NO_RGBA_COPY = """(() => {
  const copyTo = VideoFrame.prototype.copyTo;
  VideoFrame.prototype.copyTo = function (dest, options) {
    if (options && options.format) return Promise.reject(new TypeError('no format conversion here'));
    return copyTo.call(this, dest, options);
  };
})();"""


class Browser:
    """Chromium plus its DevTools client, owning a temporary profile; ``close`` (or leaving the
    ``with`` block) stops the browser and removes the profile."""

    def __init__(self, exe: str | None = None, *, fake_audio: Path | None = None, workdir: Path | None = None,
                 start_timeout: float = 60.0, extra_args: tuple[str, ...] = ()) -> None:
        found = exe or require_chromium()
        self._tmp = None if workdir is not None else tempfile.TemporaryDirectory(prefix="synesthesia-browser-")
        self.workdir = workdir if workdir is not None else Path(self._tmp.name)  # type: ignore[union-attr]
        self.profile = self.workdir / "profile"
        self.log_path = self.workdir / "chromium.log"
        self.proc = launch_chromium(found, self.profile, self.log_path, fake_audio, extra_args)
        self.cdp: Cdp | None = None
        try:
            self.cdp = Cdp(devtools_url(self.proc, self.profile, self.log_path, start_timeout))
        except BaseException:
            self.close()
            raise

    def page(self) -> Cdp:
        if self.cdp is None:
            raise BrowserError("the browser is closed")
        return self.cdp

    def open_viewer(self, url: str, timeout: float = 30.0) -> Cdp:
        """Open the viewer and wait until it is connected and has drawn a frame."""
        cdp = self.page()
        cdp.open(url)
        cdp.wait("window.synesthesia && window.synesthesia.connected", timeout, "the viewer to connect", VIEWER_STATE)
        cdp.wait("window.synesthesia.framesDrawn >= 1", timeout, "the viewer's first drawn frame", VIEWER_STATE)
        return cdp

    def close(self) -> None:
        if self.cdp is not None:
            try:
                self.cdp.close()
            except Exception:
                pass  # the browser may already be gone; stopping it is what matters
            self.cdp = None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
