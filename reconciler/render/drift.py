"""Views of a drift report: text for people, JSON for machines, Markdown for an issue."""

from __future__ import annotations

import json

import click

from reconciler.base.untrusted import json_safe, visible
from reconciler.plan.drift import Drift, DriftKind, is_drift

SYMBOLS = {
    DriftKind.GONE: "-",
    DriftKind.REPLACED: "!",
    DriftKind.CHANGED: "~",
    DriftKind.UNMANAGED: "?",
    DriftKind.LEFTOVER: ".",
}


COLOURS = {
    DriftKind.GONE: "red",
    DriftKind.REPLACED: "red",
    DriftKind.CHANGED: "yellow",
    DriftKind.UNMANAGED: "cyan",
    DriftKind.LEFTOVER: "magenta",
}


def _line(d: Drift, color: bool = False) -> str:
    # names, ids and details come from the accounts and the lockfile: one visible line each
    head = f"{SYMBOLS[d.kind]} {visible(d.provider)}.{visible(d.name)} ({d.kind.value}):"
    text = (click.style(head, fg=COLOURS[d.kind], bold=True) if color else head) + " "
    text += visible(d.detail)
    for f in d.fields:  # json.dumps writes every non-ASCII character as an escape
        text += f"\n    {visible(f.field)}: {json.dumps(f.before)} -> {json.dumps(f.after)}"
    return text


def summary(items: tuple[Drift, ...]) -> str:
    kept = sum(1 for d in items if d.kind is DriftKind.LEFTOVER)
    also = f" ({kept} leftover{'s' if kept != 1 else ''} kept, not drift)" if kept else ""
    if not is_drift(items):
        return f"No drift: the accounts match the lockfile{also}."
    counts = {
        k: sum(1 for d in items if d.kind is k) for k in DriftKind if k is not DriftKind.LEFTOVER
    }
    return "Drift: " + ", ".join(f"{n} {k.value}" for k, n in counts.items()) + f"{also}."


def render(items: tuple[Drift, ...], fmt: str, color: bool = False) -> str:
    if fmt == "json":
        data = {
            "format_version": 1,
            "has_drift": is_drift(items),
            "drift": [
                {
                    "address": f"{d.provider}.{d.name}",
                    "kind": d.kind.value,
                    "account": d.account,
                    "remote_id": d.remote_id,
                    "detail": d.detail,
                    "fields": [
                        {"field": f.field, "before": f.before, "after": f.after} for f in d.fields
                    ],
                }
                for d in items
            ],
        }
        return json_safe(json.dumps(data, indent=2, sort_keys=True)) + "\n"
    if fmt == "markdown":
        from reconciler.render.markdown import code, prose

        lines = [f"### reconciler: {summary(items)}", ""]
        lines += [
            f"- {code(f'{d.provider}.{d.name}')} **{d.kind.value}**: {prose(d.detail)}"
            for d in items
        ]
        return "\n".join(lines) + "\n"
    total = summary(items)
    if color:
        total = click.style(total, fg="yellow" if is_drift(items) else "green", bold=True)
    return "\n".join([*(_line(d, color) for d in items), total]) + "\n"
