"""Two declared finetunes cannot take one remote name (L4 of issue 20).

A versioned finetune is named NAME-<content version> at its provider; a config that also
declares that literal name (`bot` at content c9087db1 and `bot-c9087db1`) was planned and
half applied: the second create failed, or adopted the first's finetune. validate cannot know
the content version of an hf: or URL adapter, so the plan is where it is refused: both
changes are blocked, each naming the other, and nothing is sent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import Cli

from reconciler.base.model import (
    AssetDigest,
    AssetFile,
    Desired,
    DesiredFinetune,
    LockedFinetune,
    LockedVersion,
    Observed,
    Recorded,
)
from reconciler.plan.planner import Action, build
from reconciler.plan.versions import content_version, remote_name
from reconciler.providers.base import Capabilities
from reconciler.sandbox.server import SandboxServer

ACCOUNT = "0123456789abcdef0123456789abcdef"
OTHER = "fedcba9876543210fedcba9876543210"
MODEL = "@cf/mistral/mistral-7b-instruct-v0.2-lora"
FIELDS = {"model": MODEL, "description": None, "public": False}
CF = Capabilities(False, False, False, False)


def declared(name: str, n: int, versioning: str | None = None, account: str = ACCOUNT) -> Any:
    path = Path(f"/nowhere/{name}/adapter_model.safetensors")
    d = DesiredFinetune(
        name=name,
        provider="cloudflare",
        account=account,
        model=MODEL,
        description=None,
        public=False,
        assets=(AssetFile("adapter_model.safetensors", path),),
        fields=FIELDS,
        versioning=versioning,
    )
    return d, {path: AssetDigest("adapter_model.safetensors", 10, "sha256:" + f"{n:x}" * 64)}


def version_of(n: int) -> str:
    digest = AssetDigest("adapter_model.safetensors", 10, "sha256:" + f"{n:x}" * 64)
    return content_version(FIELDS, {"adapter_model.safetensors": digest})


def plan(*items: Any, recorded: Recorded | None = None) -> Any:
    finetunes = tuple(d for d, _ in items)
    digests = {p: g for _, found in items for p, g in found.items()}
    accounts = tuple(sorted({d.account for d in finetunes}))
    return build(
        Desired(Path("f.yaml"), finetunes, {"cloudflare": accounts}),
        Observed({("cloudflare", a): () for a in accounts}),
        recorded or Recorded({}, {}),
        digests,
        {"cloudflare": CF},
        {"cloudflare": "sandbox"},
    )


def by_name(p: Any) -> dict[str, Any]:
    return {c.name: c for c in p.changes}


def test_a_literal_name_equal_to_a_version_name_blocks_both() -> None:
    taken = remote_name("bot", version_of(1))
    changes = by_name(plan(declared("bot", 1, "content"), declared(taken, 2)))
    for name, other in (("bot", taken), (taken, "bot")):
        assert changes[name].action is Action.BLOCKED, changes[name]
        assert changes[name].steps == ()
        reason = changes[name].reason
        assert f"bot and {taken} both take the name {taken}" in reason, reason
        assert f"in cloudflare account {ACCOUNT}" in reason
        assert "rename one of them" in reason
        assert other in reason


def test_a_recorded_version_name_is_taken_too() -> None:
    """bot's earlier version still bears its name in the account: a new finetune of that
    name would be taken for it."""
    old = version_of(1)
    retired = LockedVersion(
        old, remote_name("bot", old), "cloudflare", ACCOUNT, "id-1", MODEL, {}, state="retired"
    )
    now = version_of(2)
    current = LockedFinetune(
        "bot",
        "cloudflare",
        ACCOUNT,
        "id-2",
        MODEL,
        {},
        fields=FIELDS,
        remote_name=remote_name("bot", now),
        version=now,
    )
    recorded = Recorded({"bot": current}, {"cloudflare": "sandbox"}, {}, {"bot": {old: retired}})
    changes = by_name(
        plan(declared("bot", 2, "content"), declared(f"bot-{old}", 3), recorded=recorded)
    )
    assert changes[f"bot-{old}"].action is Action.BLOCKED
    assert f"bot's recorded version {old}" in changes[f"bot-{old}"].reason


def test_other_accounts_and_other_names_are_no_clash() -> None:
    taken = remote_name("bot", version_of(1))
    apart = plan(declared("bot", 1, "content"), declared(taken, 2, account=OTHER))
    assert [c.action for c in apart.changes] == [Action.CREATE, Action.CREATE]
    near = plan(declared("bot", 1, "content"), declared(f"bot-{version_of(2)}", 2))
    assert [c.action for c in near.changes] == [Action.CREATE, Action.CREATE]


def test_the_cli_refuses_the_review_case_before_anything_is_sent(
    cli: Cli, cf_env: SandboxServer, versioned: Path
) -> None:
    shown = cli("plan", "-c", versioned, "--format", "json")
    assert shown.exit_code == 0, shown.output
    faq = next(c for c in json.loads(shown.stdout)["changes"] if c["name"] == "faq-bot-v1")
    taken = faq["version"]["name"]
    text = versioned.read_text()
    block = text[text.index("  - name: faq-bot-v1") :].split("\n\n")[0]
    versioned.write_text(
        text + "\n" + block.replace("name: faq-bot-v1", f"name: {taken}\n    versioning: none")
    )
    before = len(cf_env.request_log)
    for command in (("plan",), ("apply", "--auto-approve")):
        result = cli(*command, "-c", versioned)
        assert result.exit_code == 1, result.output
        assert f"faq-bot-v1 and {taken} both take the name {taken}" in result.output
    assert [c for c in cf_env.request_log[before:] if c[0] != "GET"] == []
    assert not versioned.with_suffix(".lock").exists()
