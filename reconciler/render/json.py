"""The machine-readable view of a plan; its shape is schemas/plan.schema.json."""

from __future__ import annotations

import json
from typing import Any

from reconciler.base.untrusted import json_safe
from reconciler.plan.codec import digest_to_data
from reconciler.plan.planner import Action, Change, Plan

FORMAT_VERSION = 1

# Terraform's vocabulary where it fits: a list, so that a replacement can read ["delete", "create"]
ACTIONS: dict[Action, list[str]] = {
    Action.CREATE: ["create"],
    Action.UPLOAD: ["upload"],
    Action.UPDATE: ["update"],
    Action.REPLACE: ["delete", "create"],
    Action.DELETE: ["delete"],
    Action.NOOP: ["no-op"],
    Action.BLOCKED: ["blocked"],
    Action.FORGET: ["forget"],
    Action.UNMANAGED: ["unmanaged"],
    Action.SWITCH: ["switch"],
}


def address(c: Change) -> str:
    return f"{c.provider}.{c.name}"


def summary(plan: Plan) -> dict[str, int]:
    return {
        "create": plan.count(Action.CREATE),
        "update": plan.count(Action.UPDATE),
        "replace": plan.count(Action.REPLACE),
        "delete": plan.count(Action.DELETE),
        "upload": plan.count(Action.UPLOAD),
        "forget": plan.count(Action.FORGET),
        "blocked": plan.count(Action.BLOCKED),
        "unchanged": plan.count(Action.NOOP),
        "unmanaged": plan.count(Action.UNMANAGED),
        "switch": plan.count(Action.SWITCH),
    }


def to_data(plan: Plan) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "has_changes": plan.has_changes,
        "applicable": not plan.blocked,
        "summary": summary(plan),
        "warnings": list(plan.warnings),
        "retired_versions": plan.retired,
        "leftovers": plan.leftovers,
        "changes": [
            {
                "address": address(c),
                "name": c.name,
                "provider": c.provider,
                "account": c.account,
                "remote_id": c.remote_id,
                "actions": ACTIONS[c.action],
                "reason": c.reason,
                "fields": [
                    {"field": f.field, "before": f.before, "after": f.after} for f in c.fields
                ],
                "assets": [
                    {
                        "name": a.name,
                        "before": _asset(a.before),
                        "after": _asset(a.after),
                    }
                    for a in c.assets
                ],
                "warnings": list(c.warnings),
                "version": None
                if c.version is None
                else {
                    "version": c.version,
                    "name": c.remote_name,
                    "supersedes": c.supersedes,
                },
            }
            for c in plan.changes
        ],
    }


def _asset(d: Any) -> dict[str, Any] | None:
    data = digest_to_data(d)
    return None if data is None else {"size": data["size"], "sha256": data["sha256"]}


def render(plan: Plan) -> str:
    # non-ASCII text stays readable; control and bidi characters a remote string may hold
    # are written as \u escapes: the same data for a parser, nothing for a terminal to act on
    return json_safe(json.dumps(to_data(plan), indent=2, sort_keys=True, ensure_ascii=False)) + "\n"
