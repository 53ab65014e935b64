"""The apply lock: one writer of a lockfile at a time, across processes.

An advisory flock on a file beside the lockfile (beside the file a symlink leads to, if the
lockfile or its folder is one). The kernel drops it when the holder exits, however it exits,
so a killed apply never leaves a stale lock behind. The file also says who holds it, for the
messages a waiting apply gives: at once when it starts waiting (a warning: the CLI shows it
whatever the verbosity), and when it gives up.

The lock file itself is opened without following a symlink and must be a regular file: it is
truncated and written, so a link planted in its place (to a file elsewhere) or a FIFO is
refused, never emptied or waited on.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import logging
import os
import socket
import stat
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from reconciler.base.errors import LockfileError, LockHeldError
from reconciler.project import apply_lock_for

log = logging.getLogger("reconciler.lock")


def _holder() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "?"
    return json.dumps(
        {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "user": user,
            "command": " ".join(["reconciler", *_command(sys.argv[1:])]),
            "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
    )


def _command(args: list[str]) -> list[str]:
    """The subcommand a process runs (`apply`), past options such as -v before it."""
    return [a for a in args if not a.startswith("-")][:1]


def _describe(text: str) -> str:
    try:
        h = json.loads(text)
        return (
            f"{h['command']} (pid {h['pid']} on {h['host']}, user {h['user']}, since {h['since']})"
        )
    except (ValueError, KeyError, TypeError):
        return "another process"


@contextmanager
def exclusive(lockfile: Path, timeout: float, lock: Path | None = None) -> Iterator[None]:
    """Hold the apply lock of `lockfile` (named in messages): `lock`, the Project's apply_lock;
    derived from the lockfile where a caller does not pass it yet (cli/apply.py)."""
    path = apply_lock_for(lockfile) if lock is None else lock
    fd = _open(path)
    try:
        deadline = time.monotonic() + timeout
        waiting = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waiting and timeout > 0:
                    waiting = True
                    held_by = _describe(os.pread(fd, 4096, 0).decode(errors="replace"))
                    log.warning(
                        "waiting for the lock on %s, held by %s; giving up after %gs "
                        "(--lock-timeout)",
                        lockfile,
                        held_by,
                        timeout,
                    )
                if time.monotonic() >= deadline:
                    held_by = _describe(os.pread(fd, 4096, 0).decode(errors="replace"))
                    raise LockHeldError(
                        f"{lockfile} is being changed by {held_by}; waited {timeout:g}s "
                        "(--lock-timeout). Try again when it has finished."
                    ) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, _holder().encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


_OPEN = os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)


def _open(path: Path) -> int:
    """The lock file, made if missing: never through a symlink, a regular file only."""
    why = "cannot be opened"
    try:
        fd = os.open(path, _OPEN | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as exc:
        link = os.path.islink(path)
        why = "is a symlink, which reconciler does not follow" if link else (exc.strerror or why)
    else:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.set_blocking(fd, True)
            return fd
        os.close(fd)
        why = "is not a regular file"
    raise LockfileError(
        f"the apply lock {path} {why}; remove it (a plain file is made again as needed)"
    )
