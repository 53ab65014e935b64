"""The stat cache: hits read nothing, every key change misses, racy files are not trusted, a
corrupt cache is ignored, concurrent writers never corrupt it.

"Reads nothing" is checked with inotify (Linux): the kernel reports every open and read of a
watched file, so no hook in our code is needed and none could hide a read.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from reconciler.adapters.assets import digest_all
from reconciler.base.model import AssetDigest, AssetFile
from reconciler.project import Project
from reconciler.state.statcache import GRANULARITY_NS, StatCache

IN_ACCESS, IN_OPEN = 0x1, 0x20
linux_only = pytest.mark.skipif(sys.platform != "linux", reason="inotify is Linux's")


class Watch:
    """inotify on some files: which were opened, which were read."""

    def __init__(self, *paths: Path) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.fd >= 0, os.strerror(ctypes.get_errno())
        self._names: dict[int, Path] = {}
        for path in paths:
            wd = self._libc.inotify_add_watch(self.fd, str(path).encode(), IN_ACCESS | IN_OPEN)
            assert wd >= 0, os.strerror(ctypes.get_errno())
            self._names[wd] = path

    def events(self) -> list[tuple[Path, int]]:
        out: list[tuple[Path, int]] = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return out
            offset = 0
            while offset < len(data):
                wd, mask, _cookie, length = struct.unpack_from("iIII", data, offset)
                offset += 16 + length
                if wd in self._names:
                    out.append((self._names[wd], mask))

    def read(self) -> set[Path]:
        return {p for p, mask in self.events() if mask & IN_ACCESS}

    def close(self) -> None:
        os.close(self.fd)


@contextmanager
def watching(*paths: Path) -> Iterator[Watch]:
    watch = Watch(*paths)
    try:
        yield watch
    finally:
        watch.close()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def settle(*paths: Path) -> None:
    """Wait until the filesystem clock has moved past these files' last change, so that with
    granularity 0 they count as settled (the default 2 s margin would make tests slow)."""
    latest = max(max(p.stat().st_mtime_ns, p.stat().st_ctime_ns) for p in paths)
    probe = paths[0].parent / ".probe"
    while True:
        probe.write_bytes(b"")
        if probe.stat().st_mtime_ns > latest:
            probe.unlink()
            return
        time.sleep(0.01)


@pytest.fixture
def files(tmp_path: Path) -> dict[Path, bytes]:
    out = {}
    for i, size in enumerate((0, 10, 300_000, 2_000_000)):
        path = tmp_path / "adapters" / f"f{i}.bin"
        path.parent.mkdir(exist_ok=True)
        out[path] = os.urandom(size)
        path.write_bytes(out[path])
    settle(*out)
    return out


def cache_at(tmp_path: Path) -> StatCache:
    return StatCache.open(tmp_path / ".reconciler" / "statcache.json", granularity_ns=0)


def assets_of(files: dict[Path, bytes]) -> list[AssetFile]:
    return [AssetFile(p.name, p) for p in files]


def expected(files: dict[Path, bytes]) -> dict[Path, AssetDigest]:
    return {p: AssetDigest(p.name, len(d), sha(d)) for p, d in files.items()}


def test_default_path_is_beside_the_config(tmp_path: Path) -> None:
    config = tmp_path / "proj" / "finetunes.yaml"
    assert Project.at(config).statcache == tmp_path / "proj" / ".reconciler" / "statcache.json"


@linux_only
def test_a_warm_run_opens_and_reads_nothing(tmp_path: Path, files: dict[Path, bytes]) -> None:
    cold = digest_all(assets_of(files), cache_at(tmp_path))
    assert cold == expected(files)
    with watching(*files) as watch:
        warm = digest_all(assets_of(files), cache_at(tmp_path))
        assert watch.events() == []  # not even opened
    assert warm == cold


@linux_only
def test_a_cold_run_reads_every_file(tmp_path: Path, files: dict[Path, bytes]) -> None:
    # The check above is only worth something if the watch does see reads.
    with watching(*files) as watch:
        digest_all(assets_of(files), cache_at(tmp_path))
        opened = {p for p, mask in watch.events() if mask & IN_OPEN}
    assert opened == set(files)


def test_the_cache_survives_on_disk(tmp_path: Path, files: dict[Path, bytes]) -> None:
    digest_all(assets_of(files), cache_at(tmp_path))
    assert len(cache_at(tmp_path)) == len(files)
    assert (tmp_path / ".reconciler" / ".gitignore").read_text().splitlines()[-1] == "*"


def _changed(tmp_path: Path, files: dict[Path, bytes], path: Path, new: bytes) -> None:
    """After a change to one file, only that file is read again, and its digest is new."""
    files[path] = new
    settle(path)
    if sys.platform != "linux":  # no inotify: the digests alone say the change was seen
        assert digest_all(assets_of(files), cache_at(tmp_path)) == expected(files)
        return
    with watching(*files) as watch:
        got = digest_all(assets_of(files), cache_at(tmp_path))
        opened = {p for p, mask in watch.events() if mask & IN_OPEN}
    assert got == expected(files)
    assert opened == {path}, f"opened {opened - {path}} too" if opened - {path} else "not read"


def test_a_size_change_misses(tmp_path: Path, files: dict[Path, bytes]) -> None:
    digest_all(assets_of(files), cache_at(tmp_path))
    path = list(files)[2]
    with path.open("ab") as f:
        f.write(b"more")
    _changed(tmp_path, files, path, files[path] + b"more")


def test_an_mtime_change_misses_with_the_same_size(
    tmp_path: Path, files: dict[Path, bytes]
) -> None:
    digest_all(assets_of(files), cache_at(tmp_path))
    path = list(files)[2]
    new = bytes(reversed(files[path]))
    path.write_bytes(new)
    _changed(tmp_path, files, path, new)


def test_a_ctime_change_misses_when_mtime_is_put_back(
    tmp_path: Path, files: dict[Path, bytes]
) -> None:
    # What `cp -p`, rsync -t or a careful tool does: new content, old mtime. Only ctime tells.
    digest_all(assets_of(files), cache_at(tmp_path))
    path = list(files)[3]
    before = path.stat()
    new = os.urandom(len(files[path]))
    path.write_bytes(new)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    _changed(tmp_path, files, path, new)


def test_an_inode_change_misses(tmp_path: Path, files: dict[Path, bytes]) -> None:
    # A file replaced by rename (how editors and downloaders save), same size and mtime.
    digest_all(assets_of(files), cache_at(tmp_path))
    path = list(files)[2]
    before = path.stat()
    new = os.urandom(len(files[path]))
    replacement = path.with_suffix(".new")
    replacement.write_bytes(new)
    os.utime(replacement, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(replacement, path)
    assert path.stat().st_ino != before.st_ino
    _changed(tmp_path, files, path, new)


def test_each_key_field_is_checked(tmp_path: Path, files: dict[Path, bytes]) -> None:
    # dev cannot be changed in a test, so check the lookup itself with each field altered.
    path = list(files)[1]
    digest_all(assets_of(files), cache_at(tmp_path))
    cache = cache_at(tmp_path)
    real = path.stat()
    assert cache.lookup(path, real) == hashlib.sha256(files[path]).hexdigest()
    fields = list(real)
    st_fields = {"st_dev": 2, "st_ino": 1, "st_size": 6}  # positions in os.stat_result
    for name, index in st_fields.items():
        altered = fields.copy()
        altered[index] += 1
        assert cache.lookup(path, _stat(altered, real)) is None, name
    for name in ("st_mtime_ns", "st_ctime_ns"):
        assert cache.lookup(path, _stat(fields, real, **{name: getattr(real, name) + 1})) is None


def _stat(fields: list[int], real: os.stat_result, **ns: int) -> os.stat_result:
    """An os.stat_result with the given fields; the *_ns values live past the tuple part."""
    extra = {
        "st_atime_ns": real.st_atime_ns,
        "st_mtime_ns": real.st_mtime_ns,
        "st_ctime_ns": real.st_ctime_ns,
    } | ns
    # os.stat_result(sequence, dict): the dict carries the fields beyond the 10 tuple items.
    return os.stat_result(fields[:10], extra)


def test_a_racy_file_is_not_trusted(tmp_path: Path) -> None:
    """Changed within the timestamp granularity of the run that hashed it: not recorded, so a
    second change in the same tick (same size, same mtime) cannot be missed."""
    path = tmp_path / "adapter.bin"
    path.write_bytes(b"a" * 1000)
    cache = StatCache.open(tmp_path / "statcache.json")  # the real 2 s margin
    assert digest_all([AssetFile("a", path)], cache)[path].sha256 == sha(b"a" * 1000)
    assert len(StatCache.open(tmp_path / "statcache.json")) == 0
    # Rewrite it within the same tick: same size, and mtime put back to the first one.
    first = path.stat()
    path.write_bytes(b"b" * 1000)
    os.utime(path, ns=(first.st_atime_ns, first.st_mtime_ns))
    cache = StatCache.open(tmp_path / "statcache.json")
    assert digest_all([AssetFile("a", path)], cache)[path].sha256 == sha(b"b" * 1000)


def test_record_needs_the_file_older_than_the_fence_by_the_granularity(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"x")
    st = path.stat()
    cache = StatCache.open(tmp_path / "statcache.json")
    newest = max(st.st_mtime_ns, st.st_ctime_ns)
    assert not cache.record(path, st, "0" * 64, None)  # no fence: nowhere to write
    assert not cache.record(path, st, "0" * 64, newest + GRANULARITY_NS)
    assert cache.lookup(path, st) is None
    assert cache.record(path, st, "0" * 64, newest + GRANULARITY_NS + 1)
    assert cache.lookup(path, st) == "0" * 64


def test_the_fence_is_a_filesystem_timestamp_taken_now(tmp_path: Path) -> None:
    before = time.time_ns()
    fence = cache_at(tmp_path).fence()
    assert fence is not None
    assert before - 1_000_000_000 < fence <= time.time_ns()
    assert [p.name for p in (tmp_path / ".reconciler").iterdir()] == [".gitignore"]


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\x00\xff garbage",
        b'{"format": "reconciler-statcache", "version": 1, "entries": {',  # torn write
        b"[]",
        b'{"format": "something-else", "version": 1, "entries": {}}',
        b'{"format": "reconciler-statcache", "version": 99, "entries": {}}',
        b'{"format": "reconciler-statcache", "version": 1, "entries": {"/x": [1,2,3,4,5,"'
        + b"0" * 64
        + b'"]}}',
        b'{"format": "reconciler-statcache", "version": 1, "entries": []}',
    ],
)
def test_a_corrupt_cache_is_ignored_and_rebuilt(
    tmp_path: Path, files: dict[Path, bytes], content: bytes
) -> None:
    where = tmp_path / ".reconciler" / "statcache.json"
    where.parent.mkdir()
    where.write_bytes(content)
    assert len(cache_at(tmp_path)) == 0
    assert digest_all(assets_of(files), cache_at(tmp_path)) == expected(files)
    assert len(cache_at(tmp_path)) == len(files)


def test_bad_entries_cost_only_themselves(tmp_path: Path, files: dict[Path, bytes]) -> None:
    digest_all(assets_of(files), cache_at(tmp_path))
    where = tmp_path / ".reconciler" / "statcache.json"
    data = json.loads(where.read_text())
    names = sorted(data["entries"])
    data["entries"][names[0]][5] = {"sha256": "not hex"}
    data["entries"][names[1]][0] = "1"
    data["entries"][names[2]] = None
    data["entries"][names[3]][5] = "not facts"
    where.write_text(json.dumps(data))
    assert len(cache_at(tmp_path)) == len(files) - 4
    assert digest_all(assets_of(files), cache_at(tmp_path)) == expected(files)
    assert len(cache_at(tmp_path)) == len(files)


def test_a_cache_that_cannot_be_written_still_gives_right_digests(
    tmp_path: Path, files: dict[Path, bytes]
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_bytes(b"")  # its "child" can never be created, even by root
    cache = StatCache.open(blocker / "statcache.json", granularity_ns=0)
    assert digest_all(assets_of(files), cache) == expected(files)
    assert digest_all(assets_of(files), cache) == expected(files)
    assert blocker.read_bytes() == b""


def test_a_directory_in_the_caches_place_is_ignored(
    tmp_path: Path, files: dict[Path, bytes]
) -> None:
    (tmp_path / ".reconciler" / "statcache.json").mkdir(parents=True)
    assert digest_all(assets_of(files), cache_at(tmp_path)) == expected(files)


def test_entries_for_deleted_files_are_dropped(tmp_path: Path, files: dict[Path, bytes]) -> None:
    digest_all(assets_of(files), cache_at(tmp_path))
    gone, changed, *_ = list(files)
    gone.unlink()
    del files[gone]
    changed.write_bytes(b"new")
    files[changed] = b"new"
    settle(changed)
    digest_all(assets_of(files), cache_at(tmp_path))  # hashes `changed`, so saves
    names = json.loads((tmp_path / ".reconciler" / "statcache.json").read_text())["entries"]
    assert str(gone) not in names and len(names) == len(files)


def test_entries_another_process_wrote_meanwhile_are_kept(
    tmp_path: Path, files: dict[Path, bytes]
) -> None:
    mine, theirs = list(files)[:2], list(files)[2:]
    slow = cache_at(tmp_path)  # opened before the other writer saves
    digest_all([AssetFile(p.name, p) for p in theirs], cache_at(tmp_path))
    digest_all([AssetFile(p.name, p) for p in mine], slow)
    assert len(cache_at(tmp_path)) == len(files)


WRITER = """
import sys
from pathlib import Path
from reconciler.adapters.assets import digest_all
from reconciler.base.model import AssetFile
from reconciler.state.statcache import StatCache

cache_path, *paths = sys.argv[1:]
for round in range(15):
    cache = StatCache.open(Path(cache_path), granularity_ns=0)
    got = digest_all([AssetFile("f", Path(p)) for p in paths], cache)
    # Force a save every round, so the writers really race on the rename.
    cache._dirty = True
    cache.save()
"""


def test_concurrent_writers_never_corrupt_it_nor_record_a_wrong_digest(tmp_path: Path) -> None:
    files = {}
    for i in range(12):
        path = tmp_path / f"f{i}.bin"
        files[path] = os.urandom(20_000 + i)
        path.write_bytes(files[path])
    settle(*files)
    where = tmp_path / ".reconciler" / "statcache.json"
    groups = [list(files)[i::4] for i in range(4)]
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(where), *map(str, group)])
        for group in groups
    ]
    assert [p.wait(timeout=120) for p in procs] == [0] * 4
    cache = StatCache.open(where, granularity_ns=0)
    assert len(cache) > 0
    for path, data in files.items():
        found = cache.lookup(path, path.stat())
        assert found in (None, hashlib.sha256(data).hexdigest())
    assert not [p for p in where.parent.iterdir() if p.name not in (".gitignore", where.name)]


def test_other_facts_share_the_entry_and_its_key(tmp_path: Path) -> None:
    # What a reader of safetensors headers or adapter configs keeps, beside the digest.
    path = tmp_path / "adapter.bin"
    path.write_bytes(b"x" * 100)
    settle(path)
    st = path.stat()
    cache = cache_at(tmp_path)
    fence = cache.fence()
    assert cache.fence() == fence  # one fence per cache: every later read is after it
    assert cache.put(path, st, "header", {"tensors": 3}, fence)
    assert cache.record(path, st, "a" * 64, fence)
    cache.save()
    again = cache_at(tmp_path)
    assert again.get(path, st, "header") == {"tensors": 3}
    assert again.lookup(path, st) == "a" * 64
    assert again.get(path, st, "other") is None
    # A new state of the file: the facts learnt from the old one are all dropped.
    path.write_bytes(b"y" * 100)
    settle(path)
    new = path.stat()
    assert again.get(path, new, "header") is None
    assert again.put(path, new, "header", {"tensors": 4}, again.fence())
    assert again.lookup(path, new) is None and again.lookup(path, st) is None


def test_facts_two_processes_learnt_about_one_file_state_are_merged(tmp_path: Path) -> None:
    path = tmp_path / "adapter.bin"
    path.write_bytes(b"x")
    settle(path)
    st = path.stat()
    first, second = cache_at(tmp_path), cache_at(tmp_path)
    first.put(path, st, "header", 1, first.fence())
    second.put(path, st, "config", 2, second.fence())
    first.save()
    second.save()
    both = cache_at(tmp_path)
    assert (both.get(path, st, "header"), both.get(path, st, "config")) == (1, 2)


def test_a_fact_that_is_not_json_is_not_saved_and_breaks_nothing(tmp_path: Path) -> None:
    path = tmp_path / "adapter.bin"
    path.write_bytes(b"x")
    settle(path)
    cache = cache_at(tmp_path)
    cache.put(path, path.stat(), "bad", object(), cache.fence())
    cache.save()
    assert len(cache_at(tmp_path)) == 0
    assert [p.name for p in (tmp_path / ".reconciler").iterdir()] == [".gitignore"]


def test_threads_can_share_one_cache(tmp_path: Path) -> None:
    # make_plan hashes in the background while the lockfile goes through the same cache.
    paths = []
    for i in range(40):
        path = tmp_path / f"f{i}.bin"
        path.write_bytes(os.urandom(1000 + i))
        paths.append(path)
    settle(*paths)
    cache = cache_at(tmp_path)
    fence = cache.fence()

    def work(chunk: list[Path]) -> None:
        for path in chunk:
            st = path.stat()
            cache.put(path, st, "a", path.name, fence)
            assert cache.get(path, st, "a") == path.name
            cache.save()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(work, [paths[i::4] for i in range(4)]))
    cache.save()
    again = cache_at(tmp_path)
    assert all(again.get(p, p.stat(), "a") == p.name for p in paths)
