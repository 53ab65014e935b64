"""The terminal experience that needs no terminal: exit codes of usage errors and Terraform's
spellings, -v after the command, colour switches, what retries and a held lock say, messages
that name the way out, `reconciler list`, completion, no stray .reconciler/ folder."""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from conftest import ACCOUNT, Cli

from reconciler.base.model import (
    Desired,
    DesiredFinetune,
    LockedFinetune,
    Observed,
    Recorded,
    RemoteFinetune,
)
from reconciler.cli.main import main
from reconciler.sandbox import DEFAULT_TOKEN
from reconciler.sandbox.server import SandboxServer
from reconciler.state.runlock import exclusive
from reconciler.workflow.inventory import classify

MODEL = "@cf/mistral/mistral-7b-instruct-v0.2-lora"


def by_hand(server: SandboxServer, name: str) -> str:
    """A finetune made in the account without reconciler; returns its id."""
    response = httpx.post(
        f"{server.cloudflare_base_url}/accounts/{ACCOUNT}/ai/finetunes",
        headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"},
        json={"name": name, "model": MODEL},
    )
    response.raise_for_status()
    return str(response.json()["result"]["id"])


# -- usage errors exit 1, never 2 ------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("plan", "--bogus"),
        ("--bogus", "plan"),
        ("plna",),
        ("plan", "--format", "yaml"),
        ("apply", "--parallelism", "0"),
        ("drift", "extra-argument"),
        ("import",),
    ],
)
def test_usage_errors_exit_1_not_the_changes_code(cli: Cli, args: tuple[str, ...]) -> None:
    result = cli(*args)
    assert result.exit_code == 1, result.output
    assert "Error:" in result.stderr


@pytest.mark.parametrize(
    ("args", "meant"),
    [
        (("apply", "-auto-approve"), "--auto-approve"),
        (("plan", "-detailed-exitcode"), "--detailed-exitcode"),
        (("plan", "-out", "x.plan"), "--out"),
        (("plan", "-out=x.plan"), "--out"),
        (("plan", "-target", "faq-bot-v1"), "--target"),
        (("plan", "-target=faq-bot-v1"), "--target"),
        (("plan", "-no-color"), "--no-color"),
        (("-no-color", "plan"), "--no-color"),
        (("drift", "-json"), "--format json"),
        (("apply", "-lock-timeout", "5"), "--lock-timeout"),
    ],
)
def test_terraform_single_dash_spellings_get_a_hint(
    cli: Cli, project: Path, args: tuple[str, ...], meant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project.parent)
    result = cli(*args)
    assert result.exit_code == 1, result.output
    last = result.stderr.strip().splitlines()[-1]
    assert last == (
        f"Error: {args[1] if args[0] != '-no-color' else args[0]} is Terraform's spelling; "
        f"reconciler's options take two dashes: {meant}"
    )
    # click alone would have read `-out` as `-o ut` and saved the plan to a file named "ut"
    assert not (project.parent / "ut").exists() and not (project.parent / "ut=x.plan").exists()
    assert result.stdout == ""


def test_a_value_that_looks_like_a_terraform_word_is_left_alone(
    cli: Cli, cf_env: SandboxServer, project: Path
) -> None:
    # -vv is -v twice, and a config file may be named anything
    odd = project.parent / "-out"
    odd.write_text(project.read_text())
    result = cli("-vv", "plan", "-c", odd)
    assert result.exit_code == 0, result.output


# -- -v after the command, and what each verbosity shows ---------------------------------------


def test_v_after_the_command_logs_each_request_and_step(
    cli: Cli, cf_env: SandboxServer, project: Path
) -> None:
    quiet = cli("plan", "-c", project)
    assert "GET /accounts/" not in quiet.stderr
    planned = cli("plan", "-c", project, "-v")
    assert planned.exit_code == 0, planned.output
    assert f"http: GET /accounts/{ACCOUNT}/ai/finetunes -> 200 in " in planned.stderr
    applied = cli("apply", "-c", project, "--auto-approve", "-v")
    assert applied.exit_code == 0, applied.output
    assert "apply: support-bot-v3: create..." in applied.stderr
    assert f"http: POST /accounts/{ACCOUNT}/ai/finetunes -> 200 in " in applied.stderr
    both = cli("-v", "drift", "-c", project, "-v")  # before and after add up to -vv
    assert "answered" in both.stderr  # -vv's detail line


def test_vv_shows_no_raw_library_debug_lines(
    cli: Cli, cf_env: SandboxServer, project: Path
) -> None:
    result = cli("-vv", "plan", "-c", project)
    assert result.exit_code == 0, result.output
    assert "http: GET /accounts/" in result.stderr
    for raw in ("HTTP Request:", "connect_tcp", "send_request_headers", "receive_response"):
        assert raw not in result.stderr, raw


# -- colour: on where asked, off with --no-color and NO_COLOR ----------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("plan",),
        ("drift",),
        ("list",),
        ("test",),
    ],
)
def test_colour_is_forced_on_and_turned_off_everywhere(
    cli: Cli, cf_env: SandboxServer, project: Path, args: tuple[str, ...], monkeypatch
) -> None:
    by_hand(cf_env, "made-by-hand")  # something for drift and list to show
    if args[0] == "test":
        assert cli("apply", "-c", project, "--auto-approve").exit_code == 0
        project.write_text(project.read_text().replace("[refund, damaged]", "[refund, zebra]"))
    runner = CliRunner()
    monkeypatch.setenv("FORCE_COLOR", "1")
    coloured = runner.invoke(main, [*args, "-c", str(project)], color=True)
    assert "\x1b[" in coloured.output, coloured.output
    for extra, env in ((["--no-color"], {}), ([], {"NO_COLOR": "1"})):
        plain = runner.invoke(main, [*args, "-c", str(project), *extra], color=True, env=env)
        assert "\x1b[" not in plain.output, (extra, env, plain.output)
        assert plain.exit_code == coloured.exit_code
    if args[0] == "test":  # the FAIL cell is red, the pass cell green
        assert "\x1b[31m\x1b[1mFAIL" in coloured.output
        assert "\x1b[32mpass" in coloured.output


def test_validate_colours_its_problems_and_no_color_turns_it_off(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.write_text(project.read_text().replace("adapters/faq-v1/", "adapters/nowhere/"))
    monkeypatch.setenv("FORCE_COLOR", "1")
    runner = CliRunner()
    coloured = runner.invoke(main, ["validate", "-c", str(project)], color=True)
    assert coloured.exit_code == 1
    assert "\x1b[31m\x1b[1merror:\x1b[0m" in coloured.stderr
    plain = runner.invoke(main, ["--no-color", "validate", "-c", str(project)], color=True)
    assert plain.exit_code == 1 and "\x1b[" not in plain.stderr


# -- what retries and the apply lock say, at once ---------------------------------------------


def test_an_unreachable_endpoint_says_retrying_on_the_first_failure(
    cli: Cli, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", DEFAULT_TOKEN)
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", ACCOUNT)
    monkeypatch.setenv("CLOUDFLARE_API_BASE_URL", f"http://127.0.0.1:{port}/client/v4")
    monkeypatch.setenv("RECONCILER_HTTP_ATTEMPTS", "3")
    monkeypatch.setenv("RECONCILER_HTTP_BACKOFF", "0.01")
    result = cli("plan", "-c", project)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    retrying = [line for line in lines if "retrying" in line]
    # each call (the catalogue's read, the list) says so on its first failure, only then
    assert retrying, result.stderr
    for line in retrying:
        assert line.startswith("Warning: ")
        assert f"cannot reach http://127.0.0.1:{port}/client/v4" in line
        assert line.endswith("(attempt 2 of 3)")
    assert lines[-1].startswith("Error: ") and "after 3 attempts" in lines[-1]
    verbose = cli("plan", "-c", project, "-v")
    later = [line for line in verbose.stderr.splitlines() if "(attempt 3 of 3)" in line]
    assert later and all("retrying" in line for line in later)  # -v: every attempt


def test_waiting_for_the_apply_lock_is_said_as_soon_as_it_starts(
    cli: Cli, cf_env: SandboxServer, project: Path
) -> None:
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with exclusive(project.with_suffix(".lock"), 5):
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        held.wait(5)
        result = cli("apply", "-c", project, "--auto-approve", "--lock-timeout", "0.3")
    finally:
        release.set()
        holder.join()
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"Warning: waiting for the lock on {project.with_suffix('.lock')}")
    assert "held by reconciler" in lines[0] and "giving up after 0.3s (--lock-timeout)" in lines[0]
    assert "waited 0.3s" in lines[-1]


# -- validate: every problem at once, and the quick start validates as it is ------------------


def test_an_unset_account_hides_no_other_problem(
    cli: Cli, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLOUDFLARE_ACCOUNT_ID", raising=False)
    project.write_text(project.read_text().replace("adapters/faq-v1/", "adapters/nowhere/"))
    result = cli("plan", "-c", project)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{project}:6:17: error: providers.cloudflare.account_id: environment variable "
        "CLOUDFLARE_ACCOUNT_ID is not set (referenced as ${CLOUDFLARE_ACCOUNT_ID}); set it or "
        "write ${CLOUDFLARE_ACCOUNT_ID:-default}",
        f"{project}:25:14: error: finetune 'faq-bot-v1': adapter folder adapters/nowhere/ does "
        "not exist",
        "2 problems found; nothing was changed.",
    ]


def test_validate_works_in_the_quick_start_without_an_account(
    cli: Cli, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLOUDFLARE_ACCOUNT_ID", raising=False)
    monkeypatch.chdir(project.parent)
    result = cli("validate")
    assert result.exit_code == 0, result.output
    assert result.stdout == "finetunes.yaml is valid: 2 finetunes.\n"
    assert "CLOUDFLARE_ACCOUNT_ID is not set" in result.stderr
    assert "export CLOUDFLARE_ACCOUNT_ID=" in result.stderr
    # with it set, nothing to note
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", ACCOUNT)
    assert cli("validate").stderr == ""


# -- did you mean ------------------------------------------------------------------------------


def test_did_you_mean_for_a_misspelt_key_and_model(
    cli: Cli, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", ACCOUNT)
    project.write_text(
        project.read_text().replace("adapter: adapters/faq", "adaptor: adapters/faq")
    )
    result = cli("validate", "-c", project)
    assert "unknown key 'adaptor' (did you mean 'adapter'?); expected one of:" in result.stderr
    project.write_text(
        project.read_text()
        .replace("adaptor: adapters/faq", "adapter: adapters/faq")
        .replace("mistral-7b-instruct-v0.2-lora", "mistral-7b-instruct-v0.2-lroa")
    )
    result = cli("validate", "-c", project)
    assert result.exit_code == 0, result.output
    assert "(did you mean @cf/mistral/mistral-7b-instruct-v0.2-lora?)" in result.stderr


def test_did_you_mean_for_a_misspelt_target(cli: Cli, cf_env: SandboxServer, project: Path) -> None:
    result = cli("plan", "-c", project, "--target", "faq-bot-v2")
    assert result.exit_code == 1
    assert "(did you mean 'faq-bot-v1'?)" in result.stderr


# -- sizes in apply as in the plan ------------------------------------------------------------


def test_apply_shows_sizes_in_the_plans_units(
    cli: Cli, cf_env: SandboxServer, project: Path
) -> None:
    result = cli("apply", "-c", project, "--auto-approve")
    assert result.exit_code == 0, result.output
    assert "uploaded (273 B, sha256:aee98cc9d669…)" in result.stdout
    assert "uploaded (2.5 KiB, sha256:08c10d5b3eb0…)" in result.stdout
    assert "bytes" not in result.stdout
    # off a terminal, an upload says when it starts, once
    assert (
        result.stdout.count("... support-bot-v3: uploading adapter_model.safetensors (2.5 KiB)...")
        == 1
    )


# -- the way out, named ------------------------------------------------------------------------


def test_forget_names_the_way_back(cli: Cli, cf_env: SandboxServer, project: Path) -> None:
    assert cli("apply", "-c", project, "--auto-approve").exit_code == 0
    forgot = cli("forget", "faq-bot-v1", "-c", project)
    assert forgot.exit_code == 0
    assert "`reconciler import faq-bot-v1`" in forgot.stderr
    planned = cli("plan", "-c", project)
    assert planned.exit_code == 1
    assert "`reconciler import faq-bot-v1`" in planned.stdout


# -- reconciler list ---------------------------------------------------------------------------


def test_list_marks_managed_unmanaged_and_leftover(
    cli: Cli, cf_env: SandboxServer, project: Path
) -> None:
    assert cli("apply", "-c", project, "--auto-approve").exit_code == 0
    by_hand(cf_env, "made-by-hand")
    # faq-bot-v1 leaves the config: still in the lockfile until the next apply
    text = project.read_text()
    project.write_text(text[: text.index("  - name: faq-bot-v1")])
    table = cli("list", "-c", project)
    assert table.exit_code == 0, table.output
    rows = {line.split()[0]: line.split()[1] for line in table.stdout.splitlines()[2:] if line}
    assert rows["support-bot-v3"] == "managed"
    assert rows["faq-bot-v1"] == "leftover"
    assert rows["made-by-hand"] == "unmanaged"
    assert table.stdout.splitlines()[-1] == (
        f"3 finetunes in cloudflare account {ACCOUNT}: 1 managed, 1 leftover, 1 unmanaged."
    )
    as_json = json.loads(cli("list", "-c", project, "--format", "json").stdout)
    assert as_json["format_version"] == 1
    states = {f["name"]: f["state"] for f in as_json["finetunes"]}
    assert states == {
        "support-bot-v3": "managed",
        "faq-bot-v1": "leftover",
        "made-by-hand": "unmanaged",
    }
    # one list request per account, nothing else
    gets = [c for c in cf_env.request_log if c[0] == "GET" and c[1].endswith("/ai/finetunes")]
    assert len(gets) >= 1
    assert not [c for c in cf_env.request_log[-2:] if c[0] != "GET"]


def test_list_says_how_to_adopt_a_declared_finetune_that_is_not_recorded(
    cli: Cli, cf_env: SandboxServer, project: Path
) -> None:
    by_hand(cf_env, "faq-bot-v1")
    result = cli("list", "-c", project, "--format", "json")
    (found,) = json.loads(result.stdout)["finetunes"]
    assert found["state"] == "unmanaged"
    assert "`reconciler import faq-bot-v1`" in found["note"]


def test_a_retired_version_is_leftover() -> None:
    from reconciler.base import model

    locked_version = getattr(model, "LockedVersion", None)
    if locked_version is None:
        pytest.skip("this lockfile has no versions yet")
    remote = (
        RemoteFinetune("cloudflare", ACCOUNT, "id-new", "bot-bbbbbbbb", MODEL, None, False),
        RemoteFinetune("cloudflare", ACCOUNT, "id-old", "bot-aaaaaaaa", MODEL, None, False),
    )
    current = LockedFinetune(
        name="bot", provider="cloudflare", account=ACCOUNT, id="id-new", model=MODEL, assets={}
    )
    old = locked_version(
        version="aaaaaaaa",
        remote_name="bot-aaaaaaaa",
        provider="cloudflare",
        account=ACCOUNT,
        id="id-old",
        model=MODEL,
        assets={},
    )
    recorded = Recorded(
        finetunes={"bot": current},
        endpoints={},
        **{"versions": {"bot": {"aaaaaaaa": old}}},  # (a field of versioned lockfiles)
    )
    bot = DesiredFinetune("bot", "cloudflare", ACCOUNT, MODEL, None, False, ())
    desired = Desired(config_path=Path("f.yaml"), finetunes=(bot,), accounts={})
    observed = Observed({("cloudflare", ACCOUNT): remote})
    found = {h.name: h for h in classify(desired, recorded, observed)}
    assert found["bot-bbbbbbbb"].state == "managed"
    assert found["bot-aaaaaaaa"].state == "leftover"
    assert found["bot-aaaaaaaa"].note == "retired version aaaaaaaa of bot"
    assert found["bot-aaaaaaaa"].finetune == "bot"


# -- completion --------------------------------------------------------------------------------


def complete(project: Path, words: str) -> list[str]:
    """What bash completion offers for the last word of `words` (click's protocol)."""
    runner = CliRunner()
    env = {
        "_RECONCILER_COMPLETE": "bash_complete",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1)),
    }
    result = runner.invoke(main, [], env=env, prog_name="reconciler")
    return [line.split(",", 1)[1] for line in result.stdout.splitlines() if line]


def test_completion_offers_finetune_names(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project.parent)
    project.with_suffix(".lock").write_text(
        json.dumps({"format_version": 1, "finetunes": {"old-bot": {}, "faq-bot-v1": {}}})
    )
    both = ["faq-bot-v1", "old-bot", "support-bot-v3"]
    assert complete(project, "reconciler plan --target ") == both
    assert complete(project, "reconciler apply --target s") == ["support-bot-v3"]
    assert complete(project, "reconciler forget ") == ["faq-bot-v1", "old-bot"]
    assert complete(project, "reconciler import ") == ["faq-bot-v1", "support-bot-v3"]
    assert "support-bot-v3" in complete(project, "reconciler show ")
    other = project.parent / "other.yaml"
    other.write_text("version: 1\nfinetunes:\n  - name: elsewhere\n")
    assert complete(project, f"reconciler import -c {other} ") == ["elsewhere"]
    project.write_text("{ not yaml")
    assert complete(project, "reconciler import ") == []  # never an error, just nothing


# -- nothing left behind -----------------------------------------------------------------------


@pytest.mark.parametrize("sandbox", [True, False])
def test_no_config_no_folder_left_behind(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: bool
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", ACCOUNT)
    for command in (["plan"], ["apply", "--auto-approve"], ["drift"], ["list"]):
        result = cli(*command, *(["--sandbox"] if sandbox else []))
        assert result.exit_code == 1
        assert "finetunes.yaml: error: file not found (use -c to name the config)" in result.stderr
    assert os.listdir(empty) == []
