"""Views of a Plan, one module per format; each takes data and returns text."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reconciler.plan.planner import Plan

FORMATS = ("text", "json", "markdown")


def render(plan: Plan, fmt: str, color: bool = False) -> str:
    if fmt == "json":
        from reconciler.render import json

        return json.render(plan)
    if fmt == "markdown":
        from reconciler.render import markdown

        return markdown.render(plan)
    from reconciler.render import text

    return text.render(plan, color=color)
