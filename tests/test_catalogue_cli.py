"""Workers AI as it is in 2026, end to end over real HTTP against the sandbox: today's LoRA
bases and ranks, the live catalogue and its cache, deprecations, and a `public` the list
never returns."""

from __future__ import annotations

import json
import runpy
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from conftest import CANARY_TOKEN, ROOT, Cli

from reconciler.sandbox import DEFAULT_TOKEN
from reconciler.sandbox.common.clock import ManualClock
from reconciler.sandbox.common.fault_spec import FaultSpec
from reconciler.sandbox.server import SandboxServer

ACCOUNT = "0123456789abcdef0123456789abcdef"
OTHER_ACCOUNT = "fedcba9876543210fedcba9876543210"
SMALL = "@cf/mistralai/mistral-small-3.1-24b-instruct"
VISION = "@cf/meta/llama-3.2-11b-vision-instruct"
OLD = "@hf/mistral/mistral-7b-instruct-v0.2"
PLAIN = "@cf/meta/llama-3.1-8b-instruct-fast"
# in the sandbox's catalogue (added below), not in the snapshot
NEWER = "@cf/meta/llama-4-lora-preview"
# also added below, with deprecation dates relative to the day the tests run (reconciler's
# plan dates its notes by today; the sandbox retires a model by its own clock): one still to
# come, one a month past (the search lists it only with include_deprecated, for three
# months), one half a year past (the search lists it no more)
SOON = "@cf/acme/dusk-7b-lora"
RECENT = "@cf/acme/sunset-7b-lora"
GONE = "@cf/acme/vanished-7b-lora"
DAY = 24 * 3600


def days_from_today(days: int) -> str:
    return (date.today() + timedelta(days=days)).isoformat()


make_adapter = runpy.run_path(str(ROOT / "examples" / "make_adapter.py"))["make_adapter"]


def write_project(
    root: Path, finetunes: list[tuple[str, str, str, int]], public: bool = False, extra: str = ""
) -> Path:
    """A config of (name, model, model_type, rank) finetunes, each with a real adapter."""
    lines = ["version: 1", "providers:", "  cloudflare:", f"    account_id: {ACCOUNT}", extra]
    lines.append("finetunes:")
    for name, model, family, rank in finetunes:
        make_adapter(root / "adapters" / name, family, rank, 16, 1, name)
        lines += [
            f"  - name: {name}",
            "    provider: cloudflare",
            f'    model: "{model}"',
            f"    public: {'true' if public else 'false'}",
            f"    adapter: adapters/{name}/",
        ]
    config = root / "finetunes.yaml"
    config.write_text("\n".join(lines) + "\n")
    return config


@pytest.fixture
def newer_catalogue(tmp_path: Path) -> Path:
    """A catalogue file extending the sandbox's: one LoRA model the snapshot cannot know."""
    path = tmp_path / "extra-catalogue.json"
    path.write_text(
        json.dumps(
            [
                {
                    "id": "9a1c0d7e-0000-4000-8000-000000000001",
                    "source": 1,
                    "name": NEWER,
                    "description": "A newer base that takes LoRA adapters",
                    "task": {"id": "t", "name": "Text Generation", "description": ""},
                    "tags": [],
                    "properties": [{"property_id": "lora", "value": "true"}],
                },
                *(
                    {
                        "name": name,
                        "properties": {
                            "lora": "true",
                            "planned_deprecation_date": days_from_today(days),
                        },
                    }
                    for name, days in ((SOON, 60), (RECENT, -30), (GONE, -200))
                ),
            ]
        )
    )
    return path


@pytest.fixture
def server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, newer_catalogue: Path
) -> Iterator[SandboxServer]:
    with SandboxServer(
        tmp_path / "sandbox-data",
        tokens=(DEFAULT_TOKEN, CANARY_TOKEN),
        catalogue=newer_catalogue,
        accounts=(ACCOUNT, OTHER_ACCOUNT),
    ) as sandbox:
        point_at(monkeypatch, sandbox)
        yield sandbox


def point_at(monkeypatch: pytest.MonkeyPatch, sandbox: SandboxServer) -> None:
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", CANARY_TOKEN)
    monkeypatch.setenv("CLOUDFLARE_API_BASE_URL", sandbox.cloudflare_base_url)
    monkeypatch.delenv("CLOUDFLARE_ACCOUNT_ID", raising=False)
    monkeypatch.delenv("RECONCILER_CATALOGUE_TTL", raising=False)


def catalogue_reads(sandbox: SandboxServer) -> list[str]:
    return [path for method, path in sandbox.request_log if path.endswith("/ai/models/search")]


def posts(sandbox: SandboxServer) -> int:
    return len([c for c in sandbox.request_log if c[0] == "POST"])


def test_rank_16_and_32_on_todays_bases_validate_plan_apply_and_converge(
    cli: Cli, server: SandboxServer, tmp_path: Path
) -> None:
    config = write_project(
        tmp_path, [("small-r16", SMALL, "mistral", 16), ("vision-r32", VISION, "llama", 32)]
    )
    validated = cli("validate", "-c", config)
    assert validated.exit_code == 0, validated.stderr
    assert validated.stderr == ""  # both are in the snapshot: nothing to warn about
    planned = cli("plan", "-c", config, "--detailed-exitcode")
    assert planned.exit_code == 2, planned.output
    assert "Plan: 2 to create" in planned.stdout
    applied = cli("apply", "-c", config, "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert "2 created, 4 uploaded" in applied.stdout
    assert cli("plan", "-c", config, "--detailed-exitcode").exit_code == 0


def test_rank_64_is_refused_with_the_limit_named(
    cli: Cli, server: SandboxServer, tmp_path: Path
) -> None:
    config = write_project(tmp_path, [("too-wide", SMALL, "mistral", 64)])
    for command in ("validate", "plan"):
        result = cli(command, "-c", config)
        assert result.exit_code == 1
        assert '"r" is 64, over the provider\'s rank limit of 32' in result.stderr
    assert server.request_log == []  # refused before any call


def test_a_config_rank_that_is_not_the_tensors_rank_is_refused(
    cli: Cli, server: SandboxServer, tmp_path: Path
) -> None:
    config = write_project(tmp_path, [("liar", SMALL, "mistral", 8)])
    cfg = tmp_path / "adapters" / "liar" / "adapter_config.json"
    cfg.write_text(cfg.read_text().replace('"r": 8', '"r": 4'))
    result = cli("plan", "-c", config)
    assert result.exit_code == 1
    assert (
        "adapters/liar/adapter_model.safetensors: 4 LoRA tensors (e.g. "
        '"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight") have rank 8, but '
        'adapter_config.json says "r": 4'
    ) in result.stderr
    assert server.request_log == []


def test_a_base_only_the_live_catalogue_knows_plans_and_applies(
    cli: Cli, server: SandboxServer, tmp_path: Path
) -> None:
    config = write_project(tmp_path, [("newer", NEWER, "llama", 8)])
    validated = cli("validate", "-c", config)
    assert validated.exit_code == 0
    assert "is not among the LoRA-capable models of the bundled snapshot" in validated.stderr
    planned = cli("plan", "-c", config)
    assert planned.exit_code == 0, planned.output
    assert "Plan: 1 to create" in planned.stdout
    assert f"Cloudflare documents no adapter model_type for {NEWER}" in planned.stdout
    assert cli("apply", "-c", config, "--auto-approve").exit_code == 0
    assert cli("plan", "-c", config, "--detailed-exitcode").exit_code == 0


def test_a_base_the_catalogue_does_not_mark_lora_is_blocked_by_plan(
    cli: Cli, server: SandboxServer, tmp_path: Path
) -> None:
    config = write_project(tmp_path, [("plain", PLAIN, "llama", 8)])
    assert cli("validate", "-c", config).exit_code == 0  # offline: only a warning
    for command in (("plan",), ("apply", "--auto-approve")):
        result = cli(*command, "-c", config)
        assert result.exit_code == 1
        assert (
            f"model {PLAIN} does not take LoRA adapters: the account's model catalogue "
            "(GET .../ai/models/search) does not mark it lora"
        ) in result.stdout
    assert posts(server) == 0


def test_a_public_finetune_applies_once_and_then_plans_clean(
    cli: Cli, server: SandboxServer, tmp_path: Path
) -> None:
    config = write_project(tmp_path, [("shared", SMALL, "mistral", 8)], public=True)
    assert cli("apply", "-c", config, "--auto-approve").exit_code == 0
    lock = json.loads(config.with_suffix(".lock").read_text())
    assert lock["finetunes"]["shared"]["fields"]["public"] is True  # from the create answer
    assert cli("plan", "-c", config, "--detailed-exitcode").exit_code == 0
    assert cli("drift", "-c", config).exit_code == 0
    # and the config's public still matters: flipping it is a change the plan sees
    config.write_text(config.read_text().replace("public: true", "public: false"))
    flipped = cli("plan", "-c", config)
    assert flipped.exit_code == 1
    assert "public" in flipped.stdout


def test_a_deprecated_base_warns_in_every_format(
    cli: Cli, server: SandboxServer, tmp_path: Path
) -> None:
    # deprecated a month ago: the search lists it only with include_deprecated, which
    # reconciler sends, so the plan sees its date and warns
    config = write_project(tmp_path, [("old-base", RECENT, "mistral", 8)])
    warning = f"base model {RECENT} is deprecated since {days_from_today(-30)}"
    text = cli("plan", "-c", config)
    assert text.exit_code == 0 and warning in text.stdout
    document = json.loads(cli("plan", "-c", config, "--format", "json").stdout)
    (entry,) = document["changes"] if "changes" in document else document["finetunes"]
    assert any(warning in w for w in entry["warnings"])
    markdown = cli("plan", "-c", config, "--format", "markdown").stdout
    head = markdown.split("<details>")[0]  # the warning block, before the folded plan
    # in the comment the model name is code, so '@cf/...' mentions no one
    assert f"base model `{RECENT}` is deprecated since {days_from_today(-30)}" in head


def test_a_warm_plan_reads_no_catalogue_and_a_cold_one_one_series_per_account(
    cli: Cli, server: SandboxServer, tmp_path: Path
) -> None:
    config = write_project(tmp_path, [("one", SMALL, "mistral", 8)])
    text = config.read_text() + (
        f"  - name: two\n    provider: cloudflare\n    account_id: {OTHER_ACCOUNT}\n"
        f'    model: "{SMALL}"\n    adapter: adapters/one/\n'
    )
    config.write_text(text)
    assert cli("plan", "-c", config).exit_code == 0
    reads = catalogue_reads(server)
    assert sorted(p.split("/")[4] for p in reads) == sorted([ACCOUNT, OTHER_ACCOUNT])
    pages = len(reads)
    assert cli("plan", "-c", config).exit_code == 0
    assert len(catalogue_reads(server)) == pages  # warm: the cache is fresh
    assert cli("plan", "-c", config, "--refresh-catalogue").exit_code == 0
    assert len(catalogue_reads(server)) == 2 * pages


def test_every_page_of_the_catalogue_is_read(
    cli: Cli, server: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_project(tmp_path, [("one", SMALL, "mistral", 8)])
    assert cli("plan", "-c", config).exit_code == 0
    total = len(server.catalogue.search())  # type: ignore[call-arg]
    reads = catalogue_reads(server)
    assert len(reads) == total // 50 + 1  # 50 a page, until a short page


def test_an_unreadable_catalogue_falls_back_to_the_snapshot_with_one_warning(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    faults = FaultSpec.from_option("status=503; route=GET /client/v4/accounts/*/ai/models/search")
    monkeypatch.setenv("RECONCILER_HTTP_BACKOFF", "0")
    with SandboxServer(
        tmp_path / "data", tokens=(DEFAULT_TOKEN, CANARY_TOKEN), faults=faults
    ) as sandbox:
        point_at(monkeypatch, sandbox)
        config = write_project(tmp_path, [("small", SMALL, "mistral", 8)])
        result = cli("plan", "-c", config)
        assert result.exit_code == 0, result.output
        assert "Plan: 1 to create" in result.stdout
        notes = [line for line in result.output.splitlines() if "could not be read" in line]
        assert len(notes) == 1
        assert "checking base models against the bundled snapshot of" in notes[0]
        plain = write_project(tmp_path / "p", [("plain", PLAIN, "llama", 8)])
        blocked = cli("plan", "-c", plain)
        assert blocked.exit_code == 1
        assert f"model {PLAIN} is not in the bundled snapshot of LoRA-capable models" in (
            blocked.stdout
        )


def test_test_and_import_read_the_catalogue_too(
    cli: Cli, server: SandboxServer, tmp_path: Path
) -> None:
    # a base still served (create and run work), with a deprecation date to come that only
    # the live catalogue knows
    config = write_project(tmp_path, [("old-base", SOON, "mistral", 8)])
    config.write_text(
        config.read_text()
        + "    checks:\n      - prompt: Hello there\n        expect: {not_contains: zzzz}\n"
    )
    assert cli("apply", "-c", config, "--auto-approve").exit_code == 0
    reads = len(catalogue_reads(server))
    tested = cli("test", "-c", config)
    assert tested.exit_code == 0, tested.output
    soon = f"base model {SOON} will be deprecated on {days_from_today(60)}"
    assert f"Warning: old-base: {soon}" in tested.stderr
    assert len(catalogue_reads(server)) == reads  # the cached copy: fresh
    config.with_suffix(".lock").unlink()
    imported = cli("import", "old-base", "-c", config, "--refresh-catalogue")
    assert imported.exit_code == 0, imported.output
    assert soon in imported.stderr
    assert len(catalogue_reads(server)) > reads  # --refresh-catalogue read it again


def test_finetunes_whose_bases_retired_warn_while_listed_and_say_gone_after(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, newer_catalogue: Path
) -> None:
    # made more than a year ago, before any of the three bases' dates
    clock = ManualClock(start=time.time() - 400 * DAY)
    with SandboxServer(
        tmp_path / "data", tokens=(CANARY_TOKEN,), catalogue=newer_catalogue, clock=clock
    ) as sandbox:
        point_at(monkeypatch, sandbox)
        config = write_project(
            tmp_path,
            [
                ("recent", RECENT, "mistral", 8),
                ("gone", GONE, "mistral", 8),
                ("old", OLD, "mistral", 8),
            ],
        )
        applied = cli("apply", "-c", config, "--auto-approve")
        assert applied.exit_code == 0, applied.output
        clock.advance(400 * DAY)  # today
        planned = cli("plan", "-c", config, "--refresh-catalogue", "--detailed-exitcode")
    assert planned.exit_code == 0, planned.output  # nothing to change: retired bases remove nothing
    # a month past its date: listed with include_deprecated, so the date is the catalogue's
    assert (
        f"base model {RECENT} is deprecated since {days_from_today(-30)} "
        "(planned_deprecation_date in the account's model catalogue"
    ) in planned.stdout
    # half a year past: the search lists it no more, and the snapshot does not know it
    assert f"base model {GONE} is no longer in the account's model catalogue" in planned.stdout
    # the snapshot's own retired model: gone from the search too, dated by the snapshot
    assert (
        f"base model {OLD} is deprecated since 2026-05-30 (the bundled snapshot's "
        "planned_deprecation_date)"
    ) in planned.stdout
