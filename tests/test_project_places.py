"""The project's places end to end, over real HTTP against the sandbox: each command parses the
config once and opens the stat cache once; the files an apply writes get the usual mode and are
never written through a symlink or outside the config's folder."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli

from reconciler.config import loader
from reconciler.sandbox.server import SandboxServer
from reconciler.state.statcache import StatCache


def ok(result: Any) -> None:
    assert result.exit_code == 0, result.output


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How often the config is parsed and the stat cache opened (the only spies here: what is
    counted happens inside the process, and nothing outside it tells)."""
    counts = {"parsed": 0, "opened": 0}
    parse, open_ = loader.load, StatCache.open.__func__  # type: ignore[attr-defined]

    def spy(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def counting(*args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            return fn(*args, **kwargs)

        return counting

    monkeypatch.setattr(loader, "load", spy("parsed", parse))
    monkeypatch.setattr(StatCache, "open", classmethod(spy("opened", open_)))
    return counts


@pytest.mark.parametrize(
    "command",
    [("plan",), ("drift",), ("list",), ("show", "support-bot-v3"), ("test",)],
    ids=lambda c: c[0],
)
def test_a_command_parses_the_config_once_and_opens_the_stat_cache_once(
    cli: Cli, cf_env: SandboxServer, project: Path, counted: dict[str, int], command: tuple[str]
) -> None:
    result = cli(*command, "-c", project)
    assert result.exit_code in (0, 1, 2), result.output  # test: no checks declared is fine
    assert counted == {"parsed": 1, "opened": 1}


def test_import_parses_once_and_hashes_through_the_stat_cache(
    cli: Cli, cf_env: SandboxServer, project: Path, counted: dict[str, int]
) -> None:
    ok(cli("apply", "-c", project, "--auto-approve"))
    ok(cli("forget", "support-bot-v3", "-c", project))
    counted.update(parsed=0, opened=0)
    ok(cli("import", "support-bot-v3", "-c", project))
    assert counted == {"parsed": 1, "opened": 1}


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_lock_and_the_outputs_get_the_usual_mode_and_keep_a_chosen_one(
    cli: Cli, cf_env: SandboxServer, versioned: Path, umask_022: None
) -> None:
    ok(cli("apply", "-c", versioned, "--auto-approve"))
    lock, app = versioned.with_suffix(".lock"), versioned.parent / "worker" / "loras.json"
    assert (mode(lock), mode(app)) == (0o644, 0o644)  # neither holds a secret
    lock.chmod(0o600)
    app.unlink()  # written again by the next apply, which rewrites the lock too
    ok(cli("forget", "support-bot-v3", "-c", versioned))
    assert mode(lock) == 0o600


def test_an_outputs_file_that_is_a_symlink_is_refused_and_its_target_untouched(
    cli: Cli, cf_env: SandboxServer, versioned: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text("precious\n")
    link = versioned.parent / "worker" / "loras.json"
    link.parent.mkdir(exist_ok=True)
    link.symlink_to(elsewhere)
    result = cli("apply", "-c", versioned, "--auto-approve")
    assert result.exit_code == 1
    assert "the apply is recorded in the lockfile, but an outputs: file could not be" in (
        result.stderr
    )
    assert "(a symlink, which reconciler does not write through: " in result.stderr
    assert elsewhere.read_text() == "precious\n"
    assert link.is_symlink()
    assert "support-bot-v3" in versioned.with_suffix(".lock").read_text()  # the apply stood


def test_an_outputs_path_outside_the_config_folder_is_refused(
    cli: Cli, cf_env: SandboxServer, versioned: Path
) -> None:
    text = versioned.read_text().replace("path: worker/loras.env", "path: ../loras.env")
    versioned.write_text(text)
    result = cli("apply", "-c", versioned, "--auto-approve")
    assert result.exit_code == 1
    assert 'outputs[1].path: "../loras.env" leaves the config\'s folder' in result.stderr
    assert not (versioned.parent.parent / "loras.env").exists()
