"""One finetune's story for `reconciler show NAME`: records, status, events, and the loss.

What the account and the lockfile say is shown through untrusted.visible: one line each.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

from reconciler.base.model import LockedFinetune, LockedVersion, RemoteFinetune
from reconciler.base.untrusted import visible
from reconciler.providers.base import History, StepMetric

CHART_ROWS = 8
CHART_WIDTH = 60


def render(
    name: str,
    locked: LockedFinetune | None,
    remote: RemoteFinetune | None,
    history: History,
    versions: Mapping[str, LockedVersion] | None = None,
) -> str:
    """`versions`: the lockfile's other versions of a versioned finetune."""
    out = [f"finetune {visible(name)}", *_versions(locked, versions or {})]
    if locked is None:
        out.append("  recorded: not in the lockfile")
    else:
        out.append(
            f"  recorded: {visible(locked.provider)} account {visible(locked.account)}, "
            f"id {visible(locked.id)}"
        )
        for asset in locked.assets.values():
            out.append(
                f"    asset {visible(asset.name)}: {visible(asset.sha256)} ({asset.size} bytes)"
            )
    if remote is None:
        out.append("  remote:   not found")
    else:
        status = visible(str(remote.status)) if remote.status else "n/a"
        out.append(f"  remote:   {visible(remote.model)}, status {status}")
        for key, value in sorted(remote.fields.items()):  # json.dumps escapes non-ASCII
            out.append(f"    {visible(key)}: {json.dumps(value, sort_keys=True)}")
    if history.events:
        out += ["", "events:"]
        out += [f"  {visible(str(e.created_at))}  {visible(str(e.status))}" for e in history.events]
    if history.metrics:
        out += ["", *chart(history.metrics, _loss_key(history.metrics))]
    return "\n".join(out) + "\n"


def _versions(locked: LockedFinetune | None, versions: Mapping[str, LockedVersion]) -> list[str]:
    """The current version's name, then every other version the lockfile keeps, newest first."""
    out = []
    if locked is not None and locked.remote_name and locked.version:
        out.append(f"  current version: {visible(locked.remote_name)}")
    if versions:
        out.append("  other versions:")
        for v in sorted(versions.values(), key=lambda v: (v.created_at or "", v.version))[::-1]:
            made = f"  made {visible(v.created_at)}" if v.created_at else ""
            out.append(f"    {visible(v.remote_name)}  {visible(v.state)}{made}")
    return out


LOSS_KEYS = ("loss", "cross_entropy", "train_loss")  # Cohere reports the loss as cross_entropy


def _loss_key(metrics: tuple[StepMetric, ...]) -> str:
    names = {k for m in metrics for k in m.metrics}
    return next((k for k in LOSS_KEYS if k in names), min(names, default="loss"))


def chart(metrics: tuple[StepMetric, ...], key: str) -> list[str]:
    """A small text chart of one metric over the training steps."""
    # an account may report a step's value as NaN or infinite: no point of the chart
    points = [
        (m.step, m.metrics[key]) for m in metrics if math.isfinite(m.metrics.get(key, math.nan))
    ]
    key = visible(key)  # a metric's name, as the account reports it
    if not points:
        return [f"no {key} recorded"]
    if len(points) > CHART_WIDTH:  # one column a bucket of steps: keep the last value of each
        size = -(-len(points) // CHART_WIDTH)
        points = [points[min(i + size, len(points)) - 1] for i in range(0, len(points), size)]
    low = min(v for _, v in points)
    high = max(v for _, v in points)
    span = (high - low) or 1.0
    rows = [[" "] * len(points) for _ in range(CHART_ROWS)]
    for x, (_, value) in enumerate(points):
        y = round((value - low) / span * (CHART_ROWS - 1))
        rows[CHART_ROWS - 1 - y][x] = "*"
    label_width = max(len(f"{high:.4g}"), len(f"{low:.4g}"))
    lines = [
        f"{key} over {len(metrics)} steps (first {points[0][1]:.4g}, last {points[-1][1]:.4g}):"
    ]
    for i, row in enumerate(rows):
        label = f"{high:.4g}" if i == 0 else f"{low:.4g}" if i == CHART_ROWS - 1 else ""
        lines.append(f"  {label.rjust(label_width)} |{''.join(row)}")
    first, last = f"step {points[0][0]}", f"step {points[-1][0]}"
    axis = (
        first + " " * (len(points) - len(first) - len(last)) + last
        if len(points) >= len(first) + len(last) + 1
        else f"steps {points[0][0]}..{points[-1][0]}"
    )
    lines.append(f"  {' ' * label_width} +{'-' * len(points)}")
    lines.append(f"  {' ' * label_width}  {axis}")
    return lines
