"""reconciler test, apply --test and reconciler public, end to end on the sandbox."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import Cli

from reconciler.sandbox.server import SandboxServer


def test_quickstart_checks_pass_after_apply(cli: Cli, cf_env: SandboxServer, project: Path) -> None:
    result = cli("apply", "-c", project, "--auto-approve", "--test")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("finetune"))
    assert lines[header].split() == ["finetune", "check", "result", "why", "answer"]
    rows = lines[header + 2 : header + 4]
    assert rows[0].startswith("support-bot-v3  answers refund questions  pass")
    assert "[support-bot-v3] Thanks for asking about refund, damaged" in rows[0]
    assert rows[1].startswith("faq-bot-v1      knows about shipping")
    assert result.stdout.rstrip().endswith("2 passed, 0 failed")
    runs = [c for c in cf_env.request_log if "/ai/run/" in c[1]]
    assert len(runs) == 2


def test_a_broken_expectation_fails_with_a_readable_table(
    cli: Cli, cf_env: SandboxServer, project: Path
) -> None:
    assert cli("apply", "-c", project, "--auto-approve").exit_code == 0
    project.write_text(
        project.read_text().replace("contains: [refund, damaged]", "contains: [refund, warranty]")
    )
    result = cli("test", "-c", project)
    assert result.exit_code == 1
    failed = next(line for line in result.stdout.splitlines() if "FAIL" in line)
    assert failed.startswith("support-bot-v3  answers refund questions  FAIL    missing 'warranty'")
    assert (
        "    answer: [support-bot-v3] Thanks for asking about refund, damaged and order."
        in result.stdout
    )
    assert result.stdout.rstrip().endswith("1 passed, 1 failed")


def test_checks_against_a_finetune_that_does_not_exist_fail_clearly(
    cli: Cli, cf_env: SandboxServer, project: Path
) -> None:
    result = cli("test", "-c", project, "--target", "faq-bot-v1")  # nothing applied yet
    assert result.exit_code == 1
    assert "faq-bot-v1  knows about shipping  FAIL" in result.stdout
    assert (
        "Failures:\n  faq-bot-v1 / knows about shipping: run @cf/google/gemma-2b-it-lora with lora "
        in result.stdout
    )
    # the 2026 answer (3037 "Finetune <x> not found" in 2024-2025 reports)
    assert (
        "Finetune not found: faq-bot-v1 does not exist or is not accessible [code: 5033]"
        in result.stdout
    )
    assert result.stdout.rstrip().endswith("0 passed, 1 failed")


def test_a_check_may_use_a_public_adapter(cli: Cli, cf_env: SandboxServer, project: Path) -> None:
    public = json.loads(cli("public", "-c", project, "--format", "json").stdout)
    # the public adapters run on the bases Cloudflare names for them, not on the -lora ones
    base = "@cf/mistral/mistral-7b-instruct-v0.1"
    adapter = next(p for p in public if p["model"] == base)
    project.write_text(
        project.read_text()
        .replace(
            "      - name: answers refund questions\n",
            f"      - name: answers refund questions\n        lora: {adapter['name']}\n",
        )
        .replace("@cf/mistral/mistral-7b-instruct-v0.2-lora", base)
    )
    result = cli("test", "-c", project, "--target", "support-bot-v3")
    assert result.exit_code == 0, result.output
    assert f"[{adapter['name']}] Thanks for asking about refund" in result.stdout


def test_public_pages_through_every_page(cli: Cli, cf_env: SandboxServer, project: Path) -> None:
    everything = json.loads(
        cli("public", "-c", project, "--format", "json", "--order-by", "name").stdout
    )
    assert len(everything) == 3  # the three public adapters Cloudflare documents
    assert [p["name"] for p in everything] == sorted(p["name"] for p in everything)
    paged = json.loads(
        cli(
            "public", "-c", project, "--format", "json", "--order-by", "name", "--page-size", "2"
        ).stdout
    )
    assert paged == everything
    requests = [c for c in cf_env.request_log if c[1].endswith("/finetunes/public")]
    assert len(requests) == 1 + 2  # one page of 100, then pages of 2 and 1
    table = cli("public", "-c", project, "--order-by", "name")
    assert table.stdout.splitlines()[0].split() == ["name", "model", "description", "created"]
    assert table.stdout.rstrip().endswith("3 public finetunes")
