"""A lockfile's versions must agree with their names (L3 of issue 20).

A version's remote name is NAME-VERSION (plan/versions.remote_name), so a lock whose `versions`
key, current `version` and `remote_name` disagree, or whose two records name one remote
finetune, cannot be right: planned from, it said "new version bot-cd41c3d4 supersedes
bot-cd41c3d4" on every run and never converged. Such a lock is refused when read, naming the
records. A record made before versioning was turned on keeps the finetune's own name, and is
taken.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli

from reconciler.base.errors import LockfileError
from reconciler.sandbox.server import SandboxServer
from reconciler.state import lockfile

SHA = "sha256:" + "ab" * 32
ACCOUNT = "0123456789abcdef0123456789abcdef"
OTHER = "fedcba9876543210fedcba9876543210"
V1, V2 = "cd41c3d4", "0badf00d"


def record(id_: str, account: str = ACCOUNT, **more: Any) -> dict[str, Any]:
    return {
        "provider": "cloudflare",
        "account": account,
        "id": id_,
        "model": "@cf/google/gemma-2b-it-lora",
        "assets": {"adapter_model.safetensors": {"size": 3, "sha256": SHA}},
        **more,
    }


def version(id_: str, remote: str, state: str = "retired", **more: Any) -> dict[str, Any]:
    return record(id_, remote_name=remote, state=state, **more)


def current(id_: str, v: str, remote: str | None = None, **more: Any) -> dict[str, Any]:
    return record(id_, version=v, remote_name=remote or f"bot-{v}", **more)


def read(tmp_path: Path, finetunes: dict[str, Any], versions: dict[str, Any] | None = None) -> Any:
    path = tmp_path / "finetunes.lock"
    data: dict[str, Any] = {"format_version": 1, "finetunes": finetunes}
    if versions is not None:
        data["versions"] = versions
    path.write_text(json.dumps(data))
    return lockfile.read_lock(path)


REFUSED: dict[str, tuple[dict[str, Any], dict[str, Any] | None, list[str]]] = {
    "a version key against its remote name": (
        {"bot": current("id-1", V1)},
        {"bot": {V2: version("id-2", f"bot-{V1}")}},
        [f"versions.bot.{V2}", f"'bot-{V1}'", f"bot-{V2}"],
    ),
    "the current version against its remote name": (
        {"bot": current("id-1", V2, f"bot-{V1}")},
        None,
        ["finetunes.bot", f"version {V2}", f"'bot-{V1}'", f"bot-{V2}"],
    ),
    "a remote name of another finetune's": (
        {"bot": current("id-1", V1, f"other-{V1}")},
        None,
        ["finetunes.bot", f"'other-{V1}'"],
    ),
    "a version under another finetune's name": (
        {"bot": current("id-1", V1)},
        {"bot": {V2: version("id-2", f"chat-{V2}")}},
        [f"versions.bot.{V2}", f"'chat-{V2}'"],
    ),
    "the current version recorded twice": (
        {"bot": current("id-1", V1)},
        {"bot": {V1: version("id-2", f"bot-{V1}")}},
        ["finetunes.bot", f"versions.bot.{V1}", f"remote name 'bot-{V1}'"],
    ),
    "a finetune under a version's remote name": (
        {"bot": current("id-1", V1), f"bot-{V1}": record("id-2")},
        None,
        ["finetunes.bot", f"finetunes.bot-{V1}", f"remote name 'bot-{V1}'"],
    ),
    "a pre-versioning record and the finetune unversioned again": (
        {"bot": current("id-1", V1), "chat": record("id-3")},
        {"chat": {V2: version("id-2", "chat")}, "bot": {V2: version("id-4", f"bot-{V2}")}},
        [],  # taken: the retired record keeps the finetune's own name
    ),
}


@pytest.mark.parametrize("name", [n for n, case in REFUSED.items() if case[2]])
def test_a_lock_whose_versions_disagree_is_refused_naming_the_records(
    tmp_path: Path, name: str
) -> None:
    finetunes, versions, expected = REFUSED[name]
    with pytest.raises(LockfileError) as caught:
        read(tmp_path, finetunes, versions)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'finetunes.lock'}: "), message
    for part in expected:
        assert part in message, message


def test_what_apply_writes_is_taken(tmp_path: Path) -> None:
    """NAME-VERSION throughout; a record from before versioning under the finetune's own name
    (retired, or made current again); one remote name in two accounts."""
    read(
        tmp_path,
        {
            "bot": current("id-1", V1),
            "chat": current("id-5", V1, "chat"),  # switched back to its pre-versioning record
            "faq": record("id-7"),  # unversioned
        },
        {
            "bot": {V2: version("id-2", "bot"), "11111111": version("id-3", "bot-11111111")},
            "chat": {V2: version("id-6", f"chat-{V2}", state="candidate")},
        },
    )
    read(
        tmp_path,
        {"bot": current("id-1", V1), f"bot-{V1}": record("id-2", account=OTHER)},
    )
    taken = REFUSED["a pre-versioning record and the finetune unversioned again"]
    read(tmp_path, taken[0], taken[1])


def test_the_plan_that_never_converged_is_refused(
    cli: Cli, cf_env: SandboxServer, versioned: Path
) -> None:
    """The review's case: the current `version` edited away from its remote name."""
    assert cli("apply", "-c", versioned, "--auto-approve").exit_code == 0
    lock_path = versioned.with_suffix(".lock")
    data = json.loads(lock_path.read_text())
    entry = data["finetunes"]["faq-bot-v1"]
    was = entry["version"]
    entry["version"] = "00000000" if was != "00000000" else "11111111"
    lock_path.write_text(json.dumps(data, indent=2))
    before = len(cf_env.request_log)
    result = cli("plan", "-c", versioned)
    assert result.exit_code == 1, result.output
    assert "supersedes" not in result.output
    assert result.stderr.startswith(f"Error: {lock_path}: finetunes.faq-bot-v1"), result.stderr
    assert f"faq-bot-v1-{was}" in result.stderr
    assert len(cf_env.request_log) == before


def test_a_remote_name_without_a_version_is_refused_unless_it_is_a_version_name(
    tmp_path: Path,
) -> None:
    """No reconciler writes a remote_name without the version it names; one that is neither
    the finetune's own name nor NAME-<8 hex> would send every plan after another finetune."""
    with pytest.raises(LockfileError) as caught:
        read(tmp_path, {"bot": record("id-1", remote_name="faq-bot")})
    assert "finetunes.bot records the remote name 'faq-bot' without a version" in str(caught.value)
    read(tmp_path, {"bot": record("id-1", remote_name=f"bot-{V1}")})
    read(tmp_path, {"bot": record("id-1", remote_name="bot")})


def test_a_remote_name_of_another_finetune_without_a_version_is_refused_at_plan(
    cli: Cli, cf_env: SandboxServer, versioned: Path
) -> None:
    assert cli("apply", "-c", versioned, "--auto-approve").exit_code == 0
    lock_path = versioned.with_suffix(".lock")
    data = json.loads(lock_path.read_text())
    entry = data["finetunes"]["faq-bot-v1"]
    del entry["version"]
    entry["remote_name"] = "somebody-elses"
    lock_path.write_text(json.dumps(data, indent=2))
    result = cli("plan", "-c", versioned)
    print(result.output)
    assert result.exit_code == 1, result.output
    assert "'somebody-elses' without a version" in result.stderr
