"""Receiving uploaded files: multipart parts streamed to disk, sized and hashed on the way."""

from __future__ import annotations

import hashlib
from pathlib import Path


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
