"""The project's places (reconciler/project.py): resolved once from the config's path."""

from __future__ import annotations

from pathlib import Path

from reconciler.project import STATE_DIR, Project


def test_every_place_is_beside_the_config(tmp_path: Path) -> None:
    config = tmp_path / "proj" / "ft.yaml"
    p = Project.at(config)
    state = tmp_path / "proj" / STATE_DIR
    assert (p.config, p.lockfile, p.root) == (config, config.with_suffix(".lock"), config.parent)
    assert p.state_dir == state == tmp_path / "proj" / ".reconciler"
    assert p.statcache == state / "statcache.json"
    assert p.catalogue == state / "catalogue.json"
    assert (p.sources, p.downloads, p.sandbox_dir) == (
        state / "sources",
        state / "downloads",
        state / "sandbox",
    )
    assert p.apply_lock == (tmp_path / "proj").resolve() / ".ft.lock.apply-lock"
    assert not (tmp_path / "proj").exists()  # naming the places makes nothing


def test_a_relative_config_keeps_its_spelling() -> None:
    p = Project.at(Path("finetunes.yaml"))
    assert (str(p.config), str(p.lockfile)) == ("finetunes.yaml", "finetunes.lock")
    assert p.statcache == Path(".reconciler/statcache.json")
    assert p.apply_lock.is_absolute()


def test_the_apply_lock_is_beside_the_file_a_symlinked_lockfile_is(tmp_path: Path) -> None:
    """Two configs sharing one lockfile through a symlink take one lock."""
    shared = tmp_path / "a" / "finetunes.lock"
    shared.parent.mkdir()
    shared.write_text("{}")
    other = tmp_path / "b" / "finetunes.yaml"
    other.parent.mkdir()
    other.with_suffix(".lock").symlink_to(shared)
    assert Project.at(other).apply_lock == Project.at(shared.with_suffix(".yaml")).apply_lock


def test_of_takes_a_project_or_a_config_path(tmp_path: Path) -> None:
    p = Project.at(tmp_path / "finetunes.yaml")
    assert Project.of(p) is p
    assert Project.of(tmp_path / "finetunes.yaml") == p
