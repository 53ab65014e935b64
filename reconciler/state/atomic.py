"""One way to write a file: whole or not at all, never through a symlink, inside the project.

    write_atomic(path, data, *, project_root=None, mode=None, durable=True)
    atomic_file(path, ...)     the same as a binary stream the caller fills (a download)
    write_cache(path, document, *, project_root=None, **dumps)   a cache's JSON: never fails
    make_folder(path, *, project_root=None)                      a folder, made the same way

A temp file is written in the destination's folder, flushed (with `durable`, fsynced, and the
folder too after the rename), then os.replace'd over the destination: a reader, or a crash,
sees the old file or the new one, never a mix, and no temp file is left behind. An error
names the destination, never the temp file.

Refused, as RefusedPath (an OSError, so a caller that tolerates a failed write tolerates these):
  - a destination that is a symlink: not followed, nor silently turned into a file;
  - a destination that is not a regular file (a FIFO, a device such as /dev/full, a folder):
    never replaced by a file, nor opened;
  - with `project_root`: a destination outside it, or a folder between the root and the
    destination that is a symlink (the root itself may be reached through one).
The folders are walked from the root with O_NOFOLLOW and the temp file is made and renamed
relative to its folder's descriptor, so a symlink swapped in meanwhile is not followed either.

Mode: a replaced file keeps its mode; a new one gets 0o666 less the umask, as an editor's new
file does; `mode` overrides both.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

_DIR = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_T = TypeVar("_T")
_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0)

SYMLINK = "a symlink, which reconciler does not write through"
OUTSIDE = "outside the project's folder"
NOT_A_FILE = "not a regular file"


class RefusedPath(OSError):
    """A write reconciler will not make: through a symlink, or outside the project."""


def write_atomic(
    path: Path,
    data: bytes | str,
    *,
    project_root: Path | None = None,
    mode: int | None = None,
    durable: bool = True,
) -> None:
    """Replace `path` with `data` (str: UTF-8). `durable`: fsync the file and its folder, so
    the new content survives a power cut once this returns (a lockfile); a cache, rebuilt when
    torn, skips it."""
    with atomic_file(path, project_root=project_root, mode=mode, durable=durable) as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)


@contextlib.contextmanager
def atomic_file(
    path: Path,
    *,
    project_root: Path | None = None,
    mode: int | None = None,
    durable: bool = True,
) -> Iterator[BinaryIO]:
    """A stream that becomes `path` when the block ends; if the block raises, `path` is
    untouched and the temp file is gone."""
    path = Path(path)
    folder = _open_folder(path.parent, project_root, path)
    try:
        existing = _mode_of(path, folder)  # refuses a symlink or a non-regular file
        keep = existing if mode is None else mode
        tmp, fd = _temp(path, folder)
        try:
            with os.fdopen(fd, "wb") as f:
                yield f
                f.flush()
                if keep is not None:
                    os.fchmod(f.fileno(), keep)
                if durable:
                    os.fsync(f.fileno())
            _named(path, os.replace, tmp, path.name, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=folder)
            raise
        if durable:
            os.fsync(folder)  # the rename itself survives a power cut
    finally:
        os.close(folder)


def write_cache(
    path: Path, document: Any, *, project_root: Path | None = None, **dumps: Any
) -> bool:
    """A cache's JSON document (json.dumps with `dumps`), written as write_atomic writes but
    not durable and never failing: a cache only accelerates, so a folder that cannot be
    written or a value that is not JSON costs this write and nothing else (a torn file after a
    power cut is a corrupt cache, ignored and rebuilt). Returns whether it was written."""
    try:
        text = json.dumps(document, **dumps)
        write_atomic(path, text, project_root=project_root, durable=False)
    except (OSError, TypeError, ValueError, RecursionError):
        return False
    return True


def make_folder(path: Path, *, project_root: Path | None = None) -> None:
    """The folder, with its parents, made as write_atomic makes a destination's folder."""
    os.close(_open_folder(Path(path), project_root, Path(path)))


def _open_folder(folder: Path, root: Path | None, shown: Path) -> int:
    """A descriptor of `folder`, made if missing. With `root`: reached from the root one name
    at a time, none of them a symlink, and refused if it is not inside the root."""
    if root is None:
        folder.mkdir(parents=True, exist_ok=True)
        return os.open(folder, _DIR)
    base = os.path.abspath(root)
    rel = os.path.relpath(os.path.abspath(folder), base)
    if rel == os.pardir or rel.startswith(os.pardir + os.sep) or os.path.isabs(rel):
        raise RefusedPath(errno.EPERM, OUTSIDE, str(shown))
    fd = os.open(base, _DIR)
    parts = [] if rel == os.curdir else rel.split(os.sep)
    try:
        for i, name in enumerate(parts):
            # an error names the folder as the caller spelled it, up to this name
            fd = _step(fd, name, shown, Path(folder, *[os.pardir] * (len(parts) - 1 - i)))
    except BaseException:
        os.close(fd)
        raise
    return fd


def _step(fd: int, name: str, shown: Path, where: Path) -> int:
    """The folder `name` inside the folder `fd` (made if missing), with `fd` closed. `where`:
    that folder as the caller spelled it, for an error (a file in the way of a folder)."""
    try:
        try:
            child = os.open(name, _DIR | _NOFOLLOW, dir_fd=fd)
        except FileNotFoundError:
            with contextlib.suppress(FileExistsError):  # made meanwhile by another writer
                os.mkdir(name, dir_fd=fd)
            child = os.open(name, _DIR | _NOFOLLOW, dir_fd=fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(name, fd):
            raise RefusedPath(errno.ELOOP, SYMLINK, str(shown)) from None
        raise type(exc)(exc.errno, exc.strerror, os.path.normpath(where)) from None
    os.close(fd)
    return child


def _is_link(name: str, folder: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _mode_of(path: Path, folder: int) -> int | None:
    """The mode of the file being replaced; None for a new file. A symlink is refused."""
    try:
        st = os.stat(path.name, dir_fd=folder, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        raise RefusedPath(errno.ELOOP, SYMLINK, str(path))
    if stat.S_ISDIR(st.st_mode):  # said as the system says it
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    if not stat.S_ISREG(st.st_mode):
        raise RefusedPath(errno.EINVAL, NOT_A_FILE, str(path))
    return stat.S_IMODE(st.st_mode)


def _temp(path: Path, folder: int) -> tuple[str, int]:
    """A new file beside the destination, named after it: .NAME.<random>.tmp (NAME cut to 200
    bytes, so that a destination named up to the 255-byte limit still has a temp file), mode
    0o666 less the umask (the kernel applies it)."""
    short = os.fsencode(path.name)[:200].decode(errors="ignore") or "file"
    while True:
        tmp = f".{short}.{secrets.token_hex(4)}.tmp"
        try:
            return tmp, _named(path, os.open, tmp, _NEW, 0o666, dir_fd=folder)
        except FileExistsError:
            continue


def _named(path: Path, call: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """`call`, its OSError naming `path`: the temp file is ours, the destination the user's."""
    try:
        return call(*args, **kwargs)
    except OSError as exc:
        if exc.errno is None or isinstance(exc, FileExistsError):
            raise
        raise type(exc)(exc.errno, exc.strerror, str(path)) from None
