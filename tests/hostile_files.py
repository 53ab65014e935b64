"""Shared by the tests of hostile files on disk: outputs paths, and a command that may hang on
a FIFO run in a thread with a deadline."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

OUTPUTS = "outputs:\n  - path: worker/loras.json\n  - path: worker/loras.env\n"
HANG = 60.0  # seconds a command may take before it counts as hung


def set_outputs(config: Path, *paths: str) -> None:
    lines = "".join(f"  - path: {json.dumps(p)}\n" for p in paths)
    config.write_text(config.read_text().replace(OUTPUTS, f"outputs:\n{lines}"))


def ok(result: Result) -> None:
    assert result.exit_code == 0, result.output


def within(seconds: float, run: Callable[[], Result], unblock: Callable[[], None]) -> Result:
    """`run` in a thread; fails if it has not ended after `seconds` (then `unblock` frees it)."""
    box: list[Result] = []
    thread = threading.Thread(target=lambda: box.append(run()), daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        unblock()
        thread.join(10)
        pytest.fail(f"the command hung for {seconds} s")
    return box[0]


def open_fifo(fifo: Path) -> Callable[[], None]:
    """What frees a reader or writer blocked on `fifo`: open its other end and close it."""

    def unblock() -> None:
        for flags in (os.O_WRONLY | os.O_NONBLOCK, os.O_RDONLY | os.O_NONBLOCK):
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, flags))

    return unblock
