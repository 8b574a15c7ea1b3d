"""The viewer off localhost: chromium reaching the server through a non-loopback address, over
TLS with a self-signed certificate (a secure context: WebCodecs, H.264) and over plain http (not
a secure context: no WebCodecs, so the page falls back to JPEG).

The server runs in its own network namespace behind a veth pair with addresses made here
(10.213.13.0/30); chromium runs in this one. Needs root, iproute2 and chromium (skipped
otherwise, with the reason; TLS on loopback is tested in tests/test_h264.py everywhere).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from synesthesia.bench.browser import VIEWER_STATE, Browser, find_chromium

NS = f"syn13-{os.getpid()}"
HOST_IP, NS_IP = "10.213.13.1", "10.213.13.2"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.fixture(scope="module")
def netns() -> Iterator[str]:
    exe = find_chromium()
    missing = [w for w, ok in (("root", os.geteuid() == 0), ("ip", shutil.which("ip")), ("chromium", exe)) if not ok]
    if missing:
        # Skipped even under CI: a namespace needs privileges a CI container may not grant, and
        # tests/test_h264.py covers TLS on loopback everywhere.
        pytest.skip(f"TLS-OFF-LOCALHOST TESTS NOT RUN: need {', '.join(missing)} (a network namespace and a browser)")
    try:
        _ip("netns", "add", NS)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"TLS-OFF-LOCALHOST TESTS NOT RUN: cannot make a network namespace here: {exc.stderr!r}")
    try:
        host_if, ns_if = f"s13h{os.getpid() % 10000}", f"s13n{os.getpid() % 10000}"
        _ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        _ip("link", "set", ns_if, "netns", NS)
        _ip("addr", "add", f"{HOST_IP}/30", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip("-n", NS, "addr", "add", f"{NS_IP}/30", "dev", ns_if)
        _ip("-n", NS, "link", "set", ns_if, "up")
        _ip("-n", NS, "link", "set", "lo", "up")
        yield NS
    finally:
        subprocess.run(["ip", "netns", "delete", NS], capture_output=True, timeout=10)  # takes the veth pair along


def _serve(ns: str, *args: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "synesthesia", "serve", "--demo",
                             "--host", NS_IP, "--port", "0", "--size", "640x352", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen: dict[str, str] = {}
    end = time.monotonic() + 60
    assert proc.stdout is not None
    while "url" not in seen and time.monotonic() < end:
        line = proc.stdout.readline()
        if not line:
            break
        if m := re.search(r"viewer at (\S+)", line):
            seen["url"] = m.group(1)
        if m := re.search(r"SHA-256 ([0-9A-F:]{95})", line):
            seen["fingerprint"] = m.group(1)
        if m := re.search(r"SPKI, base64\) (\S+)", line):
            seen["spki"] = m.group(1)
    assert "url" in seen, "the server printed no viewer URL"
    return proc, seen


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def test_https_off_localhost_is_a_secure_context_with_webcodecs(netns: str, tmp_path: Path) -> None:
    proc, seen = _serve(netns, "--tls", "self-signed")
    try:
        assert seen["url"].startswith(f"https://{NS_IP}:") and "?token=" in seen["url"]
        assert len(seen["fingerprint"].split(":")) == 32
        # The browser trusts this one certificate by its public key, as a person would after
        # comparing the printed fingerprint with the browser's warning page.
        with Browser(find_chromium(), workdir=tmp_path, extra_args=(f"--ignore-certificate-errors-spki-list={seen['spki']}",)) as b:
            cdp = b.page()
            cdp.open(seen["url"])
            cdp.wait("window.synesthesia && window.synesthesia.codec === 'h264' && window.synesthesia.framesDrawn >= 10", 60,
                     "H.264 frames over https from another address", VIEWER_STATE)
            assert cdp.js("window.isSecureContext") is True
            assert cdp.js("location.hostname") == NS_IP
            assert cdp.js("window.synesthesia.decodeErrors") == 0
    finally:
        _stop(proc)


def test_plain_http_off_localhost_falls_back_to_jpeg(netns: str, tmp_path: Path) -> None:
    proc, seen = _serve(netns)
    try:
        assert seen["url"].startswith(f"http://{NS_IP}:")
        with Browser(find_chromium(), workdir=tmp_path) as b:
            cdp = b.page()
            cdp.open(seen["url"])
            cdp.wait("window.synesthesia && window.synesthesia.codec === 'jpeg' && window.synesthesia.framesDrawn >= 5", 60,
                     "JPEG frames over plain http from another address", VIEWER_STATE)
            assert cdp.js("window.isSecureContext") is False
            assert cdp.js("typeof VideoDecoder") == "undefined"
    finally:
        _stop(proc)
