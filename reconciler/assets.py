"""Local asset files: streamed sha256 digests, and a reader that hashes what an upload sends."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO

from .model import AssetDigest, AssetFile, Digests

CHUNK = 1024 * 1024  # large reads: hashing runs at memory speed, not syscall speed


def digest(asset: AssetFile) -> AssetDigest:
    h = hashlib.sha256()
    size = 0
    with asset.path.open("rb", buffering=0) as f:
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        while n := f.readinto(buf):
            h.update(view[:n])
            size += n
    return AssetDigest(name=asset.name, size=size, sha256="sha256:" + h.hexdigest())


def digest_all(assets: Iterable[AssetFile]) -> Digests:
    """Digests of many files at once: hashlib releases the GIL, so threads use every core."""
    unique = {a.path: a for a in assets}
    if not unique:
        return {}
    workers = min(len(unique), os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(digest, unique.values()))
    return {a.path: d for a, d in zip(unique.values(), results, strict=True)}


class HashingReader:
    """A file wrapper that hashes exactly the bytes read from it, so the lockfile records what
    was sent even if the file changes between plan and apply."""

    def __init__(self, f: BinaryIO, name: str, progress: object = None) -> None:
        self._f = f
        self._name = name
        self._progress = progress
        self._total = os.fstat(f.fileno()).st_size
        self._reset()

    def _reset(self) -> None:
        self._hash = hashlib.sha256()
        self._size = 0

    def read(self, n: int = -1) -> bytes:
        chunk = self._f.read(n)
        self._hash.update(chunk)
        self._size += len(chunk)
        if callable(self._progress):
            self._progress(self._size, self._total)
        return chunk

    def seek(self, offset: int, whence: int = 0) -> int:
        position = self._f.seek(offset, whence)
        if position == 0:
            self._reset()  # the sender starts again from the top
        return position

    def tell(self) -> int:
        return self._f.tell()

    def fileno(self) -> int:
        return self._f.fileno()

    def result(self) -> AssetDigest:
        return AssetDigest(
            name=self._name, size=self._size, sha256="sha256:" + self._hash.hexdigest()
        )
