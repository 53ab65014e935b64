"""A local cache of file digests keyed by stat, so an unchanged adapter is never read twice.

As git's index and DVC do: an entry is trusted only while the file's device, inode, size,
mtime_ns and ctime_ns all match what they were when it was hashed. ctime is in the key because
no user tool can set it: content rewritten with the old mtime restored still misses.

Racy timestamps (git's "racy git" problem): a file modified again within the same timestamp
tick as the one we hashed keeps identical stat data. git refuses to trust entries whose mtime
is not older than the index file's own mtime. We go one step stricter: the reference time (the
"fence") is a filesystem timestamp taken *before* any file is read (git's index is written after
hashing, which for multi-second hashes of 300 MB files leaves a window), and an entry is only
recorded when both mtime and ctime are older than the fence by more than GRANULARITY_NS, so
filesystems with coarse timestamps (FAT: 2 s, ext3/HFS+: 1 s) are covered too. A file touched
just before a plan is simply hashed again next time.

The cache is a small JSON file, written by atomic rename (concurrent processes never see a torn
file; at worst one's new entries are lost, which is a miss, never a wrong answer). A missing,
corrupt or foreign file is ignored and rebuilt. Nothing here ever fails a plan: every OSError is
swallowed, since the cache is only an accelerator.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import NamedTuple

FORMAT = "reconciler-statcache"
VERSION = 1
FILE_NAME = "statcache.json"
GRANULARITY_NS = 2_000_000_000  # the coarsest common filesystem timestamp (FAT): 2 s
_HEX64 = re.compile(r"[0-9a-f]{64}")


def default_path(config_path: Path) -> Path:
    """Where a config's cache lives: <config dir>/.reconciler/statcache.json (git-ignored)."""
    return config_path.parent / ".reconciler" / FILE_NAME


class Key(NamedTuple):
    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int


def key_of(st: os.stat_result) -> Key:
    return Key(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class StatCache:
    """path -> (stat key, sha256 hex). Not thread-safe: digest_all uses it from one thread."""

    def __init__(
        self, path: Path, entries: dict[str, tuple[Key, str]], granularity_ns: int
    ) -> None:
        self.path = path
        self.granularity_ns = granularity_ns
        self._entries = entries
        self._touched: set[str] = set()  # recorded or confirmed in this session
        self._dirty = False

    @classmethod
    def open(cls, path: Path, granularity_ns: int = GRANULARITY_NS) -> StatCache:
        """The cache at `path`; empty if it is missing, unreadable or not ours."""
        return cls(Path(path), _read(Path(path)), granularity_ns)

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, path: Path, st: os.stat_result) -> str | None:
        """The sha256 hex digest recorded for this exact file state, else None."""
        name = os.path.abspath(path)
        entry = self._entries.get(name)
        if entry is None or entry[0] != key_of(st):
            return None
        self._touched.add(name)
        return entry[1]

    def fence(self) -> int | None:
        """A filesystem timestamp (ns) taken now; call before reading the files to record.

        Read from a fresh file's mtime rather than the clock: it is what the filesystem stamps,
        with its own granularity (and, on a network filesystem, the server's clock).
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _ignore_in_git(self.path.parent)
            fd, tmp = tempfile.mkstemp(prefix=".fence.", dir=self.path.parent)
        except OSError:
            return None  # read-only location: use what is cached, record nothing
        try:
            return os.fstat(fd).st_mtime_ns
        finally:
            os.close(fd)
            _unlink(tmp)

    def record(self, path: Path, st: os.stat_result, sha256_hex: str, fence: int | None) -> bool:
        """Remember a digest of the content read while the file had stat `st`.

        Only a settled file is recorded: one last changed well before `fence`, so any later
        change is bound to move its mtime or ctime. Returns whether it was recorded.
        """
        if fence is None or max(st.st_mtime_ns, st.st_ctime_ns) + self.granularity_ns >= fence:
            return False
        name = os.path.abspath(path)
        self._entries[name] = (key_of(st), sha256_hex)
        self._touched.add(name)
        self._dirty = True
        return True

    def save(self) -> None:
        """Write the cache if anything was recorded; merge with what others wrote meanwhile."""
        if not self._dirty:
            return
        # Re-read first, so entries another process wrote since we opened are kept. Entries
        # for files that are gone are dropped here: the only place the cache shrinks, and it
        # runs only when something new was hashed.
        on_disk = _read(self.path)
        merged = {n: e for n, e in on_disk.items() if n in self._touched or _exists(n)}
        merged.update((n, self._entries[n]) for n in self._touched)
        data = {
            "format": FORMAT,
            "version": VERSION,
            "entries": {n: [*k, h] for n, (k, h) in sorted(merged.items())},
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        except OSError:
            return
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, separators=(",", ":"))
            # No fsync: a torn file after a power cut is just a corrupt cache, ignored.
            os.replace(tmp, self.path)
        except OSError:
            _unlink(tmp)
            return
        self._entries = merged
        self._dirty = False


def _read(path: Path) -> dict[str, tuple[Key, str]]:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return {}
    if data.get("version") != VERSION or not isinstance(data.get("entries"), dict):
        return {}
    entries: dict[str, tuple[Key, str]] = {}
    for name, value in data["entries"].items():
        # One bad entry (a hand edit, a bug elsewhere) costs that entry only.
        if (
            isinstance(value, list)
            and len(value) == 6
            and all(type(v) is int for v in value[:5])
            and isinstance(value[5], str)
            and _HEX64.fullmatch(value[5])
        ):
            entries[name] = (Key(*value[:5]), value[5])
    return entries


def _ignore_in_git(folder: Path) -> None:
    """Keep .reconciler/ out of the user's commits, as pytest does for .pytest_cache/."""
    marker = folder / ".gitignore"
    if folder.name == ".reconciler" and not marker.exists():
        with contextlib.suppress(OSError):
            marker.write_text("# created by reconciler: local state, never committed\n*\n")


def _exists(name: str) -> bool:
    return os.path.exists(name)


def _unlink(name: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(name)
