"""The pipeline examples call reconciler the way this version of it parses, install the right
distribution, keep the plan whatever its exit, and pass zizmor and GitHub's workflow schema."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from conftest import ROOT, Cli
from packaging.requirements import Requirement

from reconciler.cli.main import main
from reconciler.sandbox.server import SandboxServer

WORKFLOW = ROOT / "examples" / "github-actions" / "reconciler.yml"
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def workflow() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    return loaded


def steps() -> list[dict[str, Any]]:
    return [step for job in workflow()["jobs"].values() for step in job["steps"]]


def workflow_commands() -> list[str]:
    lines = [line.strip() for step in steps() if "run" in step for line in step["run"].splitlines()]
    return [re.sub(r"\s*>.*$", "", line) for line in lines if line.startswith("reconciler ")]


def reconciler_commands() -> list[str]:
    hook = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    return workflow_commands() + [h["entry"] for h in hook]


def one_command(prefix: str) -> list[str]:
    found = [shlex.split(c) for c in workflow_commands() if c.startswith(prefix)]
    assert len(found) == 1, found
    return found[0]


def test_the_examples_call_reconciler() -> None:
    commands = reconciler_commands()
    assert any(c.startswith("reconciler plan") and "-o reconciler.plan" in c for c in commands)
    assert "reconciler validate" in commands
    # apply takes the downloaded artifact: the file the plan step saved and uploaded
    apply = one_command("reconciler apply")
    assert len(apply) == 3 and Path(apply[2]).name == "reconciler.plan", apply


@pytest.mark.parametrize("command", reconciler_commands())
def test_each_command_parses(command: str, tmp_path: Path) -> None:
    args = shlex.split(command)[1:]
    context = main.make_context("reconciler", list(args), resilient_parsing=False)
    name, sub, rest = main.resolve_command(context, args)
    assert sub is not None, command
    assert isinstance(sub.make_context(name, rest, parent=context), click.Context)


def test_the_install_names_the_distribution() -> None:
    """pip refuses `reconciler @ git+...` (the distribution is finetune-reconciler) and would
    then take an unrelated `reconciler` from the index."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    named = re.search(r'^name = "([^"]+)"$', pyproject, re.MULTILINE)
    assert named is not None
    project = named.group(1)
    spec = Requirement(workflow()["env"]["RECONCILER_PIP"])
    assert spec.name == project == "finetune-reconciler"
    assert spec.url is not None and spec.url.startswith("git+https://")
    installs = [s["run"] for s in steps() if "pip install" in s.get("run", "")]
    assert installs and all(run == 'pip install "$RECONCILER_PIP"' for run in installs)


def test_the_plan_artifact_is_uploaded_whatever_the_exit() -> None:
    """A plan that exited 0 is uploaded too, or the merge's apply job fails at the download."""
    uploads = [s for s in steps() if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert len(uploads) == 1
    assert "if" not in uploads[0], uploads[0]
    assert uploads[0]["with"]["path"] == one_command("reconciler plan")[-1] == "reconciler.plan"


def test_actions_are_pinned_to_a_commit_with_the_version_noted() -> None:
    lines = WORKFLOW.read_text().splitlines()
    uses = [line for line in lines if line.strip().startswith(("uses:", "- uses:"))]
    assert len(uses) == sum("uses" in s for s in steps()) > 0
    for line in uses:
        ref, _, comment = line.split("uses:", 1)[1].partition("#")
        assert PINNED.match(ref.strip()), line
        assert re.fullmatch(r"v\d+(\.\d+)*", comment.strip()), line


def test_least_privilege_and_no_persisted_credentials() -> None:
    loaded = workflow()
    assert loaded["permissions"] == {}
    assert all("permissions" in job for job in loaded["jobs"].values())
    assert loaded["jobs"]["plan"]["permissions"]["contents"] == "read"
    checkouts = [s for s in steps() if s.get("uses", "").startswith("actions/checkout@")]
    assert checkouts and all(s["with"]["persist-credentials"] is False for s in checkouts)
    assert "secrets." not in yaml.safe_dump(loaded.get("env", {}))


def tool(name: str) -> str:
    """The tool beside this interpreter (the CI venv), else on PATH; skip if neither."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (.ci/run installs it: pip install {name})")
    return found


def test_zizmor_finds_nothing() -> None:
    # --offline: no GitHub API calls (no token here); every offline audit runs
    done = subprocess.run(
        [tool("zizmor"), "--offline", "--persona", "auditor", "--no-progress", str(WORKFLOW)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_valid_against_githubs_workflow_schema() -> None:
    done = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def run_step(cli: Cli, command: list[str]) -> int:
    """A workflow command as the runner runs it (its variables expanded), in the cwd."""
    return cli(*[os.path.expandvars(arg) for arg in command[1:]]).exit_code


def test_a_reviewed_plan_applies_with_or_without_changes(
    cli: Cli,
    cf_env: SandboxServer,
    versioned: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The workflow's plan and apply steps, then its commit-back staging: with changes, the
    lockfile and outputs files are staged, never the apply lock; a merged pull request whose
    plan exited 0 applies with exit 0 and stages nothing."""
    folder = versioned.parent
    monkeypatch.chdir(folder)
    monkeypatch.setenv("RUNNER_TEMP", str(tmp_path / "runner-temp"))
    git(folder, "init", "--quiet")
    git(folder, "add", "--all")
    git(folder, "commit", "--quiet", "--message", "the config")

    assert review_and_apply(cli, tmp_path / "runner-temp") == 2
    assert commit_back(folder) == ["finetunes.lock", "worker/loras.env", "worker/loras.json"]
    assert (folder / ".finetunes.lock.apply-lock").exists()
    git(folder, "commit", "--quiet", "--message", "applied")

    assert review_and_apply(cli, tmp_path / "runner-temp") == 0
    assert commit_back(folder) == []


def review_and_apply(cli: Cli, runner_temp: Path) -> int:
    """The plan job's plan, its artifact downloaded to RUNNER_TEMP, the apply job's apply;
    returns the plan's exit code."""
    plan, apply = one_command("reconciler plan"), one_command("reconciler apply")
    code = run_step(cli, plan)
    runner_temp.mkdir(exist_ok=True)
    shutil.move("reconciler.plan", runner_temp / "reconciler.plan")
    assert run_step(cli, apply) == 0
    return code


def commit_back(folder: Path) -> list[str]:
    """Runs the commit-back step's `git add` line; returns what it staged."""
    step = next(s["run"] for s in steps() if "git add" in s.get("run", ""))
    git(folder, *shlex.split(step.splitlines()[0])[1:])
    return git(folder, "diff", "--cached", "--name-only").split()


def git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
        "GIT_CONFIG_GLOBAL": os.devnull,
    }
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout
