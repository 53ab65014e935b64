"""What the sandbox is told at start (issue 20, L5 and L6): the clock speed, from
RECONCILER_SANDBOX_CLOCK_SPEED or --clock-speed, and the files --catalogue,
RECONCILER_SANDBOX_CATALOGUE and --faults @FILE name. A bad value is one clear error naming the
variable or option, exit 1; a FIFO or a device is refused at once (never read until memory
runs out, never waited on), and so is a regular file past the size bound."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Cli

from reconciler.sandbox import server
from reconciler.sandbox.cloudflare.catalogue import MAX_CATALOGUE_BYTES, Catalogue, CatalogueError
from reconciler.sandbox.common.clock import MAX_SPEED, SystemClock, parse_speed
from reconciler.sandbox.common.fault_spec import MAX_SPEC_BYTES, FaultSpec

SPEEDS = [
    "abc",
    "nan",
    "NaN",
    "-1",
    "0",
    "-0",
    "inf",
    "-inf",
    "1e400",
    f"{MAX_SPEED * 2:g}",
    "0x10",
]


# --- the clock speed -----------------------------------------------------------------------


@pytest.mark.parametrize("value", SPEEDS)
def test_a_bad_clock_speed_variable_is_named_and_exits_1(
    cli: Cli, project: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("RECONCILER_SANDBOX_CLOCK_SPEED", value)
    result = cli("plan", "--sandbox", "-c", project)
    assert result.exit_code == 1, result.output
    assert "Internal error" not in result.output
    assert result.stderr.splitlines()[-1] == (
        f"Error: RECONCILER_SANDBOX_CLOCK_SPEED must be a positive number, at most"
        f" {MAX_SPEED:,.0f} (how many times faster than real time simulated work runs),"
        f" got {value!r}"
    )
    assert not (project.parent / ".reconciler" / "sandbox").exists()  # nothing started


@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_clock_speed_variable_is_the_default(
    cli: Cli, project: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("RECONCILER_SANDBOX_CLOCK_SPEED", value)
    assert cli("plan", "--sandbox", "-c", project).exit_code == 0


@pytest.mark.parametrize("value", SPEEDS)
def test_a_bad_clock_speed_option_is_named_and_exits_1(
    cli: Cli, tmp_path: Path, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def serve(*args: object, **kwargs: object) -> None:
        raise AssertionError("a sandbox was started")  # it would serve until interrupted

    monkeypatch.setattr(server, "serve", serve)
    result = cli("sandbox", "--port", "0", "--data", tmp_path / "d", f"--clock-speed={value}")
    assert result.exit_code == 1, result.output
    assert "Internal error" not in result.output
    assert result.stdout == ""  # refused before anything is said or served
    assert (
        f"Error: Invalid value for '--clock-speed': must be a positive number, at most"
        f" {MAX_SPEED:,.0f}" in result.stderr
    )


@pytest.mark.parametrize(("text", "speed"), [("600", 600.0), (" 2.5 ", 2.5), ("1e3", 1000.0)])
def test_good_clock_speeds_are_read(text: str, speed: float) -> None:
    assert parse_speed(text) == speed
    assert SystemClock(parse_speed(text)).speed == speed


def test_the_clock_refuses_a_speed_that_would_overflow_its_arithmetic() -> None:
    with pytest.raises(ValueError, match="at most"):
        SystemClock(1e308)


# --- the files it reads --------------------------------------------------------------------


def run_bounded(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    """`reconciler ARGS` in a child held to 2 GiB of memory and 60 s: a read of /dev/zero fails
    there fast instead of taking the machine's memory, and a FIFO read that waits fails the
    test by timing out. Returns stderr; the child must exit 1."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    proc = subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=limit,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Internal error" not in proc.stderr and "Traceback" not in proc.stderr
    return proc.stderr


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe.json"
    os.mkfifo(path)
    return path


@pytest.fixture
def oversized(tmp_path: Path) -> Path:
    path = tmp_path / "big.json"
    with path.open("wb") as f:  # sparse: no bytes written but the last
        f.seek(max(MAX_CATALOGUE_BYTES, MAX_SPEC_BYTES))
        f.write(b"]")
    return path


def special(name: str, fifo: Path, oversized: Path) -> tuple[Path, str]:
    """The file, and what the error must say about it."""
    if name == "fifo":
        return fifo, "not a regular file (a FIFO)"
    if name == "device":
        return Path("/dev/zero"), "not a regular file (a character device)"
    return oversized, "larger than"


KINDS = ["fifo", "device", "oversized"]


@pytest.mark.parametrize("kind", KINDS)
def test_catalogue_option_reads_regular_files_only(
    tmp_path: Path, fifo: Path, oversized: Path, kind: str
) -> None:
    path, said = special(kind, fifo, oversized)
    err = run_bounded(
        "sandbox", "--port", "0", "--data", str(tmp_path / "d"), "--catalogue", str(path)
    )
    assert f"Error: Invalid value for --catalogue: cannot read catalogue {path}: {said}" in err


@pytest.mark.parametrize("kind", KINDS)
def test_catalogue_variable_reads_regular_files_only(
    tmp_path: Path, fifo: Path, oversized: Path, kind: str, project: Path
) -> None:
    path, said = special(kind, fifo, oversized)
    env = {"RECONCILER_SANDBOX_CATALOGUE": str(path)}
    err = run_bounded("sandbox", "--port", "0", "--data", str(tmp_path / "d"), env=env)
    assert f"cannot read catalogue {path}: {said}" in err
    err = run_bounded("plan", "--sandbox", "-c", str(project), env=env)
    assert err.splitlines()[-1].startswith(
        f"Error: RECONCILER_SANDBOX_CATALOGUE: cannot read catalogue {path}: {said}"
    )


@pytest.mark.parametrize("kind", KINDS)
def test_faults_file_reads_regular_files_only(
    tmp_path: Path, fifo: Path, oversized: Path, kind: str
) -> None:
    path, said = special(kind, fifo, oversized)
    err = run_bounded(
        "sandbox", "--port", "0", "--data", str(tmp_path / "d"), "--faults", f"@{path}"
    )
    assert f"Error: Invalid value for --faults: fault spec: cannot read {path}: {said}" in err


def test_a_catalogue_or_spec_within_the_bound_is_read(tmp_path: Path) -> None:
    spec = tmp_path / "faults.txt"
    spec.write_text("seed=3; status=503; rate=50%")
    assert FaultSpec.from_option(f"@{spec}").seed == 3
    with pytest.raises(ValueError, match="not a regular file \\(a folder\\)"):
        FaultSpec.from_file(tmp_path)  # a folder


@pytest.mark.parametrize(
    "text",
    ['{"rules": ' + "[" * 50_000 + "]" * 50_000 + "}", "rules:\n" + "- " * 5000 + "x\n",
     "rules: " + "[" * 50_000 + "]" * 50_000],
    ids=["json", "yaml-block", "yaml-flow"],
)  # fmt: skip
def test_a_fault_spec_nested_too_deep_is_a_clear_error(text: str) -> None:
    with pytest.raises(ValueError, match=r"fault spec: .*nested"):
        FaultSpec.parse(text)


@pytest.mark.parametrize(
    "text",
    ["latency=" + "9" * 400, "rate_limit=1/" + "9" * 400, "latency=86401",
     "rate_limit=5/1441m"],
)  # fmt: skip
def test_a_fault_duration_must_be_finite_and_at_most_a_day(text: str) -> None:
    with pytest.raises(ValueError, match=r"fault spec: .* at most 1 day \(86400 s\)"):
        FaultSpec.parse(text)


def test_a_fault_duration_up_to_a_day_is_taken() -> None:
    assert FaultSpec.parse("latency=1440m").rules[0].latency == 86400.0
    assert FaultSpec.parse("rate_limit=5/24m").rate_limit is not None


# --- the state folder ----------------------------------------------------------------------


def broken_state(kind: str, tmp_path: Path) -> tuple[Path, str]:
    """A state folder that cannot be used, and what the error must say about it."""
    folder = tmp_path / "state"
    if kind == "device":
        return Path("/dev/null"), "not a folder (a character device)"
    folder.mkdir()
    if kind == "fifo-db":
        os.mkfifo(folder / "sandbox.sqlite3")
        return folder, "sandbox.sqlite3 is not a regular file (a FIFO)"
    (folder / "sandbox.sqlite3").write_bytes(b"not a database, whatever it says " * 200)
    return folder, "file is not a database"


@pytest.mark.parametrize("kind", ["device", "fifo-db", "garbage-db"])
def test_a_state_folder_that_cannot_be_used_is_a_clear_error(
    cli: Cli, tmp_path: Path, kind: str
) -> None:
    folder, said = broken_state(kind, tmp_path)
    result = cli("sandbox", "--port", "0", "--data", folder)
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines()[-1] == (
        f"Error: the sandbox cannot use its state folder {folder}: {said}"
    )


@pytest.mark.parametrize("kind", ["fifo-db", "garbage-db"])
def test_a_project_sandbox_that_cannot_be_used_is_a_clear_error(
    cli: Cli, project: Path, kind: str
) -> None:
    state = project.parent / ".reconciler"
    state.mkdir(exist_ok=True)
    folder, said = broken_state(kind, state)
    folder.rename(state / "sandbox")
    result = cli("plan", "--sandbox", "-c", project)
    assert result.exit_code == 1, result.output
    assert "Internal error" not in result.output
    assert result.stderr.splitlines()[-1] == (
        f"Error: the sandbox cannot use its state folder {state / 'sandbox'}: {said}"
    )


# --- names the catalogue serves --------------------------------------------------------------


@pytest.mark.parametrize("name", ["@cf/acme/bot\x1b[2J", "@cf/acme/a\x00b", "@cf/ac\x7fme/b"])
def test_a_catalogue_model_name_with_a_control_character_is_refused(
    tmp_path: Path, name: str
) -> None:
    path = tmp_path / "catalogue.json"
    path.write_text(json.dumps([{"name": name}]))
    with pytest.raises(CatalogueError, match="'name' must be a model name like @cf/author/model"):
        Catalogue.load(path)
