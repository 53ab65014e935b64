"""Reading a file the sandbox is told to read at start (a catalogue, a fault spec): a regular
file only, and at most so many bytes.

A FIFO is opened without waiting for a writer (O_NONBLOCK) and then refused, as are devices
(/dev/zero would be read until memory runs out), sockets and folders; a regular file past the
bound is refused without being read whole. Each refusal is a `FileRefused` whose str() is the
reason alone ("not a regular file (a FIFO)"), for the caller to say which file and what for.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class FileRefused(ValueError):
    """Not a regular file, or larger than the bound."""


def kind_of(mode: int) -> str:
    """What a file of this st_mode is, for a message ("a FIFO", "a folder")."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a file"


def read_regular(path: Path, max_bytes: int) -> bytes:
    """The bytes of the regular file `path` (a symlink to one is followed); FileRefused if it
    is anything else or holds more than `max_bytes`, OSError if it cannot be opened."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise FileRefused(f"not a regular file ({kind_of(mode)})")
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as file:
        data = file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FileRefused(f"larger than {max_bytes:,} bytes")
    return data
