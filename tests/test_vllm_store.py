"""The vLLM adapter store: content-addressed folders placed whole (temp folder, verified,
fsynced, renamed), reused when complete, never through a symlink; the path the servers see;
and a placed folder loaded by the sandbox's vLLM fleet over HTTP."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import threading
import time
from pathlib import Path

import pytest
from test_vllm_client import serve_fleet, write_adapter

from reconciler.base.errors import AssetChangedError
from reconciler.base.model import AssetDigest
from reconciler.providers.vllm import store as store_module
from reconciler.providers.vllm.client import VllmClient
from reconciler.providers.vllm.store import (
    Placed,
    StoreError,
    StoreFile,
    folder_digest,
    folder_name,
    place,
    server_path,
    sweep,
)

FILES = ("adapter_config.json", "adapter_model.safetensors")


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def files_of(folder: Path, names: tuple[str, ...] = FILES) -> list[StoreFile]:
    """The store files of an adapter folder, digests taken now (as a plan takes them)."""
    found = []
    for name in names:
        data = (folder / name).read_bytes()
        found.append(StoreFile(name, folder / name, sha(data), len(data)))
    return found


@pytest.fixture
def adapter(tmp_path: Path) -> Path:
    return write_adapter(tmp_path / "project" / "adapters" / "support")


@pytest.fixture
def store(tmp_path: Path) -> Path:
    made = tmp_path / "store"
    made.mkdir()
    return made


def listing(store: Path) -> list[str]:
    return sorted(os.listdir(store))


# --- placing ------------------------------------------------------------------------------


def test_a_placed_folder_is_named_by_its_content_and_holds_the_files(
    store: Path, adapter: Path
) -> None:
    files = files_of(adapter)
    placed = place(store, "support", files)
    lines = "".join(f"{f.sha256[7:]}  {f.name}\n" for f in sorted(files, key=lambda f: f.name))
    expected = hashlib.sha256(b"reconciler vLLM store folder, v1\n" + lines.encode()).hexdigest()
    assert placed == Placed(store / f"support-{expected[:12]}", expected, reused=False)
    assert listing(store) == [placed.name]
    for name in FILES:
        assert (placed.folder / name).read_bytes() == (adapter / name).read_bytes()
        assert stat.S_IMODE((placed.folder / name).stat().st_mode) == 0o444
    assert stat.S_IMODE(placed.folder.stat().st_mode) == 0o755
    assert placed.name == folder_name("support", files)


def test_placing_again_reuses_the_complete_folder(store: Path, adapter: Path) -> None:
    first = place(store, "support", files_of(adapter))
    inode = (first.folder / FILES[0]).stat().st_ino
    again = place(store, "support", files_of(adapter), recheck=True)
    assert again.folder == first.folder and again.reused
    assert (again.folder / FILES[0]).stat().st_ino == inode  # not written again
    assert listing(store) == [first.name]


def test_other_bytes_or_another_name_are_another_folder(
    store: Path, adapter: Path, tmp_path: Path
) -> None:
    first = place(store, "support", files_of(adapter))
    changed = write_adapter(tmp_path / "v2", fill=1.0)
    second = place(store, "support", files_of(changed))
    third = place(store, "billing", files_of(adapter))
    assert len({first.name, second.name, third.name}) == 3
    assert first.digest == third.digest  # the same files: the name alone differs
    assert listing(store) == sorted([first.name, second.name, third.name])


def test_the_folder_digest_is_of_names_and_digests_in_any_order() -> None:
    a, b = ("a.json", "1" * 64), ("b.bin", "2" * 64)
    assert folder_digest([a, b]) == folder_digest([b, a])
    assert folder_digest([a, b]) != folder_digest([("c.json", "1" * 64), b])
    assert folder_digest([a, b]) != folder_digest([("a.json", "3" * 64), b])


def test_a_store_file_is_made_from_a_plans_digest(adapter: Path) -> None:
    data = (adapter / FILES[0]).read_bytes()
    digest = AssetDigest(FILES[0], len(data), sha(data))
    made = StoreFile.of(digest, adapter / FILES[0])
    assert made == files_of(adapter)[0]
    assert made.hex == sha(data)[7:]


def test_a_source_changed_since_its_digest_is_refused_and_nothing_is_left(
    store: Path, adapter: Path
) -> None:
    files = files_of(adapter)
    (adapter / FILES[1]).write_bytes((adapter / FILES[1]).read_bytes()[:-4] + b"\x00\x00\x00\x01")
    with pytest.raises(AssetChangedError, match=r"changed since it was hashed.*plan again"):
        place(store, "support", files)
    assert listing(store) == []


def test_a_source_of_another_size_is_refused(store: Path, adapter: Path) -> None:
    files = files_of(adapter)
    wrong = StoreFile(files[0].name, files[0].source, files[0].sha256, files[0].size + 1)
    with pytest.raises(AssetChangedError, match=f"not the {wrong.size} bytes"):
        place(store, "support", [wrong, files[1]])
    assert listing(store) == []


def test_a_failure_at_the_rename_leaves_no_temp_folder(
    store: Path, adapter: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk that fills at the last step cannot be made here: the rename is made to fail."""

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_module.os, "rename", full)
    with pytest.raises(OSError, match="No space left"):
        place(store, "support", files_of(adapter))
    assert listing(store) == []


def test_placers_racing_for_one_folder_all_get_it_whole(store: Path, adapter: Path) -> None:
    results: list[Placed] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(place(store, "support", files_of(adapter), durable=False))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len({r.folder for r in results}) == 1 and len(results) == 8
    assert any(not r.reused for r in results)
    assert listing(store) == [results[0].name]  # every loser's temp folder removed


# --- what is refused ------------------------------------------------------------------------


def test_no_symlink_is_followed(store: Path, adapter: Path, tmp_path: Path) -> None:
    files = files_of(adapter)
    link = tmp_path / "link.json"
    link.symlink_to(adapter / FILES[0])
    with pytest.raises(StoreError, match=r"link\.json is a symlink"):
        place(store, "support", [StoreFile(FILES[0], link, files[0].sha256, files[0].size)])
    assert listing(store) == []
    linked_store = tmp_path / "linked-store"
    linked_store.symlink_to(store)
    with pytest.raises(StoreError, match="is a symlink, which reconciler does not follow"):
        place(linked_store, "support", files)
    with pytest.raises(StoreError, match="does not exist"):
        place(tmp_path / "absent", "support", files)


def test_a_symlink_in_the_folders_place_is_not_taken_for_it(
    store: Path, adapter: Path, tmp_path: Path
) -> None:
    files = files_of(adapter)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    real = place(elsewhere, "support", files)
    (store / real.name).symlink_to(real.folder)
    with pytest.raises(StoreError, match=r"is a symlink or a file.*move it away"):
        place(store, "support", files)
    assert (store / real.name).is_symlink()  # left as found
    (store / real.name).unlink()
    (store / real.name).write_text("a file")
    with pytest.raises(StoreError, match="is a symlink or a file"):
        place(store, "support", files)


def test_a_folder_not_holding_what_its_name_says_is_refused_not_reused(
    store: Path, adapter: Path
) -> None:
    files = files_of(adapter)
    placed = place(store, "support", files)
    extra = placed.folder / "notes.txt"
    extra.write_text("added by hand")
    with pytest.raises(StoreError, match="does not hold the files its name says"):
        place(store, "support", files)
    extra.unlink()
    weights = placed.folder / FILES[1]
    weights.chmod(0o644)
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # same size, other bytes
    weights.write_bytes(bytes(data))
    assert place(store, "support", files).reused  # names and sizes: trusted by default
    with pytest.raises(StoreError, match="changed since it was placed"):
        place(store, "support", files, recheck=True)
    weights.write_bytes(bytes(data[:-1]))
    with pytest.raises(StoreError, match="is not the file its folder's name says"):
        place(store, "support", files)


@pytest.mark.parametrize("name", ["../up", ".hidden", "a/b", "", "x" * 129, "new\nline", "-a"])
def test_a_name_that_is_not_a_plain_folder_name_is_refused(
    store: Path, adapter: Path, name: str
) -> None:
    with pytest.raises(ValueError, match="not a usable store name"):
        place(store, name, files_of(adapter))
    assert listing(store) == []


def test_files_that_are_not_plain_names_or_digests_are_refused(store: Path, adapter: Path) -> None:
    good = files_of(adapter)
    for bad in (
        [StoreFile("../escape", good[0].source, good[0].sha256, good[0].size)],
        [StoreFile("a/b", good[0].source, good[0].sha256, good[0].size)],
        [good[0], good[0]],
        [StoreFile(good[0].name, good[0].source, "sha256:XYZ", good[0].size)],
        [],
    ):
        with pytest.raises(ValueError):
            place(store, "support", bad)
    assert listing(store) == []


# --- the path the servers see, and leftovers --------------------------------------------


def test_the_server_path_is_under_the_servers_mount_of_the_store(
    store: Path, adapter: Path
) -> None:
    placed = place(store, "support", files_of(adapter))
    assert placed.server_path("/adapters") == f"/adapters/{placed.name}"
    assert placed.server_path("/mnt/loras/") == f"/mnt/loras/{placed.name}"
    assert placed.server_path("/") == f"/{placed.name}"
    for bad in ("adapters", "/a/../etc", "/a\nb", ""):
        with pytest.raises(ValueError):
            placed.server_path(bad)
    for folder in ("../x-0123456789ab", "support", "x/y-0123456789ab"):
        with pytest.raises(ValueError):
            server_path("/adapters", folder)


def test_sweep_removes_old_temp_folders_only(store: Path, adapter: Path) -> None:
    placed = place(store, "support", files_of(adapter))
    old = store / f".{placed.name}.tmp-0000aaaa"
    young = store / f".{placed.name}.tmp-0000bbbb"
    for temp in (old, young):
        temp.mkdir()
        (temp / "adapter_config.json").write_text("{}")
    (store / ".keep").write_text("not ours")
    hour_ago = time.time() - 7200
    os.utime(old, (hour_ago, hour_ago))
    assert sweep(store) == (old.name,)
    assert listing(store) == sorted([".keep", young.name, placed.name])
    assert sweep(store, older_than=0) == (young.name,)


# --- loaded by a server ---------------------------------------------------------------------


def test_a_placed_folder_is_what_the_servers_load(
    tmp_path: Path, store: Path, adapter: Path
) -> None:
    first = place(store, "support", files_of(adapter))
    second = place(store, "support", files_of(write_adapter(tmp_path / "v2", fill=2.0)))
    with serve_fleet(tmp_path) as fleet, VllmClient(fleet.url(0)) as server:
        server.load("support", first.server_path(str(store)))
        before = server.chat("support", [{"role": "user", "content": "refunds"}]).text
        server.load("support", second.server_path(str(store)), inplace=True)
        card = server.models().adapter("support")
        assert card is not None and card.root == str(second.folder)
        after = server.chat("support", [{"role": "user", "content": "refunds"}]).text
        assert before != after
        server.load("support", first.server_path(str(store)), inplace=True)
        assert server.chat("support", [{"role": "user", "content": "refunds"}]).text == before
