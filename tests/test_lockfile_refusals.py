"""The lockfile refuses what cannot be right: one message naming the lockfile and what to do,
exit 1, and no request sent (a lockfile after a bad merge once let `apply --prune` delete a
finetune the config still declared)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import CANARY_TOKEN, ROOT, Cli

from reconciler.base.errors import LockfileError
from reconciler.sandbox.server import SandboxServer
from reconciler.state import lockfile

SHA = "sha256:" + "ab" * 32
ACCOUNT = "0123456789abcdef0123456789abcdef"


def entry(id_: str = "id-1", provider: str = "cloudflare", **more: Any) -> dict[str, Any]:
    account = ACCOUNT if provider == "cloudflare" else "default"
    return {
        "provider": provider,
        "account": account,
        "id": id_,
        "model": "@cf/google/gemma-2b-it-lora",
        "assets": {"adapter_config.json": {"size": 3, "sha256": SHA}},
        **more,
    }


def leftover(id_: str = "id-9", provider: str = "cloudflare") -> dict[str, str]:
    return {
        "name": "old-bot",
        "remote_name": "old-bot",
        "provider": provider,
        "account": ACCOUNT,
        "id": id_,
        "model": "@cf/google/gemma-2b-it-lora",
    }


def lock_text(finetunes: dict[str, Any], **more: Any) -> str:
    return json.dumps({"format_version": 1, "finetunes": finetunes, **more})


CASES: dict[str, tuple[str, str]] = {
    "the same remote id twice": (
        lock_text({"a-bot": entry("id-1"), "b-bot": entry("id-1")}),
        "finetunes a-bot and b-bot both record the remote id id-1",
    ),
    "an unknown asset name": (
        lock_text({"a-bot": entry(assets={"payload.bin": {"size": 3, "sha256": SHA}})}),
        "finetunes.a-bot records an asset named 'payload.bin', but a cloudflare finetune has only",
    ),
    "a dataset on a cloudflare finetune": (
        lock_text({"a-bot": entry(assets={"dataset": {"size": 3, "sha256": SHA, "id": "d"}})}),
        "an asset named 'dataset'",
    ),
    "an unknown provider": (
        lock_text({"a-bot": entry(provider="aws")}),
        "finetunes.a-bot: provider 'aws' is not one reconciler knows",
    ),
    "an object for a description": (
        lock_text({"a-bot": entry(fields={"description": {"$ne": 1}, "public": False})}),
        "finetunes.a-bot.fields.description",
    ),
    "a string for public": (
        lock_text({"a-bot": entry(fields={"model": "m", "public": "yes"})}),
        "finetunes.a-bot.fields.public",
    ),
    "a list for a model": (
        lock_text({"a-bot": entry(fields={"model": ["m"]})}),
        "finetunes.a-bot.fields.model",
    ),
    "a list for a hyperparameter": (
        lock_text(
            {
                "c-bot": entry(
                    provider="cohere",
                    assets={"dataset": {"size": 3, "sha256": SHA, "id": "d"}},
                    fields={"hyperparameters": {"train_epochs": [1]}},
                )
            }
        ),
        "finetunes.c-bot.fields.hyperparameters.train_epochs",
    ),
    "an object for an endpoint": (
        lock_text({}, endpoints={"cloudflare": {"url": "x"}}),
        "endpoints.cloudflare",
    ),
    "a finetune twice (duplicate keys)": (
        '{"format_version": 1, "finetunes": {"a-bot": '
        + json.dumps(entry("id-1"))
        + ', "a-bot": '
        + json.dumps(entry("id-2"))
        + "}}",
        "the key 'a-bot' appears twice in one object",
    ),
    "NaN": (
        lock_text({"c-bot": entry(provider="cohere", assets={})}).replace(
            '"assets": {}', '"assets": {}, "fields": {"hyperparameters": {"x": NaN}}'
        ),
        "NaN is not JSON",
    ),
    "a size of 1e400": (
        lock_text({"a-bot": entry()}).replace('"size": 3', '"size": 1e400'),
        "the number 1e400 is too large",
    ),
    "a size of 5,000 digits": (
        lock_text({"a-bot": entry()}).replace('"size": 3', '"size": ' + "9" * 5000),
        "a number of 5000 digits is too large",
    ),
    "a name with a newline": (lock_text({"a-bot\n": entry()}), "finetunes"),
    "an empty asset id": (
        lock_text(
            {
                "c-bot": entry(
                    provider="cohere", assets={"dataset": {"size": 3, "sha256": SHA, "id": ""}}
                )
            }
        ),
        "finetunes.c-bot.assets.dataset.id",
    ),
    "an id with a line break": (
        lock_text({"a-bot": entry("id-1\n+ finetune")}),
        "finetunes.a-bot.id",
    ),
    "an account that is empty": (
        lock_text({"a-bot": {**entry(), "account": ""}}),
        "finetunes.a-bot.account",
    ),
    "a leftover that is also a finetune (a bad merge)": (
        lock_text({"a-bot": entry("id-1")}, leftovers=[leftover("id-1")]),
        "finetunes a-bot and leftovers[0] (old-bot) both record the remote id id-1",
    ),
    "a leftover of an unknown provider": (
        lock_text({}, leftovers=[leftover(provider="aws")]),
        "leftovers[0] (old-bot): provider 'aws' is not one reconciler knows",
    ),
    "a leftover id with a line break": (
        lock_text({}, leftovers=[leftover("id-1\n? finetune")]),
        "leftovers",
    ),
    "a leftover with a field no apply writes": (
        lock_text({}, leftovers=[{**leftover(), "secret": "x"}]),
        "leftovers",
    ),
    "a pending upload of an unknown asset": (
        lock_text(
            {},
            pending={
                "a-bot": {
                    "op": "upload",
                    "provider": "cloudflare",
                    "account": "x",
                    "asset": "run.sh",
                }
            },
        ),
        "pending.a-bot names an asset 'run.sh'",
    ),
    "a pending dataset on cloudflare": (
        lock_text(
            {},
            pending={
                "a-bot": {
                    "op": "create",
                    "provider": "cloudflare",
                    "account": "x",
                    "assets": {"dataset": {"size": 1, "sha256": SHA, "id": "d"}},
                }
            },
        ),
        "pending.a-bot names an asset 'dataset'",
    ),
    "a pending entry for an unknown provider": (
        lock_text({}, pending={"a-bot": {"op": "create", "provider": "aws", "account": "x"}}),
        "pending.a-bot: provider 'aws' is not one reconciler knows",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_lockfile_that_cannot_be_right_is_refused(tmp_path: Path, name: str) -> None:
    text, expected = CASES[name]
    path = tmp_path / "finetunes.lock"
    path.write_text(text)
    with pytest.raises(LockfileError) as caught:
        lockfile.read_lock(path)
    message = str(caught.value)
    assert message.startswith(f"{path}"), message
    assert expected in message, message
    assert "restore it from version control" in message or "edit" in message, message


def test_a_lockfile_that_is_not_a_regular_file_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "finetunes.lock"
    os.mkfifo(fifo)
    with pytest.raises(LockfileError, match="is not a regular file"):
        lockfile.read_lock(fifo)
    linked = tmp_path / "other.lock"
    linked.symlink_to("/dev/zero")
    with pytest.raises(LockfileError, match="is not a regular file"):
        lockfile.read_lock(linked)
    folder = tmp_path / "folder.lock"
    folder.mkdir()
    with pytest.raises(LockfileError, match=r"cannot be read \(Is a directory\)"):
        lockfile.read_lock(folder)


@pytest.fixture
def cohere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxServer]:
    with SandboxServer(tmp_path / "remote", tokens=(CANARY_TOKEN,), clock_speed=300) as server:
        monkeypatch.setenv("CO_API_KEY", CANARY_TOKEN)
        monkeypatch.setenv("CO_API_URL", server.url)
        monkeypatch.setenv("RECONCILER_POLL_INTERVAL", "0.02")
        yield server


def test_after_a_bad_merge_prune_deletes_nothing(
    cli: Cli, cohere: SandboxServer, tmp_path: Path
) -> None:
    """The issue's example: a merge left a second entry with support-chat's id; the config no
    longer declares that second name, so `apply --prune` would delete support-chat's model."""
    shutil.copytree(
        ROOT / "examples" / "cohere",
        tmp_path / "project",
        ignore=shutil.ignore_patterns(".reconciler", "*.lock"),
    )
    config = tmp_path / "project" / "finetunes.yaml"
    assert cli("apply", "-c", config, "--auto-approve").exit_code == 0
    lock_path = config.with_suffix(".lock")
    data = json.loads(lock_path.read_text())
    data["finetunes"]["old-chat"] = dict(data["finetunes"]["support-chat"])
    lock_path.write_text(json.dumps(data, indent=2))
    before = len(cohere.request_log)

    for command in (("plan",), ("apply", "--auto-approve", "--prune")):
        result = cli(*command, "-c", config, "--prune")
        assert result.exit_code == 1, result.output
        assert result.stderr.startswith(f"Error: {lock_path}: "), result.stderr
        assert "finetunes old-chat and support-chat both record the remote id" in result.stderr
    assert len(cohere.request_log) == before  # not even a list call


EDITS: dict[str, Callable[[dict[str, Any]], None]] = {
    "asset renamed": lambda lock: lock["finetunes"]["faq-bot-v1"]["assets"].update(
        {"run.sh": lock["finetunes"]["faq-bot-v1"]["assets"].pop("adapter_config.json")}
    ),
    "id copied": lambda lock: lock["finetunes"]["faq-bot-v1"].update(
        id=lock["finetunes"]["support-bot-v3"]["id"]
    ),
    "fields nested": lambda lock: lock["finetunes"]["faq-bot-v1"]["fields"].update(
        public={"value": True}
    ),
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_the_cli_refuses_a_bad_lockfile_before_any_call(
    cli: Cli, cf_env: SandboxServer, project: Path, edit: str
) -> None:
    assert cli("apply", "-c", project, "--auto-approve").exit_code == 0
    lock_path = project.with_suffix(".lock")
    data = json.loads(lock_path.read_text())
    EDITS[edit](data)
    lock_path.write_text(json.dumps(data, indent=2))
    before = len(cf_env.request_log)
    for command in (("plan",), ("apply", "--auto-approve"), ("drift",)):
        result = cli(*command, "-c", project)
        assert result.exit_code == 1, (command, result.output)
        assert result.stderr.startswith(f"Error: {lock_path}: "), result.stderr
    assert len(cf_env.request_log) == before
