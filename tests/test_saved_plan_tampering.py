"""A saved plan cannot be altered: apply re-plans from the current inputs and refuses unless
the result equals the file in every action, field, path and digest. Every edit below is
refused with a clear message, exit 1, no request sent and the lockfile untouched."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli

from reconciler.sandbox.server import SandboxServer
from reconciler.state import planfile as planfile_mod

Edit = Callable[[dict[str, Any], Path], None]


def writes(sandbox: SandboxServer) -> int:
    return len([c for c in sandbox.request_log if c[0] != "GET"])


def make_plan(cli: Cli, project: Path, planfile: Path) -> dict[str, Any]:
    made = cli("plan", "-c", project, "-o", planfile)
    assert made.exit_code == 0, made.output
    data: dict[str, Any] = json.loads(planfile.read_text())
    return data


def change(data: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in data["plan"]["changes"] if c["name"] == name)
    return found


def refused(cli: Cli, sandbox: SandboxServer, project: Path, planfile: Path) -> str:
    lock = project.with_suffix(".lock")
    before_lock = lock.read_bytes() if lock.exists() else None
    before = writes(sandbox)
    result = cli("apply", planfile, "-c", project)
    assert result.exit_code == 1, result.output
    assert "Nothing was applied" in result.stderr, result.stderr
    assert result.stderr.startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    assert writes(sandbox) == before
    assert (lock.read_bytes() if lock.exists() else None) == before_lock
    return result.stderr


def test_an_upload_path_pointed_outside_the_project_is_refused(
    cli: Cli, cf_env: SandboxServer, project: Path, tmp_path: Path
) -> None:
    """The issue's example: path, public and description edited, fingerprints left alone."""
    planfile = tmp_path / "review.plan"
    data = make_plan(cli, project, planfile)
    outside = tmp_path / "private.json"
    outside.write_text('{"model_type": "gemma", "r": 8, "lora_alpha": 16}')
    faq = change(data, "faq-bot-v1")
    faq["desired"]["public"] = True
    faq["desired"]["description"] = "edited after review"
    for step in faq["steps"]:
        if step["asset"] == "adapter_config.json":
            step["path"] = str(outside)
    planfile.write_text(json.dumps(data))

    message = refused(cli, cf_env, project, planfile)
    assert f"the saved plan {planfile} does not match" in message
    assert "cloudflare.faq-bot-v1" in message
    assert f"{outside} is outside the config's folder" in message
    assert "desired.public: the file says true, the inputs plan false" in message
    assert "desired.description" in message


def _set(path: str, value: Any) -> Edit:
    def edit(data: dict[str, Any], folder: Path) -> None:
        target: Any = change(data, "faq-bot-v1")
        *parents, last = path.split(".")
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return edit


def _steps(fn: Callable[[list[Any]], list[Any]]) -> Edit:
    def edit(data: dict[str, Any], folder: Path) -> None:
        faq = change(data, "faq-bot-v1")
        faq["steps"] = fn(faq["steps"])

    return edit


def _drop_change(data: dict[str, Any], folder: Path) -> None:
    data["plan"]["changes"] = [c for c in data["plan"]["changes"] if c["name"] != "faq-bot-v1"]


def _swap_changes(data: dict[str, Any], folder: Path) -> None:
    data["plan"]["changes"].reverse()


def _sibling_path(data: dict[str, Any], folder: Path) -> None:
    # inside the project, but the other finetune's file
    for step in change(data, "faq-bot-v1")["steps"]:
        if step["asset"] == "adapter_config.json":
            step["path"] = "adapters/support-v3/adapter_config.json"


def _dotdot_path(data: dict[str, Any], folder: Path) -> None:
    for step in change(data, "faq-bot-v1")["steps"]:
        if step["asset"] == "adapter_config.json":
            step["path"] = "../private.json"


def _plan_key(data: dict[str, Any], folder: Path) -> None:
    data["plan"]["retry"] = True


def _git_path(data: dict[str, Any], folder: Path) -> None:
    (folder / ".git").mkdir()
    (folder / ".git" / "config").write_text("[core]\n")
    change(data, "faq-bot-v1")["steps"][1]["path"] = ".git/config"


def _endpoint(data: dict[str, Any], folder: Path) -> None:
    data["plan"]["endpoints"]["cloudflare"] = "https://evil.example"


def _extra_change(data: dict[str, Any], folder: Path) -> None:
    extra = json.loads(json.dumps(change(data, "faq-bot-v1")))
    extra["name"] = "smuggled"
    data["plan"]["changes"].append(extra)


EDITS: dict[str, tuple[Edit, str]] = {
    "action create -> upload": (_set("action", "upload"), "action: the file says 'upload'"),
    "reason": (_set("reason", "trust me"), "reason: the file says 'trust me'"),
    "public as 1": (_set("desired.public", 1), "desired.public: the file says 1"),
    "field after": (_set("fields.0.after", "@cf/x"), "fields[0].after"),
    "model": (_set("desired.model", "@cf/meta/x"), "desired.model"),
    "remote id": (_set("remote_id", "0000"), "remote_id: the file says '0000'"),
    "account": (_set("account", "f" * 32), "account"),
    "name (target)": (_set("name", "other-bot"), "cloudflare.other-bot"),
    "asset name": (
        _set("steps.1.asset", "adapter_model.safetensors"),
        "steps[1]: the file says 'upload adapter_model.safetensors from "
        "adapters/faq-v1/adapter_config",
    ),
    "digest": (_set("steps.1.digest.sha256", "sha256:" + "0" * 64), "steps[1].digest.sha256"),
    "digest size": (_set("steps.1.digest.size", 1), "steps[1].digest.size"),
    "asset after": (_set("assets.0.after", None), "assets[0].after"),
    "step removed": (_steps(lambda s: s[:-1]), "steps: the file has 2, the inputs plan 3"),
    "step added": (_steps(lambda s: [*s, s[-1]]), "steps: the file has 4, the inputs plan 3"),
    "steps reordered": (
        _steps(lambda s: s[1:] + s[:1]),
        "steps[0]: the file says 'upload adapter_config.json from adapters/faq-v1/adapter_config"
        ".json', the inputs plan 'create'",
    ),
    "step kind": (
        _steps(lambda s: [{**s[0], "kind": "adopt"}, *s[1:]]),
        "steps[0]: the file says 'adopt', the inputs plan 'create'",
    ),
    "warning added": (_set("warnings", ["fine"]), "warnings"),
    "change removed": (_drop_change, "has no change for cloudflare.faq-bot-v1"),
    "change added": (_extra_change, "cloudflare.smuggled"),
    "changes reordered": (_swap_changes, "in another order"),
    "sibling's file": (_sibling_path, "adapters/support-v3/adapter_config.json"),
    "../ path": (_dotdot_path, "is outside the config's folder"),
    "endpoint": (_endpoint, "endpoints.cloudflare"),
    "a key added to a change": (
        _set("note", "ok"),
        "note: the file says 'ok', the inputs plan nothing",
    ),
    "a key added to the plan": (_plan_key, "retry: the file says true, the inputs plan nothing"),
    "desired set to null": (_set("desired", None), "desired: the file says null"),
    "a path into .git": (
        _git_path,
        "steps[1]: the file says 'upload adapter_config.json from .git/config', the inputs plan "
        "'upload adapter_config.json from adapters/faq-v1/adapter_config.json'",
    ),
}


@pytest.mark.parametrize("name", list(EDITS))
def test_every_edit_of_a_saved_plan_is_refused(
    cli: Cli, cf_env: SandboxServer, project: Path, tmp_path: Path, name: str
) -> None:
    planfile = tmp_path / "review.plan"
    data = make_plan(cli, project, planfile)
    edit, expected = EDITS[name]
    edit(data, project.parent)
    planfile.write_text(json.dumps(data, indent=1))
    message = refused(cli, cf_env, project, planfile)
    assert expected in message, message


@pytest.mark.parametrize("name", list(EDITS))
def test_every_edit_is_refused_even_with_the_seal_recomputed(
    cli: Cli, cf_env: SandboxServer, project: Path, tmp_path: Path, name: str
) -> None:
    """The seal is no signature: an editor who recomputes it on purpose still meets the
    comparison with a fresh plan, which names the same difference."""
    planfile = tmp_path / "review.plan"
    data = make_plan(cli, project, planfile)
    edit, expected = EDITS[name]
    edit(data, project.parent)
    data[planfile_mod.SEAL] = planfile_mod.seal(data)
    planfile.write_text(json.dumps(data, indent=1))
    message = refused(cli, cf_env, project, planfile)
    assert expected in message, message
    assert "Its fingerprints match the current inputs" in message
    assert "sha256 it was saved with" not in message


def test_an_edited_plan_of_an_applied_project_is_refused(
    cli: Cli, cf_env: SandboxServer, project: Path, tmp_path: Path
) -> None:
    """Against a lockfile: a no-op plan turned into a re-upload is refused too."""
    assert cli("apply", "-c", project, "--auto-approve").exit_code == 0
    planfile = tmp_path / "review.plan"
    data = make_plan(cli, project, planfile)
    faq = change(data, "faq-bot-v1")
    assert faq["action"] == "noop"
    faq["action"] = "upload"
    faq["steps"] = [
        {
            "kind": "upload",
            "asset": "adapter_config.json",
            "path": str(tmp_path / "x"),
            "asset_kind": None,
            "digest": None,
        }
    ]
    planfile.write_text(json.dumps(data))
    assert "steps: the file has 1, the inputs plan 0" in refused(cli, cf_env, project, planfile)


def test_a_plan_made_with_prune_needs_prune_to_apply(
    cli: Cli, cf_env: SandboxServer, project: Path, tmp_path: Path
) -> None:
    """A forget edited into a delete (or a pruned plan applied without --prune) is refused."""
    assert cli("apply", "-c", project, "--auto-approve").exit_code == 0
    text = project.read_text()
    project.write_text(text[: text.index("  - name: faq-bot-v1")])
    planfile = tmp_path / "review.plan"
    data = make_plan(cli, project, planfile)
    faq = change(data, "faq-bot-v1")
    assert faq["action"] == "forget"
    faq["action"] = "delete"
    faq["steps"] = [
        {"kind": "delete", "asset": None, "path": None, "asset_kind": None, "digest": None}
    ]
    planfile.write_text(json.dumps(data))
    message = refused(cli, cf_env, project, planfile)
    assert "action: the file says 'delete', the inputs plan 'forget'" in message
    assert "--prune" in message


def test_an_untouched_targeted_plan_still_applies(
    cli: Cli, cf_env: SandboxServer, project: Path, tmp_path: Path
) -> None:
    planfile = tmp_path / "review.plan"
    made = cli("plan", "-c", project, "-o", planfile, "--target", "faq-bot-v1")
    assert made.exit_code == 0, made.output
    applied = cli("apply", planfile, "-c", project)
    assert applied.exit_code == 0, applied.output
    assert "Apply complete: 1 created, 2 uploaded, 0 forgotten." in applied.stdout
    assert list(json.loads(project.with_suffix(".lock").read_text())["finetunes"]) == ["faq-bot-v1"]


def _duplicate_keys(text: str) -> str:
    return text.replace('"kind": "reconciler-plan"', '"kind": "reconciler-plan", "kind": "x"', 1)


def _nan(text: str) -> str:
    return text.replace('"format_version": 1', '"format_version": 1, "extra": NaN', 1)


def _deep(text: str) -> str:
    return text.replace('"plan": {', '"plan": ' + "[" * 100_000 + "]" * 100_000 + ', "x": {', 1)


def _huge(text: str) -> str:
    return text[:-2] + ', "padding": "' + "x" * (70 * 1024 * 1024) + '"}\n'


FILES: dict[str, tuple[Callable[[str], str], str]] = {
    "truncated": (lambda t: t[: len(t) // 2], "not valid JSON"),
    "not UTF-8": (lambda t: "\udcff", "not UTF-8"),
    "duplicate key": (_duplicate_keys, "the key 'kind' appears twice"),
    "NaN": (_nan, "NaN is not JSON"),
    "nested 100,000 deep": (_deep, "nested too deeply"),
    "70 MB": (_huge, "is larger than 64 MB"),
    "a list": (lambda t: "[]", "not a reconciler plan file"),
    "changes not a list": (
        lambda t: json.dumps({**json.loads(t), "plan": {"changes": {"a": 1}, "endpoints": {}}}),
        "damaged",
    ),
    "format_version true": (
        lambda t: t.replace('"format_version": 1', '"format_version": true', 1),
        "plan format_version True is not the one this reconciler reads",
    ),
    "a byte order mark": (lambda t: "\ufeff" + t, "not valid JSON"),
    "targets not a list": (
        lambda t: json.dumps({**json.loads(t), "targets": "cloudflare.faq-bot-v1"}),
        "targets is not a list",
    ),
    "a step without its kind": (
        lambda t: t.replace('"kind": "create",', "", 1),
        "damaged",
    ),
}


@pytest.mark.parametrize("name", list(FILES))
def test_a_damaged_plan_file_is_refused_clearly(
    cli: Cli, cf_env: SandboxServer, project: Path, tmp_path: Path, name: str
) -> None:
    planfile = tmp_path / "review.plan"
    make_plan(cli, project, planfile)
    damage, expected = FILES[name]
    text = damage(planfile.read_text())
    planfile.write_bytes(text.encode("utf-8", "surrogateescape"))
    before = len(cf_env.request_log)
    result = cli("apply", planfile, "-c", project)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"Error: {planfile}: "), result.stderr[:300]
    assert expected in result.stderr, result.stderr[:300]
    assert len(result.stderr) < 2000
    assert len(cf_env.request_log) == before  # refused before any call


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "folder"])
def test_a_plan_file_that_is_not_a_file_is_refused_at_once(
    cli: Cli, cf_env: SandboxServer, project: Path, tmp_path: Path, kind: str
) -> None:
    if kind == "fifo":
        target = tmp_path / "review.plan"
        os.mkfifo(target)
    elif kind == "dev-zero":
        target = Path("/dev/zero")
    else:
        target = tmp_path / "folder.plan"
        target.mkdir()
    result = cli("apply", target, "-c", project)
    assert result.exit_code in (1, 2), result.output  # a folder: click's own usage error
    if kind != "folder":
        assert "is not a regular file" in result.stderr
    assert cf_env.request_log == []


def test_a_plan_naming_external_assets_applies_when_the_config_allows_them(
    cli: Cli, cf_env: SandboxServer, project: Path, tmp_path: Path
) -> None:
    import shutil

    shutil.copytree(project.parent / "adapters" / "faq-v1", tmp_path / "shared" / "faq")
    text = project.read_text().replace("adapter: adapters/faq-v1/", "adapter: ../shared/faq/")
    project.write_text(text + "settings:\n  allow_external_assets: true\n")
    planfile = tmp_path / "review.plan"
    data = make_plan(cli, project, planfile)
    paths = [s["path"] for s in change(data, "faq-bot-v1")["steps"] if s["path"]]
    assert paths and all(p.startswith(str(tmp_path / "shared")) for p in paths)
    applied = cli("apply", planfile, "-c", project)
    assert applied.exit_code == 0, applied.output

    # without the setting, the same plan is refused before anything is sent
    cli("plan", "-c", project, "-o", planfile)
    project.write_text(text)
    result = cli("apply", planfile, "-c", project)
    assert result.exit_code == 1
    assert "outside the project folder" in result.stderr


def test_a_resealed_plan_cannot_write_lines_of_its_own_into_the_refusal(
    cli: Cli, cf_env: SandboxServer, project: Path, tmp_path: Path
) -> None:
    """Names, keys and paths from the file are shown escaped: a line break in them cannot
    start a line of the message ("  - ..." or "Apply complete")."""
    planfile = tmp_path / "review.plan"
    data = make_plan(cli, project, planfile)
    faq = change(data, "faq-bot-v1")
    faq["name"] = "faq-bot-v1\nApply complete: 0 created"
    faq["note\n  - the lockfile changed"] = 1
    for step in faq["steps"]:
        if step["path"]:
            step["path"] = "/tmp/x\n  - fine"
    data[planfile_mod.SEAL] = planfile_mod.seal(data)
    planfile.write_text(json.dumps(data))
    message = refused(cli, cf_env, project, planfile)
    assert "faq-bot-v1\\nApply complete" in message, message
    lines = message.splitlines()
    assert not any(
        line.startswith(("Apply complete", "  - the lockfile", "  - fine")) for line in lines
    )


def test_a_plan_file_with_a_lone_surrogate_is_damaged_not_an_internal_error(
    cli: Cli, cf_env: SandboxServer, project: Path, tmp_path: Path
) -> None:
    planfile = tmp_path / "review.plan"
    make_plan(cli, project, planfile)
    text = planfile.read_text().replace('"reason": "', '"reason": "\\ud800', 1)
    planfile.write_text(text)
    result = cli("apply", planfile, "-c", project)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.stderr.startswith(f"Error: {planfile}: "), result.stderr
