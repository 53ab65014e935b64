"""The pull-request view: summary first, warnings next, details folded; never over the limit.

GitHub refuses comments over 65,536 characters. Rather than let a large plan be cut off
somewhere (or the comment fail), the details are cut at a line, the fences are closed and a
note says how much was left out and where to find the rest.

Remote strings (names, ids, reasons quoting them) are escaped for where they stand: code spans
fenced longer than any backtick run inside, table cells with their pipes escaped, prose with
every character Markdown acts on escaped and mentions and links put in code, and the details
fenced longer than any backtick run in the plan. A comment shows one summary line, whatever
the names hold.
"""

from __future__ import annotations

import re

from reconciler.base.untrusted import visible
from reconciler.plan.planner import Action, Change, Plan
from reconciler.render import text
from reconciler.render.json import ACTIONS, address

GITHUB_COMMENT_LIMIT = 65_536
# hidden in the rendered comment; a workflow finds its own comment by it and updates it
MARKER = "<!-- reconciler-plan -->"
DESTRUCTIVE = {"delete"}
_SYMBOL = re.compile(r"^(\s*)([+~!.?<]) ")
_ACTIVE = re.compile(r"[\\`*_\[\]<>|~&#!]")  # what Markdown (or HTML) acts on inside a line
# '@someone' pings a person and 'https://...' or 'www.' makes a link, unless in code
_INERT = re.compile(r"@[\w./-]+|\b(?:https?|ftp)://\S+|\bwww\.\S+")
_BACKTICKS = re.compile(r"`+")


def _fence_for(texts: list[str], least: int = 1) -> str:
    """Backticks enough to fence `texts`: one more than their longest run."""
    longest = max((len(m.group()) for t in texts for m in _BACKTICKS.finditer(t)), default=0)
    return "`" * max(least, longest + 1)


def code(value: str, table: bool = False) -> str:
    """`value` as an inline code span, whatever backticks it holds; in a table cell its
    pipes are escaped too (GitHub splits cells at a pipe even inside code)."""
    value = visible(value)
    fence = _fence_for([value])
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    if table:
        value = value.replace("|", "\\|")
    return f"{fence}{pad}{value}{pad}{fence}"


def prose(value: str, table: bool = False) -> str:
    """`value` as Markdown text that reads as itself: nothing in it formats, links, pings or
    starts HTML."""
    value = visible(value)
    out: list[str] = []
    last = 0
    for m in _INERT.finditer(value):
        out.append(_ACTIVE.sub(r"\\\g<0>", value[last : m.start()]))
        out.append(code(m.group(), table))
        last = m.end()
    out.append(_ACTIVE.sub(r"\\\g<0>", value[last:]))
    return "".join(out)


def warnings(plan: Plan) -> list[str]:
    found: list[str] = []
    destructive = [c for c in plan.changes if DESTRUCTIVE & set(ACTIONS[c.action])]
    if destructive:
        names = ", ".join(code(address(c)) for c in destructive)
        found.append(f"**Destructive:** {names} will be deleted or replaced.")
    public = [
        c
        for c in plan.changes
        if (c.action is Action.CREATE and c.desired is not None and c.desired.public)
        or any(f.field == "public" and f.after is True for f in c.fields)
    ]
    if public:
        names = ", ".join(code(address(c)) for c in public)
        found.append(f"**Public:** {names} will be visible to every Cloudflare account.")
    if plan.blocked:
        names = ", ".join(code(address(c)) for c in plan.blocked)
        found.append(f"**Blocked:** {names} cannot be changed as declared; apply will refuse.")
    # what the plan warns about (a deprecated base model, a catalogue that could not be read)
    # belongs where a reviewer reads, not only in the folded details
    found += [
        f"**Warning:** {code(address(c))}: {prose(w)}" for c in plan.changes for w in c.warnings
    ]
    found += [f"**Warning:** {prose(w)}" for w in plan.warnings]
    return found


def _diff_lines(plan: Plan) -> list[str]:
    """The text view with each change symbol moved to column 0, so GitHub colours it."""
    out = []
    for line in text.render(plan, color=False).splitlines():
        m = _SYMBOL.match(line)
        if m:
            symbol = {"~": "!", ".": "#", "?": "#", "<": "!"}.get(m.group(2), m.group(2))
            line = symbol + m.group(1) + line[m.end() - 1 :]
        out.append(line)
    return out


def render(plan: Plan, limit: int = GITHUB_COMMENT_LIMIT) -> str:
    head = [MARKER, f"### reconciler: {text.summary(plan)}", ""]
    notes = warnings(plan)
    if notes:
        head += ["> [!WARNING]", *[f"> {n}  " for n in notes], ""]
    rows = [
        f"| `{c.action.symbol.strip() or '='}` | {code(address(c), table=True)} "
        f"| {', '.join(ACTIONS[c.action])} | {prose(c.reason, table=True)}{_version(c)} |"
        for c in plan.changes
        if c.action is not Action.NOOP
    ]
    table = (
        ["| | finetune | action | why |", "| --- | --- | --- | --- |", *rows, ""] if rows else []
    )
    if not plan.has_changes and not plan.blocked:
        table = ["No changes: the finetunes match the configuration and the lockfile.", ""]
    diff = _diff_lines(plan)
    fence = _fence_for(diff, least=3)  # a remote name holding ``` cannot close it early
    details = ["<details><summary>Plan details</summary>", "", f"{fence}diff", *diff]
    closing = [fence, "", "</details>", ""]
    return _fit(head, table + details, closing, limit)


def _version(c: Change) -> str:
    """A versioned change's transition: `support-bot-8e1c0d2a` → `support-bot-3f2a91c0`."""
    if c.version is None or c.remote_name is None or c.action is Action.DELETE:
        return ""
    if c.supersedes:
        return f" ({code(c.supersedes, True)} → {code(c.remote_name, True)})"
    return f" ({code(c.remote_name, True)})"


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
        in_fence = in_fence or (line.startswith("```") and line.strip("`") == "diff")
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
