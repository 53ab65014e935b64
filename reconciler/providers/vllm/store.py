"""The adapter store: a folder every vLLM server of a fleet can read (a shared volume), holding
each adapter as an immutable, content-addressed folder

    <store>/<name>-<first 12 hex of the folder digest>/<file>...

The folder digest is a SHA-256 over the files' names and SHA-256s (folder_digest), so the same
files under the same name are one folder, whoever placed them and whenever, and other files
are another folder: a server never has an adapter's files changed under it (vLLM reads a
folder again when an adapter leaves its cache), and a new version is loaded from a new path.

Placing (place) writes a temp folder inside the store, copies each file while hashing it,
refuses a file whose bytes are not the digest it was planned with, fsyncs, then renames the
folder into place in one step: a server sees no folder or a complete one. A folder already
there is reused when it is complete. No symlink is followed: not the store's own last
component, not a source file, not anything inside the store (every step is relative to an
open folder, O_NOFOLLOW).

The servers may mount the store elsewhere than this machine does: `server_path` is a placed
folder's path as they see it, under `server_store`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import posixpath
import re
import secrets
import stat
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.base.errors import AssetChangedError, ReconcilerError
from reconciler.base.model import AssetDigest

SHORT = 12  # hex characters of the digest in a folder's name: 48 bits
DIGEST_VERSION = b"reconciler vLLM store folder, v1\n"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # as a finetune's name (the schema)
_HEX = re.compile(r"[0-9a-f]{64}")
_FOLDER = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,127}}-[0-9a-f]{{{SHORT}}}")
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIR = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW | _CLOEXEC
_READ = os.O_RDONLY | _NOFOLLOW | _CLOEXEC
_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
FILE_MODE, FOLDER_MODE = 0o444, 0o755  # placed once, never changed; readable by the servers
CHUNK = 1 << 20
TEMP_MARK = ".tmp-"


class StoreError(ReconcilerError):
    """The store, or a folder in it, is not what reconciler placed there (a symlink, a file,
    a folder missing or adding files); nothing is removed or overwritten, the message says what
    to move away."""


@dataclass(frozen=True)
class StoreFile:
    name: str  # the file's name in the adapter folder: adapter_config.json
    source: Path  # the local file its bytes come from
    sha256: str  # what those bytes hash to, as planned: "sha256:<64 hex>" (or bare hex)
    size: int

    @classmethod
    def of(cls, digest: AssetDigest, source: Path) -> StoreFile:
        return cls(digest.name, source, digest.sha256, digest.size)

    @property
    def hex(self) -> str:
        return self.sha256.removeprefix("sha256:")


@dataclass(frozen=True)
class Placed:
    folder: Path  # <store>/<name>-<12 hex>, on this machine
    digest: str  # the folder digest, 64 hex
    reused: bool  # already there, complete: nothing was written

    @property
    def name(self) -> str:
        return self.folder.name

    def server_path(self, server_store: str) -> str:
        return server_path(server_store, self.name)


def folder_digest(files: Iterable[tuple[str, str]]) -> str:
    """SHA-256 (hex) over (file name, SHA-256 hex) pairs, in name order: one line each, as
    sha256sum writes them, after a line naming this scheme."""
    digest = hashlib.sha256(DIGEST_VERSION)
    for name, sha in sorted(files):
        digest.update(f"{sha}  {name}\n".encode())
    return digest.hexdigest()


def folder_name(name: str, files: Sequence[StoreFile]) -> str:
    _check(name, files)
    return f"{name}-{folder_digest((f.name, f.hex) for f in files)[:SHORT]}"


def server_path(server_store: str, folder: str) -> str:
    """A store folder's path as the servers see it: `server_store` is where they mount the
    store (an absolute POSIX path, e.g. /adapters); it goes into the load request as it is."""
    if not server_store.startswith("/") or not server_store.isprintable():
        raise ValueError("the servers' store path must be an absolute path, printable")
    if ".." in server_store.split("/"):
        raise ValueError("the servers' store path may not hold '..'")
    if not _FOLDER.fullmatch(folder):
        raise ValueError(f"not a store folder's name: {folder!r}")
    return posixpath.join(server_store.rstrip("/") or "/", folder)


def _check(name: str, files: Sequence[StoreFile]) -> None:
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a usable store name: {name!r}")
    names = [f.name for f in files]
    if not files or len(set(names)) != len(names):
        raise ValueError("an adapter folder needs files, each named once")
    for f in files:
        if not _NAME.fullmatch(f.name) or not _HEX.fullmatch(f.hex) or f.size < 0:
            raise ValueError(f"not a usable store file: {f.name!r}")


def place(
    store: Path,
    name: str,
    files: Sequence[StoreFile],
    *,
    durable: bool = True,
    recheck: bool = False,
) -> Placed:
    """Place `files` as the folder <store>/<name>-<digest>/ (or reuse it, complete), and return
    it. `durable`: fsync files and folders, so a placed folder survives a power cut; `recheck`:
    hash a reused folder's files again rather than trusting their names and sizes.

    Raises AssetChangedError if a source's bytes are not what was planned, StoreError for a
    store or folder that is not reconciler's, OSError for the rest (disk full, permissions)."""
    final = folder_name(name, files)
    digest = folder_digest((f.name, f.hex) for f in files)
    store_fd = _open_store(store)
    try:
        if _complete(store_fd, store / final, files, recheck):
            return Placed(store / final, digest, reused=True)
        temp = _write_temp(store_fd, final, files, durable)
        try:
            os.rename(temp, final, src_dir_fd=store_fd, dst_dir_fd=store_fd)
        except OSError as exc:
            _remove(store_fd, temp)
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR):
                raise
            # another placer got there first (or something else is in the way: said below)
            if _complete(store_fd, store / final, files, recheck):
                return Placed(store / final, digest, reused=True)
            raise StoreError(f"{store / final} appeared while it was being placed") from None
        if durable:
            os.fsync(store_fd)
        return Placed(store / final, digest, reused=False)
    finally:
        os.close(store_fd)


def placed_already(store: Path, name: str, files: Sequence[StoreFile]) -> Placed | None:
    """The folder `place` would make for `files`, if it is there complete; else None."""
    final = folder_name(name, files)
    store_fd = _open_store(store)
    try:
        if _complete(store_fd, store / final, files, False):
            return Placed(store / final, folder_digest((f.name, f.hex) for f in files), True)
        return None
    finally:
        os.close(store_fd)


def _open_store(store: Path) -> int:
    try:
        return os.open(store, _DIR)
    except FileNotFoundError:
        raise StoreError(
            f"the store {store} does not exist: make it, a folder every vLLM server can read"
        ) from None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and store.is_symlink():
            raise StoreError(
                f"the store {store} is a symlink, which reconciler does not follow; "
                "name the folder it points to"
            ) from None
        if exc.errno == errno.ENOTDIR:
            raise StoreError(f"the store {store} is not a folder") from None
        raise


def _complete(store_fd: int, folder: Path, files: Sequence[StoreFile], recheck: bool) -> bool:
    """Whether the folder is there and holds exactly these files (False: not there)."""
    try:
        info = os.stat(folder.name, dir_fd=store_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    move = "; move it away and apply again"
    if not stat.S_ISDIR(info.st_mode):
        raise StoreError(f"{folder} is a symlink or a file, not a folder reconciler placed{move}")
    fd = os.open(folder.name, _DIR, dir_fd=store_fd)
    try:
        found = set(os.listdir(fd))
        expected = {f.name for f in files}
        if found != expected:
            raise StoreError(f"{folder} does not hold the files its name says{move}")
        for f in files:
            info = os.stat(f.name, dir_fd=fd, follow_symlinks=False)
            if not stat.S_ISREG(info.st_mode) or info.st_size != f.size:
                raise StoreError(f"{folder}/{f.name} is not the file its folder's name says{move}")
            if recheck and _hash_at(fd, f.name) != f.hex:
                raise StoreError(f"{folder}/{f.name} changed since it was placed{move}")
    finally:
        os.close(fd)
    return True


def _hash_at(folder_fd: int, name: str) -> str:
    fd = os.open(name, _READ, dir_fd=folder_fd)
    try:
        digest = hashlib.sha256()
        while chunk := os.read(fd, CHUNK):
            digest.update(chunk)
        return digest.hexdigest()
    finally:
        os.close(fd)


def _write_temp(store_fd: int, final: str, files: Sequence[StoreFile], durable: bool) -> str:
    """A complete copy of the folder under a temp name in the store; removed if anything fails."""
    temp = f".{final}{TEMP_MARK}{secrets.token_hex(4)}"
    os.mkdir(temp, 0o700, dir_fd=store_fd)
    try:
        fd = os.open(temp, _DIR, dir_fd=store_fd)
        try:
            for f in files:
                _copy(f, fd, durable)
            os.fchmod(fd, FOLDER_MODE)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        _remove(store_fd, temp)
        raise
    return temp


def _copy(f: StoreFile, folder_fd: int, durable: bool) -> None:
    """Copy one source into the folder, hashing what was copied; AssetChangedError if the
    bytes are not the ones planned."""
    try:
        src = os.open(f.source, _READ)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StoreError(f"{f.source} is a symlink, which reconciler does not follow") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(src).st_mode):
            raise StoreError(f"{f.source} is not a regular file")
        dst = os.open(f.name, _NEW, 0o600, dir_fd=folder_fd)
        try:
            digest, size = hashlib.sha256(), 0
            while chunk := os.read(src, CHUNK):
                digest.update(chunk)
                size += len(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(dst, view) :]
            if digest.hexdigest() != f.hex or size != f.size:
                raise AssetChangedError(
                    f"{f.source} changed since it was hashed: it is now {size} bytes, "
                    f"sha256:{digest.hexdigest()[:SHORT]}…, not the {f.size} bytes, "
                    f"sha256:{f.hex[:SHORT]}… planned; plan again"
                )
            os.fchmod(dst, FILE_MODE)
            if durable:
                os.fsync(dst)
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _remove(store_fd: int, temp: str) -> None:
    """Remove a temp folder of ours (its files first), as far as it goes."""
    try:
        fd = os.open(temp, _DIR, dir_fd=store_fd)
    except OSError:
        return
    try:
        for entry in os.listdir(fd):
            with contextlib.suppress(OSError):
                os.unlink(entry, dir_fd=fd)
    finally:
        os.close(fd)
    with contextlib.suppress(OSError):
        os.rmdir(temp, dir_fd=store_fd)


def sweep(store: Path, *, older_than: float = 3600.0, now: float | None = None) -> tuple[str, ...]:
    """Remove the temp folders a placing left behind when it was killed, those untouched for
    `older_than` seconds (a younger one may be another placing's, still writing); returns
    their names. Nothing else in the store is touched."""
    now = time.time() if now is None else now
    store_fd = _open_store(store)
    removed: list[str] = []
    try:
        for entry in sorted(os.listdir(store_fd)):
            if not (entry.startswith(".") and TEMP_MARK in entry):
                continue
            info = os.stat(entry, dir_fd=store_fd, follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode) and now - info.st_mtime >= older_than:
                _remove(store_fd, entry)
                removed.append(entry)
    finally:
        os.close(store_fd)
    return tuple(removed)
