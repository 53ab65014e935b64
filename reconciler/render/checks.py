"""Tables for people: smoke-test results and public finetunes (plain text, no colour needed)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from ..checks import CheckResult
from ..model import RemoteFinetune

MAX_CELL = 60


def _cell(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    cells = [list(header), *[[_cell(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


def results(found: Sequence[CheckResult]) -> str:
    rows = [
        [r.finetune, r.check, "pass" if r.ok else "FAIL", r.detail if not r.ok else "", r.response]
        for r in found
    ]
    passed = sum(1 for r in found if r.ok)
    body = table(["finetune", "check", "result", "why", "answer"], rows)
    failures = [r for r in found if not r.ok]
    if failures:  # the table cuts long cells; here nothing is cut
        body += "\nFailures:\n"
        for r in failures:
            body += f"  {r.finetune} / {r.check}: {r.detail}\n"
            if r.response:
                body += f"    answer: {r.response}\n"
    return body + f"\n{passed} passed, {len(found) - passed} failed\n"


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
        return json.dumps(data, indent=2) + "\n"
    rows = [[f.name, f.model, f.description or "", f.created_at or ""] for f in found]
    return (
        table(["name", "model", "description", "created"], rows)
        + f"\n{len(found)} public finetunes\n"
    )
