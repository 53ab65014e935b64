"""Files on disk as hostile input (issue 20: M3, L5, L6's plan -o, L10, L12), through the
command line against the sandbox: outputs paths that leave the project or are not files, state
files that never end or never open, saved plans onto devices and FIFOs, modes, a symlinked state
folder, a planted apply lock. Each test reproduced its defect before the fix (those of M3's
symlinks and L10's modes pin what 07e0f62 fixed)."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CANARY_TOKEN, Cli
from hostile_files import HANG, ok, open_fifo, set_outputs, within

from reconciler.sandbox.common.fault_spec import FaultSpec
from reconciler.sandbox.server import SandboxServer

# M3: outputs paths leave the project -------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "ABSOLUTE/loras.json",
        "../loras.json",
        "worker/../../loras.json",
        ".reconciler/catalogue.json",
        "worker/lo\x00ras.json",
        "worker/lo\nras.env",
    ],
)
def test_an_outputs_path_that_leaves_the_project_is_refused_by_validate(
    cli: Cli, cf_env: SandboxServer, versioned: Path, tmp_path: Path, path: str
) -> None:
    path = path.replace("ABSOLUTE", str(tmp_path / "elsewhere"))
    set_outputs(versioned, path)
    for command in ("validate", "plan"):
        result = cli(command, "-c", versioned)
        assert result.exit_code == 1, result.output
        assert "outputs[0].path" in result.stderr, result.stderr
        assert "\x00" not in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "elsewhere").exists() and not (tmp_path / "loras.json").exists()


def test_the_same_outputs_file_twice_is_refused(
    cli: Cli, cf_env: SandboxServer, versioned: Path
) -> None:
    set_outputs(versioned, "worker/loras.json", "worker//./loras.json")
    result = cli("validate", "-c", versioned)
    assert result.exit_code == 1
    assert "outputs[1].path" in result.stderr and "worker/loras.json" in result.stderr


@pytest.mark.parametrize("link", ["folder", "file"])
def test_an_outputs_file_through_a_symlink_is_refused_and_the_target_kept(
    cli: Cli, cf_env: SandboxServer, versioned: Path, tmp_path: Path, link: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "loras.json").write_text("theirs\n")
    worker = versioned.parent / "worker"
    if link == "folder":
        worker.symlink_to(outside, target_is_directory=True)
    else:
        worker.mkdir()
        (worker / "loras.json").symlink_to(outside / "loras.json")
    set_outputs(versioned, "worker/loras.json")
    result = cli("apply", "-c", versioned, "--auto-approve")
    assert result.exit_code == 1
    assert "a symlink, which reconciler does not write through" in result.stderr
    assert (outside / "loras.json").read_text() == "theirs\n"
    assert [p.name for p in outside.iterdir()] == ["loras.json"]  # no temp file left there


def test_the_outputs_error_names_the_file_not_its_temp_file(
    cli: Cli, cf_env: SandboxServer, versioned: Path
) -> None:
    taken = versioned.parent / "worker" / "loras.json"
    taken.mkdir(parents=True)
    (taken / "keep").write_text("x")
    set_outputs(versioned, "worker/loras.json")
    result = cli("apply", "-c", versioned, "--auto-approve")
    assert result.exit_code == 1
    assert ".tmp" not in result.stderr, result.stderr
    assert "worker/loras.json" in result.stderr


# L5: outputs files and state files that are not regular files -----------------------------


def test_an_outputs_path_that_is_a_fifo_is_refused_not_waited_on(
    cli: Cli, cf_env: SandboxServer, versioned: Path
) -> None:
    fifo = versioned.parent / "worker" / "loras.json"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    set_outputs(versioned, "worker/loras.json")
    result = within(HANG, lambda: cli("apply", "-c", versioned, "--auto-approve"), open_fifo(fifo))
    assert result.exit_code == 1, result.output
    assert "worker/loras.json" in result.stderr and "not a regular file" in result.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # left as it was


@pytest.mark.parametrize("name", ["catalogue.json", "statcache.json"])
def test_a_state_file_that_is_a_fifo_is_not_waited_on(
    cli: Cli, cf_env: SandboxServer, project: Path, name: str
) -> None:
    state = project.parent / ".reconciler"
    state.mkdir()
    fifo = state / name
    os.mkfifo(fifo)
    result = within(HANG, lambda: cli("plan", "-c", project), open_fifo(fifo))
    ok(result)
    assert "Plan: 2 to create" in result.stdout


@pytest.mark.parametrize("name", ["catalogue.json", "statcache.json"])
def test_a_state_file_that_never_ends_is_not_read_to_the_end(
    cf_env: SandboxServer, project: Path, name: str
) -> None:
    """/dev/zero as a cache: read in a child with 2 GiB of address space, so that reading it
    to the end ends in MemoryError there and not on this machine."""
    state = project.parent / ".reconciler"
    state.mkdir()
    (state / name).symlink_to("/dev/zero")
    script = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n"
        "from reconciler.cli.main import main\n"
        "sys.exit(main(['plan', '-c', sys.argv[1]]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(project)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "RECONCILER_DEBUG": ""},
    )
    assert done.returncode == 0, done.stderr
    assert "Plan: 2 to create" in done.stdout


# M3, L6: plan -o ----------------------------------------------------------------------------


def test_plan_out_through_a_symlink_is_refused_and_the_target_kept(
    cli: Cli, cf_env: SandboxServer, project: Path, tmp_path: Path
) -> None:
    target = tmp_path / "precious"
    target.write_text("keep\n")
    link = tmp_path / "plan.out"
    link.symlink_to(target)
    result = cli("plan", "-c", project, "-o", link)
    assert result.exit_code == 1
    assert f"Error: {link}: cannot be written" in result.stderr
    assert target.read_text() == "keep\n" and link.is_symlink()


def test_plan_out_into_a_missing_folder_is_a_clear_error(
    cli: Cli, cf_env: SandboxServer, project: Path, tmp_path: Path
) -> None:
    out = tmp_path / "no" / "such" / "plan.out"
    result = cli("plan", "-c", project, "-o", out)
    assert result.exit_code == 1
    assert f"Error: {out}: cannot be written (no folder {out.parent})" in result.stderr
    assert not (tmp_path / "no").exists()


@pytest.fixture(params=["fifo", "device"])
def not_a_file(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """A FIFO, or (as root) a copy of /dev/full made with mknod: what `-o` must not replace.
    Never the real /dev/full: a regression (or another process that replaced it first) would
    have this test write a file in its place for every process on the machine."""
    path = tmp_path / "special"
    if request.param == "fifo":
        os.mkfifo(path)
    elif os.geteuid() == 0:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 7))  # /dev/full on Linux
    else:
        pytest.skip("making a device needs root")
    yield path


def test_plan_out_onto_a_device_or_fifo_is_a_clear_error_and_it_stays(
    cli: Cli, cf_env: SandboxServer, project: Path, not_a_file: Path
) -> None:
    kind = stat.S_IFMT(os.lstat(not_a_file).st_mode)
    result = cli("plan", "-c", project, "-o", not_a_file)
    assert result.exit_code == 1, result.output
    assert f"Error: {not_a_file}: cannot be written (not a regular file)" in result.stderr
    assert stat.S_IFMT(os.lstat(not_a_file).st_mode) == kind
    assert [p.name for p in not_a_file.parent.iterdir() if p.name.endswith(".tmp")] == []


# L10: modes ---------------------------------------------------------------------------------


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_new_files_follow_the_umask_and_replaced_files_keep_their_mode(
    cli: Cli, cf_env: SandboxServer, versioned: Path, umask_022: None
) -> None:
    ok(cli("apply", "-c", versioned, "--auto-approve"))
    worker = versioned.parent / "worker"
    lock = versioned.with_suffix(".lock")
    assert (mode(worker / "loras.json"), mode(worker / "loras.env"), mode(lock)) == (0o644,) * 3
    (worker / "loras.env").write_text("stale\n")
    os.chmod(worker / "loras.env", 0o604)
    os.chmod(lock, 0o640)
    versioned.write_text(versioned.read_text().replace("public: false", "public: true"))
    ok(cli("apply", "-c", versioned, "--auto-approve"))
    assert (worker / "loras.env").read_text().startswith("RECONCILER_")
    assert (mode(worker / "loras.env"), mode(lock)) == (0o604, 0o640)


# L12: a symlinked state folder --------------------------------------------------------------


def test_a_symlinked_state_folder_is_refused_not_followed(
    cli: Cli, cf_env: SandboxServer, project: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (project.parent / ".reconciler").symlink_to(elsewhere, target_is_directory=True)
    for command in ("plan", "drift", "apply"):  # (validate reads and writes no state)
        result = cli(command, "-c", project)
        assert result.exit_code == 1, result.output
        assert ".reconciler" in result.stderr and "symlink" in result.stderr
    assert list(elsewhere.iterdir()) == []


# Beyond the listed defects: the apply lock ------------------------------------------------


def test_an_apply_lock_that_is_a_symlink_is_refused_and_its_target_kept(
    cli: Cli, cf_env: SandboxServer, project: Path, tmp_path: Path
) -> None:
    precious = tmp_path / "precious"
    precious.write_text("keep me\n")
    (project.parent / ".finetunes.lock.apply-lock").symlink_to(precious)
    result = cli("apply", "-c", project, "--auto-approve")
    assert result.exit_code == 1, result.output
    assert ".finetunes.lock.apply-lock" in result.stderr and "symlink" in result.stderr
    assert precious.read_text() == "keep me\n"
    assert cf_env.request_log == [] or all(c[0] == "GET" for c in cf_env.request_log)


def test_an_apply_lock_that_is_a_fifo_is_refused(
    cli: Cli, cf_env: SandboxServer, project: Path
) -> None:
    fifo = project.parent / ".finetunes.lock.apply-lock"
    os.mkfifo(fifo)
    result = within(HANG, lambda: cli("apply", "-c", project, "--auto-approve"), open_fifo(fifo))
    assert result.exit_code == 1, result.output
    assert "not a regular file" in result.stderr
    assert "Internal error" not in result.stderr


# Beyond the listed defects: plan -o over the project's own files ----------------------------


@pytest.mark.parametrize(
    ("name", "what"),
    [
        ("finetunes.lock", "is the lockfile"),
        ("finetunes.yaml", "is the config"),
        (".reconciler/catalogue.json", "is in the state folder"),
        ("link-to-lock", "is the lockfile"),
    ],
)
def test_plan_out_over_the_projects_own_files_is_refused(
    cli: Cli, cf_env: SandboxServer, project: Path, name: str, what: str
) -> None:
    ok(cli("apply", "-c", project, "--auto-approve"))
    (project.parent / "link-to-lock").symlink_to("finetunes.lock")
    before = {p: p.read_bytes() for p in project.parent.rglob("*") if p.is_file()}
    out = project.parent / name
    result = cli("plan", "-c", project, "-o", out)
    assert result.exit_code == 1, result.output
    assert f"Error: {out}: {what}" in result.stderr
    assert {p: p.read_bytes() for p in project.parent.rglob("*") if p.is_file()} == before


def test_a_file_in_the_way_of_an_outputs_folder_is_named(
    cli: Cli, cf_env: SandboxServer, versioned: Path
) -> None:
    (versioned.parent / "worker").write_text("a file, not a folder\n")
    set_outputs(versioned, "worker/app/loras.json")
    result = cli("apply", "-c", versioned, "--auto-approve")
    assert result.exit_code == 1
    assert f"(Not a directory: {versioned.parent / 'worker'})" in result.stderr


# Beyond the listed defects: a catalogue cache whose times cannot be dates -----------------


@pytest.mark.parametrize("stamp", ["NaN", "1e308", "-1e308", "1e400", "true"])
def test_a_cached_catalogue_with_an_impossible_time_is_not_used(
    cli: Cli,
    cf_env: SandboxServer,
    project: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    stamp: str,
) -> None:
    """Used only when the live catalogue cannot be read: a hand-edited read_at of NaN or 1e308
    was an internal error (a date made of it); now the entry is ignored, the snapshot used."""
    ok(cli("plan", "-c", project))
    cache = project.parent / ".reconciler" / "catalogue.json"
    faults = FaultSpec.from_option("status=503; route=GET /client/v4/accounts/*/ai/models/search")
    monkeypatch.setenv("RECONCILER_HTTP_BACKOFF", "0")
    with SandboxServer(tmp_path / "failing", tokens=(CANARY_TOKEN,), faults=faults) as failing:
        monkeypatch.setenv("CLOUDFLARE_API_BASE_URL", failing.cloudflare_base_url)
        text = cache.read_text().replace(cf_env.cloudflare_base_url, failing.cloudflare_base_url)
        cache.write_text(re.sub(r'"read_at": [0-9.e+]+', f'"read_at": {stamp}', text))
        result = cli("plan", "-c", project)
    ok(result)
    assert "checking base models against the bundled snapshot" in result.output


def test_plan_out_to_a_name_at_the_length_limit_is_written(
    cli: Cli, cf_env: SandboxServer, project: Path, tmp_path: Path
) -> None:
    """The temp file is named after the destination: a name of 250 bytes made it 268, too
    long for the folder, and a name the system allows could not be saved to."""
    out = tmp_path / ("p" * 250)
    ok(cli("plan", "-c", project, "-o", out))
    assert json.loads(out.read_text())["kind"] == "reconciler-plan"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_symlinked_catalogue_cache_is_not_followed(
    cli: Cli, cf_env: SandboxServer, project: Path, tmp_path: Path
) -> None:
    """A cache file is the project's own: a link to a copy elsewhere (which may say anything
    of the catalogue) is not read; the catalogue is read live and the link left alone."""
    ok(cli("plan", "-c", project))
    cache = project.parent / ".reconciler" / "catalogue.json"
    elsewhere = tmp_path / "their-catalogue.json"
    cache.rename(elsewhere)
    cache.symlink_to(elsewhere)
    kept = elsewhere.read_bytes()
    before = len(cf_env.request_log)
    ok(cli("plan", "-c", project))
    assert [p for _, p in cf_env.request_log[before:] if p.endswith("/ai/models/search")]
    assert cache.is_symlink() and elsewhere.read_bytes() == kept


@pytest.mark.parametrize("name", ["catalogue.json", "statcache.json"])
def test_a_state_file_nested_past_the_recursion_limit_is_ignored(
    cli: Cli, cf_env: SandboxServer, project: Path, name: str
) -> None:
    state = project.parent / ".reconciler"
    state.mkdir()
    (state / name).write_text("[" * 100_000)
    result = cli("plan", "-c", project)
    ok(result)
    assert "Plan: 2 to create" in result.stdout
