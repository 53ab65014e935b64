"""JSON as reconciler reads its own files: strictly.

Python's reader lets through what no file reconciler writes contains and what would be read
wrongly without a word: a key twice in one object (the last silently wins, as after a bad
merge of a lockfile), NaN or Infinity, a number too large for a float (1e400 reads as
infinity) and an integer of thousands of digits (Python refuses to convert it, with an error
that is not a JSON error). A file that is not a regular file (a FIFO that would
block, /dev/zero that never ends) or is far larger than any reconciler writes is refused before
it is read.
"""

from __future__ import annotations

import errno
import json
import math
import os
import stat
from pathlib import Path
from typing import Any


class Refused(ValueError):
    """What the strict reader refuses, said plainly (the message names no path)."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise Refused(f"the key {key!r} appears twice in one object")
        found[key] = value
    return found


def _no_constant(name: str) -> Any:
    raise Refused(f"{name} is not JSON")


def loads(text: str) -> Any:
    """json.loads, refusing duplicate keys, NaN and Infinity, and nesting too deep to read.
    Raises json.JSONDecodeError for text that is not JSON, Refused for the rest."""
    try:
        return json.loads(
            text,
            object_pairs_hook=_unique_keys,
            parse_constant=_no_constant,
            parse_float=_finite,
            parse_int=_integer,
        )
    except RecursionError:
        raise Refused("it is nested too deeply") from None


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise Refused(f"the number {text[:40]} is too large")
    return value


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise Refused(f"a number of {len(text)} digits is too large")
    return int(text)


MAX_DIGITS = 400  # far beyond any size, count or id reconciler writes


def read_bytes(path: Path, limit: int) -> bytes:
    """The content of a regular file of at most `limit` bytes. Raises FileNotFoundError,
    OSError (IsADirectoryError for a folder), or Refused (not a regular file, too large)."""
    # O_NONBLOCK: opening a FIFO must not wait for a writer; a regular file ignores the flag
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        raise Refused("is not a regular file")
    with os.fdopen(fd, "rb") as f:
        raw = f.read(limit + 1)
    if st.st_size > limit or len(raw) > limit:
        raise Refused(f"is larger than {limit // (1024 * 1024)} MB")
    return raw
