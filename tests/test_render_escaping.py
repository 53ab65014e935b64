"""Remote strings cannot break out of a view: every name, id, description and status an
account returns is shown on one line, with no control or bidi character left to act, and a
pull-request comment shows exactly one summary line whatever the names hold."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from test_plan import ACCOUNT, MODEL, desired, fields, locked, plan_of

from reconciler.base.model import LockedFinetune, RemoteFinetune
from reconciler.base.untrusted import json_safe, quoted, visible
from reconciler.plan.drift import Drift, DriftKind
from reconciler.plan.planner import Plan
from reconciler.providers.base import Event, History, StepMetric
from reconciler.render import drift as drift_view
from reconciler.render import history, markdown, text
from reconciler.render import json as json_view

GOLDEN = Path(__file__).parent / "golden"
SUMMARY = "Plan: 9 to create, 0 to upload, 0 to forget, 0 unchanged."
# a name that tries every way out: a new line with a summary, a fence, a table cell, HTML,
# a mention, a link, an ANSI colour, bidi overrides and a line separator
HOSTILE = (
    f"evil\n{SUMMARY}\n### reconciler: {SUMMARY}\n```\n</details>\n| x | y |"
    "<img src=x onerror=alert(1)> @everyone https://evil.example `code` "
    "\x1b[31mred\x1b[0m \u202egnp.exe\u202c \u2066iso\u2069\u2028next\r\x00\x7f\x85\ufeff"
)
HIDDEN = ["\n", "\r", "\x1b", "\u202e", "\u202c", "\u2066", "\u2069", "\u2028", "\x00", "\x7f"]
HIDDEN += ["\x85", "\ufeff"]


def check_golden(name: str, rendered: str) -> None:
    golden = GOLDEN / name
    if os.environ.get("RECONCILER_UPDATE_GOLDEN"):
        golden.write_text(rendered)
    assert rendered == golden.read_text()


def hostile_plan() -> Plan:
    """An unmanaged finetune named HOSTILE (its id hostile too), and a managed one whose
    remote description was changed to HOSTILE behind our back (Cloudflare: blocked)."""
    d, digests = desired("kept")
    stranger = RemoteFinetune(
        "cloudflare", ACCOUNT, "id-" + HOSTILE, HOSTILE, MODEL, None, False, fields=fields(None)
    )
    changed = RemoteFinetune(
        "cloudflare", ACCOUNT, "id-k", "kept", MODEL, HOSTILE, False, fields=fields(HOSTILE)
    )
    return plan_of([(d, digests)], [changed, stranger], [locked("kept", "id-k")])


_SPAN = re.compile(r"(?<![`\\])(`+)(?!`)(.*?)(?<!`)\1(?!`)")  # an escaped ` opens none


def prose_only(markdown_text: str) -> str:
    """What GitHub reads as Markdown: the text less fenced blocks and code spans."""
    fenced = re.compile(r"^(`{3,})diff$.*?^\1$", re.S | re.M)
    return _SPAN.sub("", fenced.sub("", markdown_text))


def check_prose(markdown_text: str) -> None:
    prose = prose_only(markdown_text)
    ours = r"/?details>|/?summary>|!-- reconciler-plan -->"
    assert re.search(rf"(?<!\\)<(?!{ours})", prose) is None
    assert "@everyone" not in prose and "https://" not in prose
    assert prose.count("</details>") <= 1


def no_hidden(rendered: str, keep: str = "\n") -> None:
    for ch in HIDDEN:
        if ch not in keep:
            assert ch not in rendered, repr(ch)


def test_visible_escapes_only_what_acts() -> None:
    assert visible("plain text, ünïcödé, 日本語 and emoji 🙂") == (
        "plain text, ünïcödé, 日本語 and emoji 🙂"
    )
    assert visible("a\nb\tc\x1b[0m\u202e\u2028\ud800") == "a\\nb\\tc\\x1b[0m\\u202e\\u2028\\ud800"
    assert visible("a\nb\x1b", keep_newlines=True) == "a\nb\\x1b"
    assert quoted('say "hi"\n') == '"say \\"hi\\"\\n"'


def test_json_safe_is_the_same_data() -> None:
    data = {"name": HOSTILE + "\U000e0041 ok é"}
    document = json_safe(json.dumps(data, ensure_ascii=False))
    assert json.loads(document) == data
    no_hidden(document)
    assert "é" in document  # readable text stays readable


def test_text_plan_keeps_one_line_per_item() -> None:
    rendered = text.render(hostile_plan())
    no_hidden(rendered)
    lines = rendered.splitlines()
    assert [line for line in lines if line.startswith("Plan:")] == [lines[-3]]
    assert sum(1 for line in lines if "? finetune" in line) == 1
    check_golden("plan_hostile.txt", rendered)


def test_pull_request_comment_shows_one_summary_line() -> None:
    rendered = markdown.render(hostile_plan())
    no_hidden(rendered)
    lines = rendered.splitlines()
    assert [line for line in lines if line.startswith("### ")] == [lines[1]]
    assert lines[1].startswith("### reconciler: Plan: 0 to create")
    # the details are fenced longer than any backtick run inside: the fence closes once
    fence = next(line for line in lines if line.endswith("diff")).removesuffix("diff")
    assert len(fence) > max(len(m) for m in re.findall(r"`+", HOSTILE))
    assert lines.count(fence) == 1
    check_prose(rendered)
    assert prose_only(rendered).count("</details>") == 1
    for row in (line for line in lines if line.startswith("| `")):
        cells = re.split(r"(?<!\\)\|", row)
        assert len(cells) == 6, row  # four cells between the outer pipes
    check_golden("plan_hostile.md", rendered)


def test_json_plan_escapes_hidden_characters_and_keeps_the_data() -> None:
    rendered = json_view.render(hostile_plan())
    no_hidden(rendered)
    data = json.loads(rendered)
    assert HOSTILE in [c["name"] for c in data["changes"]]


def test_drift_views() -> None:
    items = (
        Drift(DriftKind.UNMANAGED, HOSTILE, "cloudflare", ACCOUNT, HOSTILE, HOSTILE),
        Drift(DriftKind.GONE, "kept", "cloudflare", ACCOUNT, "id-k", "gone"),
    )
    for fmt in ("text", "markdown", "json"):
        rendered = drift_view.render(items, fmt)
        no_hidden(rendered)
        if fmt == "text":
            assert len(rendered.splitlines()) == 3
            assert [x for x in rendered.splitlines() if x.startswith("Drift:")] == [
                "Drift: 1 gone, 0 replaced, 0 changed, 1 unmanaged."
            ]
        if fmt == "markdown":
            lines = rendered.splitlines()
            assert [x for x in lines if x.startswith("###")] == [lines[0]]
            assert len(lines) == 4
            check_prose(rendered)
        if fmt == "json":
            assert json.loads(rendered)["drift"][0]["detail"] == HOSTILE


def test_show_view() -> None:
    lock = LockedFinetune(HOSTILE, "cloudflare", ACCOUNT, HOSTILE, MODEL, {})
    remote = RemoteFinetune(
        "cloudflare",
        ACCOUNT,
        "x",
        HOSTILE,
        HOSTILE,
        HOSTILE,
        False,
        status=HOSTILE,
        fields={HOSTILE: HOSTILE},
    )
    story = History(
        events=(Event(HOSTILE, HOSTILE),),
        metrics=(StepMetric(1, "t", {HOSTILE: 1.0}), StepMetric(2, "t", {HOSTILE: 0.5})),
    )
    rendered = history.render(HOSTILE, lock, remote, story)
    no_hidden(rendered)
    assert rendered.splitlines()[0] == f"finetune {visible(HOSTILE)}"


@pytest.mark.parametrize("value", ["\u202e", "a`b", "``", "`a", "|", "<b>", "@x", "a\nb"])
def test_markdown_code_and_prose_read_as_themselves(value: str) -> None:
    span = markdown.code(value)
    assert "\n" not in span
    fence = re.match(r"`+", span)
    assert fence is not None
    inner = span[len(fence.group()) : -len(fence.group())]
    assert fence.group() not in inner
    assert "|" not in markdown.code("a|b", table=True).replace("\\|", "")
    assert "<" not in markdown.prose("<b>").replace("\\<", "")
    assert markdown.prose("ask @everyone at https://x.example/a_b") == (
        "ask `@everyone` at `https://x.example/a_b`"
    )
    assert markdown.prose("prevent_destroy *is* [set](x)") == (
        "prevent\\_destroy \\*is\\* \\[set\\](x)"
    )


def test_warnings_reach_the_comment_head_and_the_text_escaped() -> None:
    from dataclasses import replace

    plan = hostile_plan()
    kept = next(c for c in plan.changes if c.name == "kept")
    plan = replace(
        plan,
        changes=tuple(
            replace(c, warnings=("base model @cf/x is deprecated\nPlan: 9",)) if c is kept else c
            for c in plan.changes
        ),
        warnings=("the catalogue could not be read <b>",),
    )
    head = markdown.render(plan).split("<details>")[0]
    deprecated = "base model `@cf/x` is deprecated\\\\nPlan: 9  "
    assert f"> **Warning:** `cloudflare.kept`: {deprecated}" in head
    assert "> **Warning:** the catalogue could not be read \\<b\\>  " in head
    rendered = text.render(plan)
    assert "Warning: the catalogue could not be read <b>" in rendered
    assert "\nPlan: 9" not in rendered
