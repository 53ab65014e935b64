"""The one atomic writer (state/atomic.py): whole files, the old mode kept, no symlink followed,
nothing written outside the project."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.state.atomic import (
    RefusedPath,
    atomic_file,
    make_folder,
    write_atomic,
    write_cache,
)


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_new_file_gets_the_usual_mode_and_its_folders(tmp_path: Path, umask_022: None) -> None:
    target = tmp_path / "a" / "b" / "out.json"
    write_atomic(target, '{"x": 1}\n', project_root=tmp_path)
    assert target.read_text() == '{"x": 1}\n'
    assert mode(target) == 0o644  # 0o666 less the umask, not mkstemp's 0o600
    assert names(target.parent) == ["out.json"]  # no temp file left


def test_a_replaced_file_keeps_its_mode(tmp_path: Path, umask_022: None) -> None:
    target = tmp_path / "finetunes.lock"
    target.write_text("old")
    target.chmod(0o640)
    write_atomic(target, b"new")
    assert (target.read_text(), mode(target)) == ("new", 0o640)
    write_atomic(target, b"newer", mode=0o600)
    assert (target.read_text(), mode(target)) == ("newer", 0o600)


def test_a_symlinked_destination_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text("precious")
    link = tmp_path / "project" / "loras.json"
    link.parent.mkdir()
    link.symlink_to(elsewhere)
    for root in (None, tmp_path / "project"):
        with pytest.raises(RefusedPath) as caught:
            write_atomic(link, "{}", project_root=root)
        assert caught.value.filename == str(link)
        assert "symlink" in (caught.value.strerror or "")
    assert elsewhere.read_text() == "precious"
    assert link.is_symlink()
    assert names(link.parent) == ["loras.json"]


def test_a_symlinked_folder_inside_the_project_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    project = tmp_path / "project"
    project.mkdir()
    (project / ".reconciler").symlink_to(outside)
    with pytest.raises(RefusedPath):
        write_atomic(project / ".reconciler" / "statcache.json", "{}", project_root=project)
    with pytest.raises(RefusedPath):  # deeper, through folders not made yet
        make_folder(project / ".reconciler" / "sources" / "url", project_root=project)
    assert list(outside.iterdir()) == []
    # without a root only the destination itself is checked: its folders are the caller's
    write_atomic(project / ".reconciler" / "x.json", "{}")
    assert names(outside) == ["x.json"]


def test_a_root_reached_through_a_symlink_is_fine(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    alias = tmp_path / "alias"
    alias.symlink_to(real)
    write_atomic(alias / "worker" / "loras.json", "{}", project_root=alias)
    assert (real / "worker" / "loras.json").read_text() == "{}"


@pytest.mark.parametrize("where", ["../loras.json", "a/../../loras.json", "/tmp/loras.json"])
def test_a_destination_outside_the_project_is_refused(tmp_path: Path, where: str) -> None:
    project = tmp_path / "project"
    project.mkdir()
    with pytest.raises(RefusedPath) as caught:
        write_atomic(project / where, "{}", project_root=project)
    assert caught.value.strerror == "outside the project's folder"
    assert not (tmp_path / "loras.json").exists()


def test_a_block_that_fails_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "download"
    target.write_bytes(b"old")
    with pytest.raises(ValueError), atomic_file(target, durable=False) as f:
        f.write(b"half")
        raise ValueError("the digest differs")
    assert target.read_bytes() == b"old"
    assert names(tmp_path) == ["download"]


def test_a_cache_write_never_fails(tmp_path: Path) -> None:
    assert write_cache(tmp_path / "c.json", {"a": 1}, sort_keys=True)
    assert (tmp_path / "c.json").read_text() == '{"a": 1}'
    assert not write_cache(tmp_path / "c.json", {"a": object()})  # not JSON: the old stays
    assert (tmp_path / "c.json").read_text() == '{"a": 1}'
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    assert not write_cache(blocker / "c.json", {})
    assert not write_cache(tmp_path / ".." / "c.json", {}, project_root=tmp_path)
