"""`--sandbox` serves the Cloudflare accounts the config and the environment name, and no
other: an account it does not serve answers 403 with code 10000, as the real API answers an
account the token has no rights to (the official SDK raises PermissionDeniedError)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ACCOUNT, OTHER_ACCOUNT, Cli

from reconciler.sandbox.server import SandboxServer
from reconciler.workflow.embedded import named_accounts, sandbox_env

cloudflare = pytest.importorskip("cloudflare")

THIRD_ACCOUNT = "a" * 32
UNNAMED = "b" * 32


@pytest.fixture(autouse=True)
def _no_cloudflare_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CLOUDFLARE_API_TOKEN", "CLOUDFLARE_ACCOUNT_ID", "CLOUDFLARE_API_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def name_accounts(config: Path, provider_account: str, item_account: str | None = None) -> None:
    """The quick start with its provider's account written in, and faq-bot-v1 in another."""
    text = config.read_text().replace("${CLOUDFLARE_ACCOUNT_ID}", provider_account)
    if item_account is not None:
        text = text.replace(
            "  - name: faq-bot-v1\n", f"  - name: faq-bot-v1\n    account_id: {item_account}\n"
        )
    config.write_text(text)


def sandbox_finetunes(config: Path, account: str) -> list[str]:
    """The names of the finetunes the embedded sandbox's state holds in an account."""
    server = SandboxServer(config.parent / ".reconciler" / "sandbox")
    return sorted(f.name for f in server.store.list_finetunes(account))


def test_apply_and_plan_with_sandbox_on_the_accounts_the_config_names(
    cli: Cli, project: Path
) -> None:
    name_accounts(project, OTHER_ACCOUNT, THIRD_ACCOUNT)
    planned = cli("plan", "-c", project, "--sandbox", "--detailed-exitcode")
    assert planned.exit_code == 2, planned.output
    assert "Plan: 2 to create" in planned.stdout
    applied = cli("apply", "-c", project, "--sandbox", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    accounts = {
        name: record["account"]
        for name, record in json.loads(project.with_suffix(".lock").read_text())[
            "finetunes"
        ].items()
    }
    assert accounts == {"support-bot-v3": OTHER_ACCOUNT, "faq-bot-v1": THIRD_ACCOUNT}
    assert sandbox_finetunes(project, OTHER_ACCOUNT) == ["support-bot-v3"]
    assert sandbox_finetunes(project, THIRD_ACCOUNT) == ["faq-bot-v1"]
    assert sandbox_finetunes(project, ACCOUNT) == []
    again = cli("plan", "-c", project, "--sandbox", "--detailed-exitcode")
    assert again.exit_code == 0, again.output
    drift = cli("drift", "-c", project, "--sandbox")
    assert drift.exit_code == 0, drift.output


def test_an_account_only_the_lockfile_still_names_is_served(cli: Cli, project: Path) -> None:
    name_accounts(project, OTHER_ACCOUNT, THIRD_ACCOUNT)
    assert cli("apply", "-c", project, "--sandbox", "--auto-approve").exit_code == 0
    # faq-bot-v1 leaves the config: its account is in the lockfile only, and `list` reads it
    text = project.read_text()
    project.write_text(text[: text.index("  - name: faq-bot-v1")])
    assert THIRD_ACCOUNT in named_accounts(project, {})
    listed = cli("list", "-c", project, "--sandbox", "--format", "json")
    assert listed.exit_code == 0, listed.output
    assert {"faq-bot-v1", "support-bot-v3"} <= {
        f["name"] for f in json.loads(listed.stdout)["finetunes"]
    }


def test_plan_with_sandbox_on_the_environment_s_account(
    cli: Cli, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", OTHER_ACCOUNT)
    planned = cli("plan", "-c", project, "--sandbox", "--detailed-exitcode")
    assert planned.exit_code == 2, planned.output
    assert "Plan: 2 to create" in planned.stdout


def test_the_embedded_sandbox_serves_the_named_accounts_and_no_other(project: Path) -> None:
    name_accounts(project, OTHER_ACCOUNT, THIRD_ACCOUNT)
    env = {"CLOUDFLARE_ACCOUNT_ID": ACCOUNT}
    with (
        sandbox_env(project, env) as overlay,
        cloudflare.Cloudflare(
            api_token=overlay["CLOUDFLARE_API_TOKEN"],
            base_url=overlay["CLOUDFLARE_API_BASE_URL"],
        ) as client,
    ):
        # the config's two and the environment's one
        for account in (OTHER_ACCOUNT, THIRD_ACCOUNT, ACCOUNT):
            assert client.ai.finetunes.list(account_id=account) == []
        with pytest.raises(cloudflare.PermissionDeniedError) as excinfo:
            client.ai.finetunes.list(account_id=UNNAMED)
        assert excinfo.value.status_code == 403
        assert [e["code"] for e in excinfo.value.body["errors"]] == [10000]


def test_named_accounts_reads_the_config_and_the_environment(project: Path) -> None:
    name_accounts(project, OTHER_ACCOUNT.upper(), THIRD_ACCOUNT)  # the config lowercases ids
    found = named_accounts(project, {"CLOUDFLARE_ACCOUNT_ID": UNNAMED})
    assert sorted(found) == sorted([UNNAMED, OTHER_ACCOUNT, THIRD_ACCOUNT])
    # a config that does not load names none (the command reads it again and says why); the
    # environment's account still counts, and what is not a Cloudflare account id is left out
    project.write_text("version: [")
    assert named_accounts(project, {"CLOUDFLARE_ACCOUNT_ID": ACCOUNT}) == (ACCOUNT,)
    assert named_accounts(project, {"CLOUDFLARE_ACCOUNT_ID": "not-an-account"}) == ()
