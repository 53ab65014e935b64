"""The pull-request view: summary first, warnings next, details folded; never over the limit.

GitHub refuses comments over 65,536 characters. Rather than let a large plan be cut off
somewhere (or the comment fail), the details are cut at a line, the fences are closed and a
note says how much was left out and where to find the rest.
"""

from __future__ import annotations

import re

from ..plan import Action, Plan
from . import text
from .json import ACTIONS, address

GITHUB_COMMENT_LIMIT = 65_536
# hidden in the rendered comment; a workflow finds its own comment by it and updates it
MARKER = "<!-- reconciler-plan -->"
DESTRUCTIVE = {"delete"}
_SYMBOL = re.compile(r"^(\s*)([+~!.?]) ")


def warnings(plan: Plan) -> list[str]:
    found: list[str] = []
    destructive = [c for c in plan.changes if DESTRUCTIVE & set(ACTIONS[c.action])]
    if destructive:
        names = ", ".join(f"`{address(c)}`" for c in destructive)
        found.append(f"**Destructive:** {names} will be deleted or replaced.")
    public = [
        c
        for c in plan.changes
        if (c.action is Action.CREATE and c.desired is not None and c.desired.public)
        or any(f.field == "public" and f.after is True for f in c.fields)
    ]
    if public:
        names = ", ".join(f"`{address(c)}`" for c in public)
        found.append(f"**Public:** {names} will be visible to every Cloudflare account.")
    if plan.blocked:
        names = ", ".join(f"`{address(c)}`" for c in plan.blocked)
        found.append(f"**Blocked:** {names} cannot be changed as declared; apply will refuse.")
    return found


def _diff_lines(plan: Plan) -> list[str]:
    """The text view with each change symbol moved to column 0, so GitHub colours it."""
    out = []
    for line in text.render(plan, color=False).splitlines():
        m = _SYMBOL.match(line)
        if m:
            symbol = {"~": "!", ".": "#", "?": "#"}.get(m.group(2), m.group(2))
            line = symbol + m.group(1) + line[m.end() - 1 :]
        out.append(line)
    return out


def render(plan: Plan, limit: int = GITHUB_COMMENT_LIMIT) -> str:
    head = [MARKER, f"### reconciler: {text.summary(plan)}", ""]
    notes = warnings(plan)
    if notes:
        head += ["> [!WARNING]", *[f"> {n}  " for n in notes], ""]
    rows = [
        f"| `{c.action.symbol.strip() or '='}` | `{address(c)}` | {', '.join(ACTIONS[c.action])} "
        f"| {c.reason.replace('|', '/')} |"
        for c in plan.changes
        if c.action is not Action.NOOP
    ]
    table = (
        ["| | finetune | action | why |", "| --- | --- | --- | --- |", *rows, ""] if rows else []
    )
    if not plan.has_changes and not plan.blocked:
        table = ["No changes: the finetunes match the configuration and the lockfile.", ""]
    details = ["<details><summary>Plan details</summary>", "", "```diff", *_diff_lines(plan)]
    closing = ["```", "", "</details>", ""]
    return _fit(head, table + details, closing, limit)


def _fit(head: list[str], body: list[str], closing: list[str], limit: int) -> str:
    whole = "\n".join(head + body + closing)
    if len(whole) <= limit:
        return whole
    budget = limit - 400  # room for the note and the fences that close what was cut
    kept = list(head)
    size = len("\n".join(kept))
    in_fence = False
    for line in body:
        if size + len(line) + 1 > budget:
            break
        kept.append(line)
        size += len(line) + 1
        in_fence = in_fence or line == "```diff"
    if in_fence:
        kept += closing[:-1]
    kept += [
        "",
        "> [!NOTE]",
        f"> This plan was cut to fit GitHub's {limit:,}-character comment limit: {size:,} of "
        f"{len(whole):,} characters are shown. The whole plan is in the job log "
        "(`reconciler show PLANFILE`).",
        "",
    ]
    return "\n".join(kept)
