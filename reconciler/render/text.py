"""The human view of a plan, in the style Terraform users read every day.

Every string that did not come from reconciler itself (a remote name, id, description or
status, a lockfile entry, a config value) goes through untrusted.visible or .quoted: one
line each, with no control or bidi character left to act on the terminal or the layout.
"""

from __future__ import annotations

import json

import click

from reconciler.apply.runner import Outcome, Result
from reconciler.base.diff import FieldChange
from reconciler.base.labels import source_label
from reconciler.base.model import AssetDigest
from reconciler.base.units import human_size
from reconciler.base.untrusted import quoted, visible
from reconciler.plan.planner import Action, AssetChange, Change, Plan

COLOURS = {
    Action.CREATE: "green",
    Action.UPLOAD: "yellow",
    Action.UPDATE: "yellow",
    Action.REPLACE: "red",
    Action.DELETE: "red",
    Action.BLOCKED: "red",
    Action.FORGET: "magenta",
    Action.UNMANAGED: "cyan",
    Action.SWITCH: "yellow",
}

HEADLINES = {
    Action.CREATE: "will be created",
    Action.UPLOAD: "will have assets uploaded",
    Action.UPDATE: "will be updated in place",
    Action.REPLACE: "must be replaced",
    Action.DELETE: "will be deleted",
    Action.BLOCKED: "cannot be changed as declared",
    Action.FORGET: "will be forgotten",
    Action.SWITCH: "will switch versions",
}


def _digest(d: AssetDigest | None) -> str:
    if d is None:
        return "(none)"
    origin = f" from {visible(source_label(d.source))}" if d.source else ""
    # a digest may come from a Hub's or a lockfile's say-so: shown escaped like any remote text
    return f"{visible(d.short)}… ({human_size(d.size)}){origin}"


def _value(v: object) -> str:
    return "null" if v is None else visible(json.dumps(v, ensure_ascii=False))


def summary(plan: Plan) -> str:
    parts = [f"{plan.count(Action.CREATE)} to create"]
    # what only some providers can do is counted when it happens, so that a Cloudflare plan
    # reads the same as ever
    for action, verb in ((Action.UPDATE, "update"), (Action.REPLACE, "replace")):
        if plan.count(action):
            parts.append(f"{plan.count(action)} to {verb}")
    parts += [f"{plan.count(Action.UPLOAD)} to upload"]
    if plan.count(Action.DELETE):
        parts.append(f"{plan.count(Action.DELETE)} to delete")
    if plan.count(Action.SWITCH):
        parts.append(f"{plan.count(Action.SWITCH)} to switch")
    parts.append(f"{plan.count(Action.FORGET)} to forget")
    if plan.blocked:
        parts.append(f"{len(plan.blocked)} blocked")
    parts.append(f"{plan.count(Action.NOOP)} unchanged")
    return "Plan: " + ", ".join(parts) + "."


def render(plan: Plan, color: bool = False) -> str:
    def paint(text: str, action: Action, bold: bool = False) -> str:
        colour = COLOURS.get(action)
        return click.style(text, fg=colour, bold=bold) if color and colour else text

    out: list[str] = []
    shown = [c for c in plan.changes if c.action in HEADLINES]
    if shown:
        out += ["reconciler will perform the following actions:", ""]
    for c in shown:
        out += _block(c, paint)
    notes = [w for c in plan.changes if c.action is Action.NOOP for w in c.warnings]
    notes += plan.warnings  # about the run as a whole (e.g. a catalogue that could not be read)
    if notes:
        out += [paint(f"Warning: {visible(w)}", Action.FORGET) for w in notes] + [""]
    if plan.retired:
        out += [
            f"{plan.retired} retired version{'s' if plan.retired != 1 else ''} of versioned "
            "finetunes kept in the accounts (not unmanaged; `reconciler output` names the "
            "current ones).",
            "",
        ]
    if plan.leftovers:
        out += [
            f"{plan.leftovers} leftover finetune{'s' if plan.leftovers != 1 else ''} kept in the "
            "accounts (made by reconciler, since removed from the config: not unmanaged; "
            "`reconciler list` names them).",
            "",
        ]
    unmanaged = [c for c in plan.changes if c.action is Action.UNMANAGED]
    if unmanaged:
        out.append("Unmanaged finetunes (in the account, not in the config; left untouched):")
        for c in unmanaged:
            line = (
                f"  ? finetune {quoted(c.name)} ({visible(c.provider)} account "
                f"{visible(c.account)}, id {visible(str(c.remote_id))})"
            )
            out.append(paint(line, Action.UNMANAGED))
        out.append("")
    if not plan.has_changes and not plan.blocked:
        out.append(click.style("No changes.", bold=True) if color else "No changes.")
        out.append("The finetunes match the configuration and the lockfile.")
        out.append("")
    out.append(paint(summary(plan), Action.BLOCKED if plan.blocked else Action.NOOP, bold=True))
    if plan.blocked:
        out += ["", paint(blocked_message(plan), Action.BLOCKED)]
    return "\n".join(out) + "\n"


def blocked_message(plan: Plan) -> str:
    names = ", ".join(visible(c.name) for c in plan.blocked)
    count = len(plan.blocked)
    return (
        f"Error: {count} finetune{'s' if count != 1 else ''} cannot be changed as declared "
        f"({names}); see the reasons above. Nothing will be applied until each is resolved as "
        "its reason says."
    )


def _block(c: Change, paint: object) -> list[str]:
    assert callable(paint)
    sym = c.action.symbol
    lines = [f"  # {visible(c.name)} {HEADLINES[c.action]}: {visible(c.reason)}"]
    lines.append(paint(f"  {sym} finetune {quoted(c.name)} {{", c.action))
    transition = version_transition(c)
    rows: list[tuple[str, str, str]] = []  # (symbol, key, value)
    if c.action is Action.CREATE:
        rows.append(("+", "provider", _value(c.provider)))
        rows.append(("+", "account", _value(c.account)))
        rows += [("+", visible(f.field), _value(f.after)) for f in c.fields]
    else:
        if c.remote_id:
            rows.append((" ", "id", _value(c.remote_id)))
        rows += [("~", visible(f.field), _field_change(f)) for f in c.fields]
    if transition is not None:
        rows.insert(0, ("~" if c.supersedes else "+", "version", transition))
    elif c.action is Action.DELETE and c.version is not None and c.remote_name is not None:
        rows.insert(0, ("-", "version", _value(c.remote_name)))  # which one of the finetune
    rows += [_asset_row(a) for a in c.assets]
    if not rows:  # a blocked finetune that names nothing yet: say which one it is
        rows = [(" ", "provider", _value(c.provider)), (" ", "account", _value(c.account))]
    width = max((len(k) for _, k, _ in rows), default=0)
    for s, key, value in rows:
        text = (
            f"      {s} {key.ljust(width)} = {value}"
            if s != " "
            else f"        {key.ljust(width)} = {value}"
        )
        lines.append(paint(text, c.action) if s != " " else text)
    lines.append(paint("    }", c.action))
    lines += [paint(f"  Warning: {visible(w)}", Action.FORGET) for w in c.warnings]
    lines.append("")
    return lines


def version_transition(c: Change) -> str | None:
    """`"support-bot-8e1c0d2a" -> "support-bot-3f2a91c0"` for a change of a versioned finetune
    that makes another version current (or the version's name alone for a first one)."""
    if c.version is None or c.remote_name is None or c.action is Action.DELETE:
        return None
    if c.supersedes:
        return f"{_value(c.supersedes)} -> {_value(c.remote_name)}"
    if c.action in (Action.CREATE, Action.SWITCH, Action.UPLOAD):
        return _value(c.remote_name)
    return None


def _field_change(f: FieldChange) -> str:
    return f"{_value(f.before)} -> {_value(f.after)}"


def _asset_row(a: AssetChange) -> tuple[str, str, str]:
    key = f"asset {quoted(a.name)}"
    if a.before is None:
        return ("+", key, _digest(a.after))
    if a.before == a.after:  # a new version carries it over: the same bytes, not a change
        return (" ", key, _digest(a.after))
    return ("~", key, f"{_digest(a.before)} -> {_digest(a.after)}")


def render_outcome(o: Outcome, color: bool = False, took: str = "") -> str:
    """One finished step; `took`: what the terminal view adds (the time, an upload's rate)."""
    mark = "ok " if o.ok else "-- " if o.skipped else "ERR"
    text = f"  {mark} {visible(o.name)}: {visible(o.step)}: {visible(o.detail)}{took}"
    if color:
        return click.style(text, fg="green" if o.ok else "yellow" if o.skipped else "red")
    return text


def render_result(result: Result, color: bool = False, interrupted: bool = False) -> str:
    done = [o for o in result.outcomes if o.ok]
    counts = {
        "created": sum(1 for o in done if o.step == "create"),
        "updated": sum(1 for o in done if o.step == "update"),
        "deleted": sum(1 for o in done if o.step in ("delete", "delete_leftover")),
        "made current": sum(1 for o in done if o.step == "promote"),
        "uploaded": sum(1 for o in done if o.step.startswith("upload")),
        "forgotten": sum(1 for o in done if o.step == "forget"),
    }
    always = ("created", "uploaded", "forgotten")  # the others only when they happened
    tally = ", ".join(f"{n} {k}" for k, n in counts.items() if n or k in always)
    if result.not_started:
        stopped = len(result.not_started)
        failed = f", {len(result.failed)} step(s) failed" if result.failed else ""
        text = (
            f"Apply interrupted: {tally}{failed}; {stopped} finetune"
            f"{'s' if stopped != 1 else ''} not finished. The lockfile records every step that "
            "finished: run apply again to finish."
        )
        return click.style(text, fg="yellow", bold=True) if color else text
    if interrupted and not result.failed:  # Ctrl-C came as the last steps were under way
        text = (
            f"Apply interrupted: {tally}; nothing was left undone: every step under way when "
            "it came had finished."
        )
        return click.style(text, fg="yellow", bold=True) if color else text
    if not result.failed:
        text = f"Apply complete: {tally}."
        return click.style(text, fg="green", bold=True) if color else text
    text = (
        f"Apply failed: {len(result.failed)} step(s) failed ({tally} before that). The lockfile "
        "records every step that succeeded: fix the cause and run apply again to finish."
    )
    return click.style(text, fg="red", bold=True) if color else text
