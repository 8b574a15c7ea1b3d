"""Child-process targets for the supervisor tests (imported by spawned children by name)."""

from __future__ import annotations

import os
import sys
import time


def sleep_forever() -> None:
    while True:
        time.sleep(1)


def crash_at_once(code: int = 3) -> None:
    sys.exit(code)


def hog_memory(mb: int) -> None:
    block = bytearray(mb * 1024 * 1024)
    for i in range(0, len(block), 4096):
        block[i] = 1
    while True:
        time.sleep(1)


def write_pid_then_sleep(path: str) -> None:
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")
    sleep_forever()
