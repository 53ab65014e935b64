"""Views of what the accounts hold (`reconciler list`): a table for people, JSON for machines."""

from __future__ import annotations

import json
from collections.abc import Sequence

import click

from reconciler.base.untrusted import json_safe, visible
from reconciler.render.checks import painter, table
from reconciler.workflow.inventory import STATES, Held

COLOURS = {"managed": "green", "leftover": "yellow", "unmanaged": "cyan"}


def render(found: Sequence[Held], fmt: str, color: bool = False) -> str:
    if fmt == "json":
        data = {
            "format_version": 1,
            "finetunes": [
                {
                    "provider": h.provider,
                    "account": h.account,
                    "id": h.id,
                    "name": h.name,
                    "model": h.model,
                    "state": h.state,
                    "finetune": h.finetune,
                    "note": h.note,
                    "created_at": h.created_at,
                    **({"placement": dict(h.placement)} if h.placement else {}),
                }
                for h in found
            ],
        }
        return json_safe(json.dumps(data, indent=2, sort_keys=True)) + "\n"
    accounts = sorted({(h.provider, h.account) for h in found})
    header = ["name", "state", "model", "id", "note"]
    if len(accounts) > 1:
        header.insert(0, "account")
    rows = []
    for h in found:
        # every cell comes from an account or the lockfile: one visible line each
        row = [visible(h.name), h.state, visible(h.model), visible(h.id), visible(h.note)]
        if len(accounts) > 1:
            row.insert(0, f"{visible(h.provider)}.{visible(h.account)}")
        rows.append(row)
    counts = ", ".join(f"{sum(1 for h in found if h.state == s)} {s}" for s in STATES)
    noun = "finetune" if len(found) == 1 else "finetunes"
    where = (
        f" in {visible(accounts[0][0])} account {visible(accounts[0][1])}"
        if len(accounts) == 1
        else f" in {len(accounts)} accounts"
        if accounts
        else ""
    )
    tally = f"{len(found)} {noun}{where}: {counts}."
    if not found:
        return tally + "\n"
    paint = painter(header.index("state"), COLOURS) if color else None
    if color:
        tally = click.style(tally, bold=True)
    return table(header, rows, paint) + "\n" + tally + "\n" + _fleets(found)


def _fleets(found: Sequence[Held]) -> str:
    """A fleet's finetunes as a matrix, adapter by server: where each one is loaded."""
    placed = [h for h in found if h.placement]
    if not placed:
        return ""
    servers = sorted({s for h in placed for s in h.placement})
    header = ["adapter", *(visible(s) for s in servers)]
    rows = [
        [visible(h.name), *("loaded" if h.placement.get(s) else "-" for s in servers)]
        for h in placed
    ]
    return "\n" + table(header, rows, None) + "\n"
