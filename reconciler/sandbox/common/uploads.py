"""Receiving uploaded files: multipart parts streamed to disk, sized and hashed on the way.

An upload in progress lives in the data dir's tmp/ as one file, flock-ed by the process that
writes it until the file has been moved into place or discarded. A server killed mid-upload
leaves its file behind, unlocked (the kernel drops the lock with the process): sweep() removes
such files when a store opens the data dir, and leaves alone those another live server is
still writing.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


class UploadTooLarge(Exception):
    pass


class Spool:
    """A file-like sink for one multipart file part: straight to disk, hashed on the way.

    werkzeug's parser writes each chunk here as it reads it from the socket, so a large upload
    never sits in memory, and the size limit trips as soon as it is crossed.
    """

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.size = 0
        self.digest = hashlib.sha256()
        self._file = path.open("x+b")
        # A second descriptor holds the lock, so that closing the data file (before it is
        # moved into place) does not release it: sweep() must not take a file in flight.
        self._lock = os.open(path, os.O_RDONLY)
        fcntl.flock(self._lock, fcntl.LOCK_EX)

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self.size > self.max_bytes:
            raise UploadTooLarge
        self.digest.update(data)
        return self._file.write(data)

    # werkzeug seeks and may read the part back (FileStorage); delegate the rest.
    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def read(self, size: int = -1) -> bytes:
        return self._file.read(size)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def discard(self) -> None:
        """Done with this upload: remove the file if it is still in tmp/ (it is not once it
        has been moved into place), then let go of the lock."""
        self._file.close()
        self.path.unlink(missing_ok=True)
        if self._lock >= 0:
            os.close(self._lock)
            self._lock = -1


def sweep(tmp_dir: Path) -> list[Path]:
    """Remove the files in `tmp_dir` that no live process holds: uploads cut short by a kill.

    Returns what was removed. A file is kept while its writer holds its lock (Spool); the
    window between creating a spool file and locking it is two system calls.
    """
    removed = []
    for entry in sorted(tmp_dir.iterdir()):
        if not entry.is_file():
            continue
        try:
            fd = os.open(entry, os.O_RDONLY)
        except OSError:  # gone meanwhile, or not ours to read
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # an upload in progress
        finally:
            os.close(fd)
        entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


# room for the multipart framing and small text fields around the file parts
FORM_OVERHEAD_BYTES = 64 << 10
MAX_FIELD_BYTES = 1 << 20


class NotMultipart(ValueError):
    pass


def receive_multipart(
    environ: Any, spool_dir: Callable[[], Path], limit: int, spools: list[Spool]
) -> tuple[Any, Any]:
    """Parse a multipart body, streaming every file part to a Spool (appended to `spools`, so
    the caller can clean up whatever happens). Returns werkzeug's (form, files).

    Raises NotMultipart for another content type, UploadTooLarge past `limit` (on the declared
    length before reading anything, when there is one; werkzeug's server then discards the
    unread body so the client still sees the error), ValueError for a malformed body.
    """
    from werkzeug.exceptions import RequestEntityTooLarge
    from werkzeug.formparser import parse_form_data

    if not str(environ.get("CONTENT_TYPE", "")).startswith("multipart/form-data"):
        raise NotMultipart
    max_body = limit + FORM_OVERHEAD_BYTES
    declared = str(environ.get("CONTENT_LENGTH") or "").strip()
    # More digits than any limit has is too large whatever they say (and int() refuses 4300).
    if (
        declared.isascii()
        and declared.isdigit()
        and (len(declared) > len(str(max_body)) or int(declared) > max_body)
    ):
        raise UploadTooLarge

    def stream_factory(
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None,
        content_length: int | None = None,
    ) -> IO[bytes]:
        spool = Spool(spool_dir(), limit)
        spools.append(spool)
        return spool  # type: ignore[return-value]  # file-like enough for werkzeug

    try:
        _, form, files = parse_form_data(
            environ,
            stream_factory=stream_factory,
            max_form_memory_size=MAX_FIELD_BYTES,
            max_content_length=max_body,
            silent=False,
        )
    except RequestEntityTooLarge:
        raise UploadTooLarge from None
    return form, files


def spool_of(spools: list[Spool], part: Any) -> Spool:
    """The closed spool that holds a parsed file part."""
    spool = next(s for s in spools if id(s) == id(part.stream))
    spool.close()
    return spool
