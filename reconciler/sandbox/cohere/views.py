"""The JSON the Cohere API answers with, built from stored records and the clock."""

from __future__ import annotations

from typing import Any

from reconciler.sandbox.cohere.datasets import REQUIRED_FIELDS
from reconciler.sandbox.cohere.store import Dataset, Model
from reconciler.sandbox.cohere.training import (
    VALIDATION_QUEUED_SECONDS,
    VALIDATION_SECONDS,
    Run,
    validation_status,
)
from reconciler.sandbox.common.clock import iso


def dataset_status(dataset: Dataset, now: float, speed: float) -> str:
    return validation_status(dataset.created_at, now, speed, dataset.verdict.error is not None)


def dataset(d: Dataset, now: float, speed: float) -> dict[str, Any]:
    status = dataset_status(d, now, speed)
    done = status in ("validated", "failed")
    # updated_at moves with each validation stage, as a record being processed would.
    stage = {"queued": 0.0, "processing": VALIDATION_QUEUED_SECONDS}.get(status, VALIDATION_SECONDS)
    body: dict[str, Any] = {
        "id": d.id,
        "name": d.name,
        "created_at": iso(d.created_at),
        "updated_at": iso(d.created_at + stage / speed),
        "dataset_type": d.dataset_type,
        "validation_status": status,
        "required_fields": REQUIRED_FIELDS.get(d.dataset_type, []),
        "preserve_fields": [],
        "dataset_parts": [
            {
                "id": f"{d.id}-{part.part}",
                "name": part.file_name,
                "index": index,
                "size_bytes": part.size,
                **({"num_rows": d.verdict.rows.get(part.part, 0)} if status == "validated" else {}),
            }
            for index, part in enumerate(d.parts)
        ],
        "validation_warnings": d.verdict.warnings if done else [],
    }
    if status == "failed":
        body["validation_error"] = d.verdict.error
    if status == "validated" and d.verdict.metrics is not None:
        body["metrics"] = d.verdict.metrics
    return body


def finetuned_model(m: Model, now: float, speed: float, organization_id: str) -> dict[str, Any]:
    events = m.run.events(now, speed)
    body: dict[str, Any] = {
        "id": m.id,
        "name": m.name,
        "creator_id": m.creator_id,
        "organization_id": organization_id,
        "settings": m.settings,
        "status": m.run.status(now, speed),
        "created_at": iso(m.created_at),
        # A status change is an update too (the spec's example: updated just after ready).
        "updated_at": iso(max(m.updated_at, events[-1][1])),
    }
    completed = m.run.completed_at(now, speed)
    if completed is not None:
        body["completed_at"] = iso(completed)
    return body


def event(status: str, at: float, user_id: str | None) -> dict[str, Any]:
    # System-made changes carry no user_id, as in the spec's example.
    return {**({"user_id": user_id} if user_id else {}), "status": status, "created_at": iso(at)}


def step_metrics(run: Run, step: int, speed: float) -> dict[str, Any]:
    at, values = run.metrics(step, speed)
    return {"created_at": iso(at), "step_number": step, "metrics": values}
