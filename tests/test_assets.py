"""Digests of real files against hashlib, and the upload reader's accounting."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import httpx
import pytest

from reconciler.adapters.assets import CHUNK, HashingReader, digest, digest_all, start_digest_all
from reconciler.base.model import AssetDigest, AssetFile

SIZES = (0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17, 5_000_000)


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def write(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


@pytest.mark.parametrize("size", SIZES)
def test_digest_equals_hashlib(tmp_path: Path, size: int) -> None:
    data = write(tmp_path / "f.bin", size)
    assert digest(AssetFile("f.bin", tmp_path / "f.bin")) == AssetDigest("f.bin", size, sha(data))


def test_digest_all_equals_hashlib_for_many_files(tmp_path: Path) -> None:
    files = {}
    for i, size in enumerate(SIZES * 2):
        path = tmp_path / f"f{i}.bin"
        files[path] = write(path, size)
    assets = [AssetFile(p.name, p) for p in files]
    got = digest_all(assets)
    assert list(got) == list(files)  # the input's order, whatever order they were hashed in
    for path, data in files.items():
        assert got[path] == AssetDigest(path.name, len(data), sha(data))
    assert digest_all(assets, workers=1) == got


def test_digest_all_counts_a_path_once(tmp_path: Path) -> None:
    data = write(tmp_path / "f.bin", 1000)
    twice = [AssetFile("f.bin", tmp_path / "f.bin"), AssetFile("f.bin", tmp_path / "f.bin")]
    assert digest_all(twice) == {tmp_path / "f.bin": AssetDigest("f.bin", 1000, sha(data))}
    assert digest_all([]) == {}


def test_digest_all_raises_for_a_missing_file(tmp_path: Path) -> None:
    write(tmp_path / "there.bin", 10)
    with pytest.raises(FileNotFoundError):
        digest_all(
            [AssetFile("a", tmp_path / "there.bin"), AssetFile("b", tmp_path / "missing.bin")]
        )


def test_reader_hashes_exactly_the_bytes_read(tmp_path: Path) -> None:
    data = write(tmp_path / "f.bin", 100_000)
    seen: list[tuple[int, int]] = []
    with (tmp_path / "f.bin").open("rb") as f:
        reader = HashingReader(f, "f.bin", lambda done, total: seen.append((done, total)))
        assert reader.fileno() == f.fileno()
        first = reader.read(30_000) + reader.read(10_000)
        assert reader.tell() == 40_000
        assert reader.result() == AssetDigest("f.bin", 40_000, sha(data[:40_000]))
        rest = reader.read()
        assert first + rest == data
        assert reader.read(10) == b""
        assert reader.result() == AssetDigest("f.bin", len(data), sha(data))
    assert seen[0] == (30_000, 100_000)
    assert seen[-1] == (100_000, 100_000)


def test_reader_starts_again_on_seek_to_zero(tmp_path: Path) -> None:
    data = write(tmp_path / "f.bin", 50_000)
    with (tmp_path / "f.bin").open("rb") as f:
        reader = HashingReader(f, "f.bin")
        reader.read(20_000)
        assert reader.seek(0) == 0
        assert reader.result() == AssetDigest("f.bin", 0, sha(b""))
        assert reader.read(5) == data[:5]
        assert reader.result() == AssetDigest("f.bin", 5, sha(data[:5]))
        reader.seek(0)
        reader.read()
        assert reader.result() == AssetDigest("f.bin", len(data), sha(data))


def test_reader_sent_through_httpx_multipart_records_what_went_out(tmp_path: Path) -> None:
    data = write(tmp_path / "f.bin", 3 * 65536 + 5)
    bodies: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(request.read())
        return httpx.Response(200, json={})

    with (
        httpx.Client(transport=httpx.MockTransport(handler)) as client,
        (tmp_path / "f.bin").open("rb") as f,
    ):
        reader = HashingReader(f, "f.bin")
        client.post("http://x/", files={"file": ("f.bin", reader, "application/octet-stream")})
        # A second send (a retry) seeks back to zero: the record is of one full copy.
        client.post("http://x/", files={"file": ("f.bin", reader, "application/octet-stream")})
    assert len(bodies) == 2 and all(data in b for b in bodies)
    assert reader.result() == AssetDigest("f.bin", len(data), sha(data))


def test_start_digest_all_gives_the_same_digests_in_the_background(tmp_path: Path) -> None:
    files = {}
    for i, size in enumerate(SIZES):
        path = tmp_path / f"f{i}.bin"
        files[path] = write(path, size)
    assets = [AssetFile(p.name, p) for p in files]
    future = start_digest_all(iter(assets))  # an iterator: consumed before it returns
    assert future.result(timeout=60) == digest_all(assets)


def test_start_digest_all_hands_errors_to_the_waiter(tmp_path: Path) -> None:
    future = start_digest_all([AssetFile("x", tmp_path / "missing.bin")])
    with pytest.raises(FileNotFoundError):
        future.result(timeout=60)


@pytest.mark.parametrize(
    "layout",
    [
        [],  # all hole
        [(0, b"head")],
        [(5 * CHUNK + 3, b"tail")],  # data at the very end
        [(0, b"a" * 5000), (3 * CHUNK, os.urandom(CHUNK + 7)), (9 * CHUNK + 1, b"z")],
    ],
)
def test_sparse_files_hash_as_the_zeros_their_holes_read_as(
    tmp_path: Path, layout: list[tuple[int, bytes]]
) -> None:
    path = tmp_path / "sparse.bin"
    size = 12 * CHUNK
    with path.open("wb") as f:
        f.truncate(size)
        for offset, data in layout:
            f.seek(offset)
            f.write(data)
    content = path.read_bytes()
    assert len(content) == size
    assert digest(AssetFile("s", path)) == AssetDigest("s", size, sha(content))


def test_the_hashing_tally_counts_what_is_hashed_and_ends_at_zero(tmp_path: Path) -> None:
    from reconciler.adapters.assets import HASHING, digest_all

    path = tmp_path / "a.bin"
    path.write_bytes(b"x" * 3_000_000)
    seen: list[tuple[int, int]] = []
    original = HASHING.add

    def spy(size: int) -> None:
        original(size)
        seen.append(HASHING.snapshot())

    HASHING.add = spy  # type: ignore[method-assign]
    try:
        digest_all([AssetFile("adapter_model.safetensors", path)])
    finally:
        del HASHING.add
    assert seen[-1] == (3_000_000, 3_000_000)  # the display saw it all, in steps
    assert len(seen) > 1
    assert HASHING.snapshot() == (0, 0)  # and nothing is left under way
