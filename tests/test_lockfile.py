"""finetunes.lock: round trip, normalised output, atomic writes, clear refusals."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from reconciler.base.errors import LockfileError
from reconciler.base.model import AssetDigest, LockedFinetune, LockedVersion, Recorded
from reconciler.state import lockfile

SHA = "sha256:" + "ab" * 32


def record() -> Recorded:
    assets = {"adapter_config.json": AssetDigest("adapter_config.json", 12, SHA)}
    return Recorded(
        finetunes={
            "zeta": LockedFinetune("zeta", "cloudflare", "a" * 32, "id-z", "@cf/m", assets),
            "alpha": LockedFinetune("alpha", "cloudflare", "a" * 32, "id-a", "@cf/m", {}),
        },
        endpoints={"cloudflare": "sandbox"},
    )


def test_round_trip_and_sorted_output(tmp_path: Path) -> None:
    path = tmp_path / "finetunes.lock"
    lockfile.save(path, record())
    assert lockfile.read_lock(path) == record()
    text = path.read_text()
    assert text.index('"alpha"') < text.index('"zeta"')
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"
    assert [p.name for p in tmp_path.iterdir()] == ["finetunes.lock"]  # no temp file left


def test_absent_lockfile_is_empty(tmp_path: Path) -> None:
    assert lockfile.read_lock(tmp_path / "finetunes.lock").finetunes == {}


def test_save_is_atomic_when_writing_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "finetunes.lock"
    lockfile.save(path, record())
    before = path.read_bytes()

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)  # a full disk cannot be had otherwise
    with pytest.raises(OSError):
        lockfile.save(path, Recorded(finetunes={}, endpoints={}))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["finetunes.lock"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"format_version": 1, "finetunes": {', "not valid JSON"),
        ("", "not valid JSON"),
        (
            '{"format_version": 7, "finetunes": {}}',
            "format_version 7 was written by a newer reconciler",
        ),
        ('{"format_version": 1, "finetunes": {"x": {"provider": "cloudflare"}}}', "finetunes.x"),
        ('["not", "a", "lock"]', "not a reconciler lockfile"),
    ],
)
def test_corrupt_or_foreign_lockfile_is_refused(
    tmp_path: Path, content: str, expected: str
) -> None:
    path = tmp_path / "finetunes.lock"
    path.write_text(content)
    with pytest.raises(LockfileError, match=expected):
        lockfile.read_lock(path)


def test_the_journal_round_trips_with_its_time_and_held_assets(tmp_path: Path) -> None:
    from reconciler.base.model import Pending

    dataset = AssetDigest("dataset", 9, SHA, remote_id="ds-1")
    pending = Pending(
        "create", "cohere", "default", since="2026-12-01T10:00:00.000Z", assets={"dataset": dataset}
    )
    path = tmp_path / "finetunes.lock"
    lockfile.save(path, Recorded(finetunes={}, endpoints={}, pending={"c": pending}))
    loaded = lockfile.read_lock(path).pending["c"]
    assert loaded == pending
    assert loaded.assets["dataset"].remote_id == "ds-1"


def test_a_symlinked_lockfile_stays_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "shared" / "finetunes.lock"
    real.parent.mkdir()
    lockfile.save(real, record())
    link = tmp_path / "finetunes.lock"
    link.symlink_to(real)
    writer = lockfile.LockWriter(link, lockfile.read_lock(link))
    writer.forget("zeta")
    assert link.is_symlink()
    assert list(json.loads(real.read_text())["finetunes"]) == ["alpha"]


def test_leftovers_round_trip_and_a_forget_with_leftover_keeps_versions_too(tmp_path: Path) -> None:
    path = tmp_path / "finetunes.lock"
    start = record()
    retired = LockedVersion(
        "0123abcd", "zeta-0123abcd", "cloudflare", "a" * 32, "id-old", "@cf/m", {}
    )
    start = Recorded(start.finetunes, start.endpoints, versions={"zeta": {"0123abcd": retired}})
    writer = lockfile.LockWriter(path, start)
    writer.forget("zeta", leftover=True)
    writer.forget("alpha")  # let go of: not a leftover
    read = lockfile.read_lock(path)
    assert read.finetunes == {} and read.versions == {}
    assert {(x.name, x.remote_name, x.id) for x in read.leftovers} == {
        ("zeta", "zeta", "id-z"),
        ("zeta", "zeta-0123abcd", "id-old"),
    }
    # made ours again (import): no longer a leftover
    lockfile.LockWriter(path, read).put(start.finetunes["zeta"], "sandbox")
    assert [x.id for x in lockfile.read_lock(path).leftovers] == ["id-old"]
    assert lockfile.LockWriter(path, lockfile.read_lock(path)).forget_leftovers("zeta")
    assert lockfile.read_lock(path).leftovers == ()
