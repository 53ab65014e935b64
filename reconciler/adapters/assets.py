"""Local asset files: streamed sha256 digests, and a reader that hashes what an upload sends."""

from __future__ import annotations

import errno
import hashlib
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from reconciler.base.errors import AssetChangedError
from reconciler.base.model import AssetDigest, AssetFile, Digests
from reconciler.state.statcache import StatCache, key_of

# 256 KiB reads: big enough that per-call overhead vanishes, small enough that the buffer stays
# in a core's L2 cache between the copy out of the page cache and the hash (1 MiB was slower).
CHUNK = 256 * 1024
# A file rewritten while we read it is read again, a few times, before we give up caching it.
ATTEMPTS = 3

_local = threading.local()
_ZEROS = memoryview(bytes(CHUNK))  # what a hole in a sparse file reads as


class HashingTally:
    """How far the hashing under way has come: bytes hashed of bytes to hash, for a progress
    display to read (the library draws nothing). Counts are kept without a lock: a count a
    race loses costs a display a few kB, never a digest."""

    def __init__(self) -> None:
        self.total = 0
        self.done = 0

    def begin(self, size: int) -> None:
        self.total += size

    def add(self, size: int) -> None:
        self.done += size

    def end(self, size: int) -> None:
        self.total = max(0, self.total - size)
        self.done = max(0, min(self.done - size, self.total))

    def snapshot(self) -> tuple[int, int]:
        """(bytes hashed, bytes to hash) of the hashing under way; (0, 0) when there is none."""
        return min(self.done, self.total), self.total


HASHING = HashingTally()


def _buffer() -> memoryview:
    view: memoryview | None = getattr(_local, "view", None)
    if view is None:
        view = _local.view = memoryview(bytearray(CHUNK))
    return view


def _hash_path(path: Path) -> tuple[str, int, os.stat_result | None]:
    """(sha256 hex, bytes read, stat) of one file; stat is None if the file changed meanwhile.

    hashlib and os.readv release the GIL, so several of these run truly in parallel.
    """
    view = _buffer()
    for _ in range(ATTEMPTS):
        fd = os.open(path, os.O_RDONLY)
        try:
            before = os.fstat(fd)
            if hasattr(os, "posix_fadvise"):  # a cold disk: let the kernel read far ahead
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
            h, size = _hash_sparse(fd, before, view) or _hash_all(fd, view)
            after = os.fstat(fd)
        finally:
            os.close(fd)
        if key_of(before) == key_of(after) and size == before.st_size:
            return h.hexdigest(), size, before
    return h.hexdigest(), size, None


def _hash_all(fd: int, view: memoryview) -> tuple[hashlib._Hash, int]:
    os.lseek(fd, 0, os.SEEK_SET)
    h = hashlib.sha256()
    size = 0
    while n := os.readv(fd, [view]):
        h.update(view[:n])
        size += n
        HASHING.add(n)
    return h, size


def _hash_sparse(fd: int, st: os.stat_result, view: memoryview) -> tuple[hashlib._Hash, int] | None:
    """A sparse file's holes hashed as the zeros they read as, without reading them: the
    kernel would otherwise fill page after page of cache with zeros just to copy them out.
    None for a file with no holes, or where the filesystem cannot say where they are."""
    if st.st_blocks * 512 >= st.st_size or not hasattr(os, "SEEK_DATA"):
        return None
    h = hashlib.sha256()
    pos, end = 0, st.st_size
    try:
        while pos < end:
            try:
                data = min(os.lseek(fd, pos, os.SEEK_DATA), end)
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    raise
                data = end  # a hole from here to the end
            for start in range(pos, data, CHUNK):
                h.update(_ZEROS[: min(CHUNK, data - start)])
            HASHING.add(data - pos)
            pos = data
            if pos >= end:
                break
            hole = min(os.lseek(fd, data, os.SEEK_HOLE), end)
            os.lseek(fd, data, os.SEEK_SET)
            while pos < hole:
                n = os.readv(fd, [view[: min(CHUNK, hole - pos)]])
                if n == 0:
                    return h, pos  # shrank under us: the caller sees the size differ
                h.update(view[:n])
                pos += n
                HASHING.add(n)
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            return None  # no SEEK_DATA here: read it all
        raise
    return h, pos


def digest(asset: AssetFile) -> AssetDigest:
    sha, size, _ = _hash_path(asset.path)
    return AssetDigest(name=asset.name, size=size, sha256="sha256:" + sha)


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # what this process may use, not the machine
    except AttributeError:
        return os.cpu_count() or 1


def digest_all(
    assets: Iterable[AssetFile], cache: StatCache | None = None, workers: int | None = None
) -> Digests:
    """Digests of many files at once: one thread per core, unchanged files from the cache.

    With a cache, a file whose stat matches its entry is not opened at all; everything hashed
    is recorded (if settled), and the cache is saved before returning.
    """
    # a remote source's files (hf:, files:) are not here: sources.resolve gives their digests
    unique = {a.path: a for a in assets if a.source is None}
    found: dict[Path, AssetDigest] = {}
    todo: list[tuple[int, AssetFile]] = []
    for path, asset in unique.items():
        try:
            st = os.stat(path)
        except OSError:
            todo.append((0, asset))  # hashing raises the real error
            continue
        sha = cache.lookup(path, st) if cache is not None else None
        if sha is not None:
            found[path] = AssetDigest(name=asset.name, size=st.st_size, sha256="sha256:" + sha)
        else:
            todo.append((st.st_size, asset))
    if todo:
        fence = cache.fence() if cache is not None else None  # before the first byte is read
        # Largest first, so the long hashes start early and small files fill in around them.
        todo.sort(key=lambda t: t[0], reverse=True)
        paths = [a.path for _, a in todo]
        count = min(len(paths), workers or usable_cores())
        planned = sum(size for size, _ in todo)
        HASHING.begin(planned)
        try:
            if count == 1:
                results = [_hash_path(p) for p in paths]
            else:
                with ThreadPoolExecutor(max_workers=count, thread_name_prefix="digest") as pool:
                    results = list(pool.map(_hash_path, paths))
        finally:
            HASHING.end(planned)
        for (_, asset), (sha, size, settled) in zip(todo, results, strict=True):
            found[asset.path] = AssetDigest(name=asset.name, size=size, sha256="sha256:" + sha)
            if cache is not None and settled is not None:
                cache.record(asset.path, settled, sha, fence)
    if cache is not None:
        cache.save()  # also what others recorded in this cache (a no-op when nothing was)
    return {path: found[path] for path in unique}


def start_digest_all(
    assets: Iterable[AssetFile], cache: StatCache | None = None, workers: int | None = None
) -> Future[Digests]:
    """digest_all in the background. A cold plan is mostly hashing, on every core; what else
    it does (the lockfile, the list calls, their imports) can go on meanwhile, and the caller
    takes .result() when it needs the digests. Errors come out of .result()."""
    future: Future[Digests] = Future()
    todo = list(assets)  # the iterable is the caller's: consume it in the caller's thread

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(digest_all(todo, cache, workers))
        except BaseException as exc:  # handed over to whoever waits on the future
            future.set_exception(exc)

    threading.Thread(target=run, name="digest_all", daemon=True).start()
    return future


Progress = Callable[[int, int], None]


class HashingReader:
    """A file wrapper that hashes exactly the bytes read from it, so the lockfile records what
    was sent even if the file changes between plan and apply.

    The HTTP library declares the file's size (Content-Length) before it sends a byte; a file
    that is cut short or grows while it is read would then fail deep in the HTTP layer, with
    an error about framing. The reader holds the file to the size it had when the upload
    began and raises AssetChangedError the moment it differs."""

    def __init__(self, f: BinaryIO, name: str, progress: Progress | None = None) -> None:
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
        if (not chunk and n != 0 and self._size < self._total) or (
            self._size + len(chunk) > self._total
        ):
            self._changed()
        self._hash.update(chunk)
        self._size += len(chunk)
        if self._progress is not None:
            self._progress(self._size, self._total)
        return chunk

    def seek(self, offset: int, whence: int = 0) -> int:
        position = self._f.seek(offset, whence)
        if position == 0:
            self._reset()  # the sender starts again from the top
        return position

    def tell(self) -> int:
        return self._f.tell()

    def _changed(self) -> None:
        try:
            now = f"{os.fstat(self._f.fileno()).st_size} bytes now"
        except OSError:
            now = "unreadable now"
        where = getattr(self._f, "name", self._name)
        raise AssetChangedError(
            f"{where} changed while it was uploaded ({self._total} bytes when the upload "
            f"began, {now}); the upload was abandoned and nothing was recorded for it: "
            "run apply again once the file is settled"
        )

    def fileno(self) -> int:
        return self._f.fileno()

    def result(self) -> AssetDigest:
        return AssetDigest(
            name=self._name, size=self._size, sha256="sha256:" + self._hash.hexdigest()
        )
