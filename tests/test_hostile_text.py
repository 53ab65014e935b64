"""Every command that shows what an account returned, against a lying Cloudflare API: a
werkzeug app on 127.0.0.1 whose every string (names, ids, models, descriptions, dates, model
answers, catalogue entries) carries terminal escapes (CSI, OSC 52 clipboard writes, OSC 8
links, 8-bit C1 controls) and Unicode bidi and zero-width controls.

What must hold: no such character reaches the output raw, in any format, whatever the
command's exit; the hostile text is still shown, written as visible escapes. click strips
CSI (not OSC) when it writes off a terminal, so the checks here run through click's runner
and, in test_hostile_text_pty.py, through a pseudo-terminal where nothing is stripped.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from conftest import ACCOUNT, CANARY_TOKEN, Cli
from test_plan import desired, plan_of
from werkzeug.serving import make_server

from reconciler.apply.checks import CheckResult
from reconciler.base.model import RemoteFinetune
from reconciler.base.untrusted import json_safe, visible
from reconciler.providers.base import History, StepMetric
from reconciler.render import checks as render_checks
from reconciler.render import history, markdown, text
from reconciler.render import json as json_view
from reconciler.sandbox import DEFAULT_TOKEN
from reconciler.sandbox.server import SandboxServer

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

# every way a string can act on a terminal or on what a reader sees: erase the screen, move
# the cursor, colour, write the clipboard (OSC 52), hide a link (OSC 8), the same as 8-bit C1
# controls (CSI 0x9b, OSC 0x9d, ST 0x9c), a bell, a backspace, a carriage return, NUL, DEL,
# bidi overrides, embeddings and isolates, zero-width joiners, a line separator, a BOM
ESCAPES = (
    "\x1b[2J\x1b[1A\x1b[31mred\x1b[0m"
    "\x1b]52;c;ZXZpbA==\x07"
    "\x1b]8;;https://evil.example/\x1b\\link\x1b]8;;\x1b\\"
    "\x9b2J\x9d52;c;ZXZpbA==\x9c\x07\x08\rover\x00\x7f"
    "\u202egnp.exe\u202c\u202a\u202b\u202d\u2066iso\u2067\u2068\u2069"
    "\u200b\u200c\u200d\u200e\u200f\u2060\u061c\u2028\u2029\ufeff"
)
ANSWER = f"A refund for a damaged order {ESCAPES}\nsecond line"


def hidden_characters(text: str, allowed: str = "\n") -> list[str]:
    """The characters of `text` that act on a terminal or on the order or look of text: C0
    and C1 controls, DEL, the Unicode bidi controls, zero-width characters and separators.
    Written out here rather than taken from base.untrusted, so that a gap there fails."""
    found = []
    for ch in text:
        code = ord(ch)
        if ch in allowed:
            continue
        if (
            code < 0x20
            or 0x7F <= code <= 0x9F
            or 0x200B <= code <= 0x200F
            or 0x2028 <= code <= 0x202E
            or 0x2060 <= code <= 0x2069
            or code in (0x061C, 0xFEFF)
        ):
            found.append(repr(ch))
    return found


def assert_inert(text: str, allowed: str = "\n") -> None:
    found = hidden_characters(text, allowed)
    assert not found, (sorted(set(found)), text)


@dataclass
class Liar:
    """A Cloudflare API double whose every string is hostile. `finetunes` is the account's
    list; `public` the public finetunes (served a page at a time, honouring offset)."""

    finetunes: list[dict[str, Any]] = field(default_factory=list)
    public: list[dict[str, Any]] = field(default_factory=list)
    answer: str = ANSWER
    base_url: str = ""
    calls: list[tuple[str, str]] = field(default_factory=list)

    def route(self, method: str, path: str, query: dict[str, str]) -> Any:
        rest = path.removeprefix(f"/client/v4/accounts/{ACCOUNT}/ai/")
        if method == "GET" and rest == "finetunes":
            return self.finetunes
        if method == "GET" and rest == "finetunes/public":
            offset, limit = int(query.get("offset", 0)), int(query.get("limit", 100))
            return self.public[offset : offset + limit]
        if method == "GET" and rest == "models/search":
            return catalogue() if query.get("page", "1") == "1" else []
        if method == "POST" and rest.startswith("run/"):
            return {"response": self.answer}
        return None

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        from urllib.parse import parse_qsl

        method, path = str(environ["REQUEST_METHOD"]), str(environ["PATH_INFO"])
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length:
            environ["wsgi.input"].read(length)
        self.calls.append((method, path))
        result = self.route(method, path, dict(parse_qsl(str(environ.get("QUERY_STRING", "")))))
        if result is None:
            body = {"success": False, "errors": [{"code": 7000, "message": "No route" + ESCAPES}]}
            start_response("404 Not Found", [("Content-Type", "application/json")])
        else:
            body = {"success": True, "errors": [], "messages": [], "result": result}
            start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(body).encode()]


def hostile(name: str, ident: str, model: str, dated: str = ESCAPES) -> dict[str, Any]:
    return {
        "id": ident,
        "name": name,
        "model": model,
        "description": f"Support tone {ESCAPES}",
        "created_at": f"2026-01-01 {dated}",
        "modified_at": f"2026-01-02 {dated}",
        "public": False,
    }


def catalogue() -> list[dict[str, Any]]:
    """Models whose names and dates are hostile: the notes about base models quote them."""
    return [
        {
            "name": f"@cf/evil/model{ESCAPES}",
            "task": {"name": "Text Generation"},
            "properties": [
                {"property_id": "lora", "value": "true"},
                {"property_id": "planned_deprecation_date", "value": f"2020-01-01{ESCAPES}"},
            ],
        }
    ]


@contextmanager
def lying() -> Iterator[Liar]:
    """A Liar serving on 127.0.0.1 in a thread of this process."""
    app = Liar()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    app.base_url = f"http://127.0.0.1:{server.port}/client/v4"
    try:
        yield app
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def pointed_at(app: Liar) -> dict[str, str]:
    """The environment a user sets to point reconciler at an API: here, the liar."""
    return {
        "CLOUDFLARE_API_TOKEN": CANARY_TOKEN,
        "CLOUDFLARE_ACCOUNT_ID": ACCOUNT,
        "CLOUDFLARE_API_BASE_URL": app.base_url,
        "RECONCILER_HTTP_ATTEMPTS": "1",
    }


@pytest.fixture
def liar(monkeypatch: pytest.MonkeyPatch) -> Iterator[Liar]:
    with lying() as app:
        for variable, value in pointed_at(app).items():
            monkeypatch.setenv(variable, value)
        monkeypatch.delenv("NO_COLOR", raising=False)
        yield app


MODEL = "@cf/mistral/mistral-7b-instruct-v0.2-lora"


@pytest.fixture
def recorded(project: Path, tmp_path: Path, cli: Cli, liar: Liar) -> dict[str, str]:
    """The quick start applied to the faithful sandbox, its lockfile then pointed at the liar
    (as if made against it): the liar answers about recorded finetunes. Returns the recorded
    ids by name."""
    with SandboxServer(tmp_path / "faithful") as server, pytest.MonkeyPatch.context() as env:
        env.setenv("CLOUDFLARE_API_TOKEN", DEFAULT_TOKEN)
        env.setenv("CLOUDFLARE_API_BASE_URL", server.cloudflare_base_url)
        applied = cli("apply", "-c", project, "--auto-approve")
        assert applied.exit_code == 0, applied.output
    path = project.with_suffix(".lock")
    lock = json.loads(path.read_text())
    lock["endpoints"]["cloudflare"] = liar.base_url
    path.write_text(json.dumps(lock, indent=2, sort_keys=True) + "\n")
    return {name: entry["id"] for name, entry in lock["finetunes"].items()}


def stock(app: Liar, ids: dict[str, str] | None = None, everywhere: bool = True) -> None:
    """An account holding support-bot-v3 (under its recorded id when there is a lockfile)
    with a hostile description, strangers, and no faq-bot-v1 (gone); the public list too.
    `everywhere`: the strangers' names, ids, models and dates are hostile as well (which the
    client may refuse at its boundary: then the refusal is what is shown); else only free
    text is (descriptions, answers, the catalogue), which every view must show, escaped."""
    bad = ESCAPES if everywhere else ""
    app.finetunes = [
        hostile("support-bot-v3", (ids or {}).get("support-bot-v3", "id-support"), MODEL, bad),
        hostile(f"stranger{bad}", f"id{bad}", f"{MODEL}{bad}", bad),
        hostile("by-hand", "id-plain", f"{MODEL}{bad}", bad),
    ]
    app.public = [hostile(f"public-{i}{bad}", f"pid-{i}", f"{MODEL}{bad}", bad) for i in (1, 2)]


# the first escape written out: \x1b[2J as the text views write it, \u001b[2J as JSON does
WRITTEN = re.compile(r"\\(?:x1b|u001b)\[2J")


def run(cli: Cli, *args: str | Path) -> tuple[str, int]:
    result = cli(*args)
    output = result.stdout + result.stderr
    assert "Traceback" not in output and "Internal error" not in output, output
    return output, result.exit_code


COMMANDS: list[tuple[str, ...]] = [
    ("test",),
    ("public",),
    ("public", "--format", "json"),
    ("list",),
    ("list", "--format", "json"),
    ("drift",),
    ("drift", "--format", "json"),
    ("drift", "--format", "markdown"),
    ("plan",),
    ("plan", "--format", "json"),
    ("plan", "--format", "markdown"),
    ("show", "support-bot-v3"),
    ("show", "faq-bot-v1"),
]
# what shows no free text of the account: a list's columns, drift's summary for an issue, a
# finetune gone from the account
QUIET = {
    ("list",),
    ("list", "--format", "json"),
    ("drift", "--format", "markdown"),
    ("show", "faq-bot-v1"),
}


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_no_escape_reaches_the_output(
    cli: Cli, liar: Liar, project: Path, args: tuple[str, ...]
) -> None:
    stock(liar)
    output, _ = run(cli, *args, "-c", project)
    assert_inert(output)
    assert liar.calls  # the double was asked


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_no_escape_reaches_the_output_with_a_lockfile(
    cli: Cli, liar: Liar, recorded: dict[str, str], project: Path, args: tuple[str, ...]
) -> None:
    stock(liar, recorded, everywhere=False)
    output, _ = run(cli, *args, "-c", project)
    assert_inert(output)
    if args not in QUIET:
        assert WRITTEN.search(output), output  # shown, escaped: neither raw nor dropped


def test_model_answers_are_escaped_in_the_table_and_the_failures(
    cli: Cli, liar: Liar, project: Path
) -> None:
    stock(liar)
    output, status = run(cli, "test", "-c", project)
    assert status == 1  # faq-bot-v1's answer does not match its pattern
    assert_inert(output)
    failures = output.split("Failures:\n", 1)[1].splitlines()
    # the whole answer, every escape written out; its second line indented under the first,
    # so that no line of it passes for a line of ours
    at = next(i for i, line in enumerate(failures) if line.startswith("    answer: "))
    assert "\\x1b]52;c;ZXZpbA==\\x07" in failures[at] and "\\u202egnp.exe\\u202c" in failures[at]
    assert failures[at + 1] == " " * len("    answer: ") + "second line"
    # the warnings quote the hostile catalogue escaped too
    assert "Warning: " in output and "@cf/evil/model\\x1b[2J" in output


def test_public_table_and_json(cli: Cli, liar: Liar, project: Path) -> None:
    stock(liar, everywhere=False)
    table, status = run(cli, "public", "-c", project)
    assert status == 0 and "2 public finetunes" in table
    assert_inert(table)
    assert "Support tone \\x1b[2J" in table
    document, status = run(cli, "public", "--format", "json", "-c", project)
    assert status == 0
    shown = [f["description"] for f in json.loads(document)]
    assert shown == [f["description"] for f in liar.public]  # the same data, escaped


# -- the views, called directly ---------------------------------------------------------------


def test_results_table_escapes_every_cell_and_keeps_its_columns() -> None:
    found = [
        CheckResult(f"bot{ESCAPES}", f"check{ESCAPES}", False, f"why {ESCAPES}", ANSWER),
        CheckResult("plain", "ok", True, "", "fine"),
    ]
    for color in (False, True):
        rendered = render_checks.results(found, color=color)
        plain = re.sub(r"\x1b\[[0-9;]*m", "", rendered) if color else rendered
        assert_inert(plain)
    rendered = render_checks.results(found)
    lines = rendered.splitlines()
    # header, rule, two rows, then the failures: a hostile cell starts no new line
    assert lines[3].startswith("plain ")
    assert lines.count("Failures:") == 1
    assert rendered.endswith("\n1 passed, 1 failed\n")


def test_a_cell_joins_blank_runs_and_writes_out_other_separators() -> None:
    # str.split() would take NEL, U+2028, vertical tab and the file separators for blanks
    answer = "one \t\r\n two\x1cthree\x85four\u2028five\x0bsix"
    rendered = render_checks.results([CheckResult("a", "b", False, "x", answer)])
    row = rendered.splitlines()[2]
    assert row.endswith("one two\\x1cthree\\x85four\\u2028five\\x0bsix")
    assert_inert(rendered)


def test_public_view_escapes_in_both_formats() -> None:
    found = [
        RemoteFinetune(
            "cloudflare",
            ACCOUNT,
            f"id{ESCAPES}",
            f"name{ESCAPES}",
            f"model{ESCAPES}",
            f"about {ESCAPES}",
            True,
            created_at=f"2026{ESCAPES}",
        )
    ]
    table = render_checks.public(found, "table")
    assert_inert(table)
    assert len(table.splitlines()) == 5  # header, rule, one row, blank, tally
    document = render_checks.public(found, "json")
    assert_inert(document)
    assert json.loads(document)[0]["name"] == f"name{ESCAPES}"


def test_a_digest_from_outside_is_shown_escaped_in_every_plan_view() -> None:
    # a Hub's LFS sha256 or a lockfile's digest that is no hex: the plan shows it escaped
    d, digests = desired("bot")
    bad = {p: replace(a, sha256=f"sha256:\x1b]52;c;x\x07{ESCAPES}") for p, a in digests.items()}
    plan = plan_of([(d, bad)])
    for rendered in (text.render(plan), text.render(plan, color=True), markdown.render(plan)):
        assert_inert(re.sub(r"\x1b\[[0-9;]*m", "", rendered))
        assert "sha256:\\x1b]52;c;x\\x07" in rendered
    assert_inert(json_view.render(plan))


def test_invisible_letters_are_written_out() -> None:
    # fillers and selectors that draw nothing: two names that read the same must differ
    for ch in ("\u034f", "\u115f", "\u1160", "\u17b4", "\u3164", "\uffa0", "\U000e0100"):
        assert visible(f"bot{ch}") != f"bot{ch}" and ch not in visible(f"bot{ch}")
        assert ch not in json_safe(json.dumps(f"bot{ch}", ensure_ascii=False))
        assert json.loads(json_safe(json.dumps(f"bot{ch}", ensure_ascii=False))) == f"bot{ch}"
    # an emoji's presentation selector, and ordinary text, stay as they are
    assert visible("ok \u2764\ufe0f ünï 日本") == "ok \u2764\ufe0f ünï 日本"


def test_a_chart_of_non_finite_values_draws_the_finite_ones() -> None:
    values = [1.0, math.inf, 0.5, math.nan, -math.inf]
    metrics = tuple(StepMetric(i, "", {"loss": v}) for i, v in enumerate(values))
    rendered = history.render("bot", None, None, History(metrics=metrics))
    assert "loss over 5 steps (first 1, last 0.5):" in rendered
    only_nan = (StepMetric(1, "", {"loss": math.nan}),)
    assert "no loss recorded" in history.render("bot", None, None, History(metrics=only_nan))


def test_the_hidden_character_check_can_fail() -> None:
    assert hidden_characters(ESCAPES)
    assert hidden_characters("\x1b]8;;x\x1b\\") == ["'\\x1b'", "'\\x1b'"]
    assert hidden_characters("plain, ünïcödé 日本語 🙂\n") == []
