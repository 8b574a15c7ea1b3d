"""A stage module that crashes on start (supervisor tests import it in a spawned child)."""

from typing import Any


def main(ctx: Any) -> None:
    raise RuntimeError("this stage always fails to start")
