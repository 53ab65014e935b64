"""A local cache of what was learnt by reading a file (its sha256, a parsed header...), keyed by
stat, so an unchanged adapter is never read twice.

As git's index and DVC do: an entry is trusted only while the file's device, inode, size,
mtime_ns and ctime_ns all match what they were when it was read. ctime is in the key because no
user tool can set it: content rewritten with the old mtime put back still misses.

Racy timestamps (git's "racy git" problem): a file modified again within the same timestamp
tick as the one we read keeps identical stat data. git refuses to trust entries whose mtime is
not older than the index file's own mtime. We go one step stricter: the reference time (the
"fence") is a filesystem timestamp taken *before* any file is read (git's index is written after
hashing, which for multi-second hashes of 300 MB files leaves a window), and an entry is only
recorded when both mtime and ctime are older than the fence by more than GRANULARITY_NS, so
filesystems with coarse timestamps (FAT: 2 s, ext3/HFS+: 1 s) are covered too. A file touched
just before a plan is simply read again next time.

The cache is a small JSON file, written by atomic rename (concurrent processes never see a torn
file; at worst one's new entries are lost, which is a miss, never a wrong answer). A missing,
corrupt or foreign file is ignored and rebuilt, and so is one that is not a regular file or is
larger than MAX_CACHE_BYTES (read without waiting on a FIFO, never to the end of a device).
Nothing here ever fails a plan: every OSError is swallowed, since the cache is only an
accelerator.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Any, NamedTuple

from reconciler.base import strictjson
from reconciler.project import STATE_DIR
from reconciler.state.atomic import make_folder, write_atomic, write_cache

FORMAT = "reconciler-statcache"
VERSION = 2
GRANULARITY_NS = 2_000_000_000  # the coarsest common filesystem timestamp (FAT): 2 s
SHA256 = "sha256"  # the fact digest_all keeps: the content's sha256, in hex
_HEX64 = re.compile(r"[0-9a-f]{64}")
MAX_CACHE_BYTES = 256 * 1024 * 1024  # an entry takes ~200 bytes: room for a million files


class Key(NamedTuple):
    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int


def key_of(st: os.stat_result) -> Key:
    return Key(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


Facts = dict[str, Any]  # kind -> a JSON value learnt from the content, e.g. "sha256" -> hex


class StatCache:
    """path -> (stat key, facts about the content). Thread-safe: a plan may hash its assets in
    the background while it reads the lockfile through the same cache."""

    def __init__(
        self,
        path: Path,
        entries: dict[str, tuple[Key, Facts]],
        granularity: int,
        root: Path | None = None,
    ) -> None:
        self.path = path
        self.root = root  # the project's folder: the cache writes nothing outside it
        self.granularity_ns = granularity
        self._entries = entries
        self._touched: set[str] = set()  # recorded or confirmed in this session
        self._dirty = False
        self._fence: int | None = None
        self._lock = threading.RLock()

    @classmethod
    def open(
        cls, path: Path, granularity_ns: int = GRANULARITY_NS, root: Path | None = None
    ) -> StatCache:
        """The cache at `path`; empty if it is missing, unreadable or not ours. `root`: the
        project's folder (Project.root), which the cache's writes stay inside."""
        return cls(Path(path), _read(Path(path)), granularity_ns, root)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, path: Path, st: os.stat_result, kind: str) -> Any | None:
        """What was recorded as `kind` for this exact file state, else None."""
        name = os.path.abspath(path)
        with self._lock:
            entry = self._entries.get(name)
            if entry is None or entry[0] != key_of(st) or kind not in entry[1]:
                return None
            self._touched.add(name)
            return entry[1][kind]

    def lookup(self, path: Path, st: os.stat_result) -> str | None:
        """The sha256 hex digest recorded for this exact file state, else None."""
        found = self.get(path, st, SHA256)
        return found if isinstance(found, str) else None

    def fence(self) -> int | None:
        """A filesystem timestamp (ns): call it before reading any file you will record.

        Taken once per cache object, at the first call: reads made later are all after it,
        which is what matters. Read from a fresh file's mtime rather than the clock: it is what
        the filesystem stamps, with its granularity (on a network filesystem, the server's
        clock). None when the cache's folder cannot be written: then nothing is recorded.
        """
        with self._lock:
            if self._fence is None:
                self._fence = _stamp(self.path.parent, self.root)
            return self._fence

    def put(self, path: Path, st: os.stat_result, kind: str, value: Any, fence: int | None) -> bool:
        """Remember `value` (JSON) as `kind`, learnt from the content read while the file had
        stat `st`, which was read after `fence` was taken.

        Only a settled file is recorded: one last changed well before `fence`, so any later
        change is bound to move its mtime or ctime. Returns whether it was recorded.
        """
        if fence is None or max(st.st_mtime_ns, st.st_ctime_ns) + self.granularity_ns >= fence:
            return False
        name, key = os.path.abspath(path), key_of(st)
        with self._lock:
            entry = self._entries.get(name)
            facts = dict(entry[1]) if entry is not None and entry[0] == key else {}
            facts[kind] = value
            self._entries[name] = (key, facts)
            self._touched.add(name)
            self._dirty = True
        return True

    def record(self, path: Path, st: os.stat_result, sha256_hex: str, fence: int | None) -> bool:
        """put() for the content's sha256 (hex)."""
        return self.put(path, st, SHA256, sha256_hex, fence)

    def save(self) -> None:
        """Write the cache if anything was recorded; merge with what others wrote meanwhile."""
        with self._lock:
            self._save()

    def _save(self) -> None:
        if not self._dirty:
            return
        # Re-read first, so entries another process wrote since we opened are kept. Entries
        # for files that are gone are dropped here: the only place the cache shrinks, and it
        # runs only when something new was recorded.
        merged = {n: e for n, e in _read(self.path).items() if n in self._touched or _exists(n)}
        for name in self._touched:
            key, facts = self._entries[name]
            theirs = merged.get(name)
            if theirs is not None and theirs[0] == key:
                facts = {**theirs[1], **facts}  # same file state: keep what they learnt too
            merged[name] = (key, facts)
        data = {
            "format": FORMAT,
            "version": VERSION,
            "entries": {n: [*k, f] for n, (k, f) in sorted(merged.items())},
        }
        if not write_cache(self.path, data, project_root=self.root, separators=(",", ":")):
            return
        self._entries = merged
        self._dirty = False


def _read(path: Path) -> dict[str, tuple[Key, Facts]]:
    if path.is_symlink():  # the project's own state, not a file elsewhere: not followed
        return {}
    try:  # a regular file within bounds: a FIFO is not waited on, /dev/zero not read on
        data = json.loads(strictjson.read_bytes(path, MAX_CACHE_BYTES))
    except (OSError, ValueError, RecursionError):  # strictjson.Refused is a ValueError
        return {}
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return {}
    if data.get("version") != VERSION or not isinstance(data.get("entries"), dict):
        return {}
    entries: dict[str, tuple[Key, Facts]] = {}
    for name, value in data["entries"].items():
        # One bad entry (a hand edit, a bug elsewhere) costs that entry only.
        if (
            isinstance(value, list)
            and len(value) == 6
            and all(type(v) is int for v in value[:5])
            and isinstance(value[5], dict)
            and _valid_sha(value[5].get(SHA256, "0" * 64))
        ):
            entries[name] = (Key(*value[:5]), value[5])
    return entries


def _valid_sha(value: object) -> bool:
    return isinstance(value, str) and _HEX64.fullmatch(value) is not None


def _stamp(folder: Path, root: Path | None) -> int | None:
    try:
        make_folder(folder, project_root=root)
        _ignore_in_git(folder, root)
        # a file made only for its mtime, and removed at once: not a write of anything kept
        fd, tmp = tempfile.mkstemp(prefix=".fence.", dir=folder)
    except OSError:
        return None  # read-only location: use what is cached, record nothing
    try:
        return os.fstat(fd).st_mtime_ns
    finally:
        os.close(fd)
        _unlink(tmp)


def _ignore_in_git(folder: Path, root: Path | None) -> None:
    """Keep the state folder out of the user's commits, as pytest does for .pytest_cache/."""
    marker = folder / ".gitignore"
    if folder.name == STATE_DIR and not marker.exists():
        text = "# created by reconciler: local state, never committed\n*\n"
        with contextlib.suppress(OSError):
            write_atomic(marker, text, project_root=root, durable=False)


def _exists(name: str) -> bool:
    return os.path.exists(name)


def _unlink(name: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(name)
