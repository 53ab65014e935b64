"""Tables for people: smoke-test results, public finetunes, an account's finetunes.

Every cell may come from outside (a model's answer, a public finetune's name, a catalogue):
each is one visible line (base.untrusted), escaped before it is measured, cut or coloured.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence

import click

from reconciler.apply.checks import CheckResult
from reconciler.base.model import RemoteFinetune
from reconciler.base.untrusted import json_safe, visible

MAX_CELL = 60
_BLANKS = re.compile(r"[ \t\r\n]+")
ANSWER = "    answer: "


def _cell(text: str) -> str:
    # a run of spaces, tabs and line breaks reads as one space in a cell; any other hidden
    # character (a vertical tab, NEL, U+2028 as much as an escape) is written out
    text = visible(_BLANKS.sub(" ", text).strip(" "))
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def _whole(text: str, indent: int) -> str:
    """`text` uncut, its lines kept but each after the first indented under the first, so
    that nothing in it passes for a line of ours; every other hidden character escaped."""
    return visible(text, keep_newlines=True).replace("\n", "\n" + " " * indent)


Paint = Callable[[int, str], str]  # (column, padded cell) -> the cell as shown


def table(header: Sequence[str], rows: Sequence[Sequence[str]], paint: Paint | None = None) -> str:
    """Columns padded to their widest cell; `paint` colours a body cell after padding, so
    that escape codes never count towards a width."""
    cells = [list(header), *[[_cell(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

    def line(row: Sequence[str], body: bool) -> str:
        padded = [c.ljust(w) for c, w in zip(row, widths, strict=True)]
        if body and paint is not None:
            padded = [paint(i, c) for i, c in enumerate(padded)]
        return "  ".join(padded).rstrip()

    lines = [line(cells[0], False), *(line(row, True) for row in cells[1:])]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


def painter(column: int, colours: Mapping[str, str]) -> Paint:
    """Colour the cells of one column by their text (e.g. FAIL red)."""

    def paint(index: int, cell: str) -> str:
        colour = colours.get(cell.strip()) if index == column else None
        return click.style(cell, fg=colour, bold=colour == "red" or None) if colour else cell

    return paint


def results(found: Sequence[CheckResult], color: bool = False) -> str:
    rows = [
        [r.finetune, r.check, "pass" if r.ok else "FAIL", r.detail if not r.ok else "", r.response]
        for r in found
    ]
    passed = sum(1 for r in found if r.ok)
    paint = painter(2, {"pass": "green", "FAIL": "red"}) if color else None
    body = table(["finetune", "check", "result", "why", "answer"], rows, paint)
    failures = [r for r in found if not r.ok]
    if failures:  # the table cuts long cells; here nothing is cut
        body += "\nFailures:\n"
        for r in failures:
            body += f"  {visible(r.finetune)} / {visible(r.check)}: {_whole(r.detail, 4)}\n"
            if r.response:
                body += f"{ANSWER}{_whole(r.response, len(ANSWER))}\n"
    tally = f"{passed} passed, {len(found) - passed} failed"
    if color:
        tally = click.style(tally, fg="red" if failures else "green", bold=True)
    return body + f"\n{tally}\n"


def public(found: Sequence[RemoteFinetune], fmt: str) -> str:
    if fmt == "json":
        data = [
            {
                "id": f.id,
                "name": f.name,
                "model": f.model,
                "description": f.description,
                "public": f.public,
                "created_at": f.created_at,
                "modified_at": f.modified_at,
            }
            for f in found
        ]
        return json_safe(json.dumps(data, indent=2)) + "\n"
    rows = [[f.name, f.model, f.description or "", f.created_at or ""] for f in found]
    return (
        table(["name", "model", "description", "created"], rows)
        + f"\n{len(found)} public finetunes\n"
    )
