"""The pull-request view: summary first, warnings, folded details, never over GitHub's limit."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
from test_plan import ACCOUNT, FILES, desired, fields, locked, plan_of, remote

from reconciler.base.model import AssetFile, DesiredFinetune
from reconciler.render import markdown

GOLDEN = Path(__file__).parent / "golden"


def check_golden(name: str, rendered: str) -> None:
    golden = GOLDEN / name
    if os.environ.get("RECONCILER_UPDATE_GOLDEN"):
        golden.write_text(rendered)
    assert rendered == golden.read_text()


def test_markdown_golden() -> None:
    public_one = desired("shared")
    made_public = (
        replace(public_one[0], public=True, fields=fields("d", public=True)),
        public_one[1],
    )
    plan = plan_of(
        [desired("new"), made_public, desired("same")],
        [remote("shared", "id-s"), remote("same", "id-x")],
        [locked("shared", "id-s"), locked("same", "id-x")],
    )
    rendered = markdown.render(plan)
    check_golden("plan_markdown.md", rendered)
    lines = rendered.splitlines()
    assert lines[0] == "<!-- reconciler-plan -->"
    assert (
        lines[1]
        == "### reconciler: Plan: 1 to create, 0 to upload, 0 to forget, 1 blocked, 1 unchanged."
    )
    assert (
        "**Public:** `cloudflare.shared` will be visible to every Cloudflare account." in rendered
    )
    assert "**Blocked:** `cloudflare.shared`" in rendered
    assert rendered.count("```") == 2 and "<details>" in rendered and "</details>" in rendered


def test_new_public_finetune_warns() -> None:
    d, digests = desired("open")
    public = replace(d, public=True, fields=fields(d.description, public=True))
    rendered = markdown.render(plan_of([(public, digests)]))
    assert "> [!WARNING]" in rendered and "`cloudflare.open` will be visible" in rendered
    assert "[!WARNING]" not in markdown.render(plan_of([desired("private")]))


@pytest.mark.parametrize("count", [200, 1000])  # cut inside the details, and inside the table
def test_large_plan_is_cut_cleanly_with_a_note(count: int) -> None:
    many = []
    for i in range(count):
        name = f"adapter-{i:04d}-with-a-rather-long-descriptive-name"
        assets = tuple(AssetFile(f, Path(f"/p/{name}/{f}")) for f in FILES)
        d = DesiredFinetune(name, "cloudflare", ACCOUNT, "@cf/m/x-lora", "d" * 40, False, assets)
        many.append((d, {a.path: desired("x")[1][Path(f"/p/x/{a.name}")] for a in assets}))
    plan = plan_of(many)
    full = markdown.render(plan, limit=10_000_000)
    assert len(full) > 65_536
    cut = markdown.render(plan)
    assert len(cut) <= 65_536
    assert cut.startswith(f"<!-- reconciler-plan -->\n### reconciler: Plan: {count} to create")
    assert ("```diff" in cut) is (count == 200)
    assert "This plan was cut to fit GitHub's 65,536-character comment limit" in cut
    assert f"of {len(full):,} characters are shown" in cut
    assert cut.count("```") % 2 == 0  # every fence opened is closed
    assert cut.count("<details>") == cut.count("</details>")
    kept = cut[: cut.index("\n\n> [!NOTE]")].removesuffix("\n```\n\n</details>")
    assert len(kept) > 60_000 and full.startswith(kept)  # a clean prefix, cut at a line
