"""The JSON the API answers for each record (fireworks-ai 1.2.30 `types/`).

States are not stored but derived from the clock on every read (as the other emulated APIs
do), so they survive a restart and a test can step through them with a ManualClock.
Timestamps are RFC 3339 in UTC with microseconds, as proto-JSON writes a Timestamp.
"""

from __future__ import annotations

from typing import Any

from reconciler.sandbox.common.clock import iso
from reconciler.sandbox.fireworks.records import (
    OK_STATUS,
    DeployedRecord,
    DeploymentRecord,
    ModelRecord,
)

# The top-level fields each resource answers with: what filter, orderBy and readMask may name.
MODEL_FIELDS = frozenset(
    {
        "name", "displayName", "description", "createTime", "updateTime", "state", "status",
        "kind", "public", "peftDetails", "conversationConfig", "contextLength", "githubUrl",
        "huggingFaceUrl", "supportsImageInput", "supportsTools", "supportsLora",
        "supportsServerless", "useHfApplyChatTemplate", "trainingContextLength",
        "defaultDraftModel", "defaultDraftTokenCount", "snapshotType", "baseModelDetails",
        "teftDetails", "deprecationDate", "deployedModelRefs", "tunable",
    }
)  # fmt: skip
DEPLOYED_FIELDS = frozenset(
    {
        "name", "displayName", "description", "createTime", "updateTime", "model",
        "deployment", "default", "state", "serverless", "status", "public",
    }
)  # fmt: skip


def model(record: ModelRecord, refs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A Model. `deployedModelRefs` is "populated from GetModel API call only": pass `refs`
    for a Get, None for a List."""
    view: dict[str, Any] = {
        "name": record.name,
        "displayName": "",
        "description": "",
        "kind": "HF_PEFT_ADDON",
        "public": False,
        **record.fields,
        "createTime": iso(record.created_at),
        "updateTime": iso(record.updated_at),
        "state": "READY" if record.ready else "UPLOADING",
        "status": record.status,
    }
    if refs is not None:
        view["deployedModelRefs"] = refs
    return view


def deployment_state(record: DeploymentRecord, now: float) -> str:
    return "READY" if now >= record.ready_at else "CREATING"


def deployment(record: DeploymentRecord, now: float) -> dict[str, Any]:
    state = deployment_state(record, now)
    return {
        "name": record.name,
        "displayName": "",
        "description": "",
        "enableAddons": False,
        **record.fields,
        "createTime": iso(record.created_at),
        "updateTime": iso(max(record.updated_at, min(now, record.ready_at))),
        "state": state,
        "status": OK_STATUS,
        # One replica once READY (sandbox choice: no autoscaling is emulated).
        "replicaCount": 1 if state == "READY" else 0,
    }


def deployed_state(record: DeployedRecord, now: float) -> str:
    return "DEPLOYED" if now >= record.ready_at else "DEPLOYING"


def deployed(record: DeployedRecord, now: float) -> dict[str, Any]:
    view: dict[str, Any] = {
        "name": record.name,
        "displayName": "",
        "description": "",
        "model": record.model_name,
        "serverless": record.serverless,
        "default": record.default,
        "public": False,
        **record.fields,
        "createTime": iso(record.created_at),
        "updateTime": iso(max(record.updated_at, min(now, record.ready_at))),
        "state": deployed_state(record, now),
        "status": OK_STATUS,
    }
    if record.deployment_name is not None:
        view["deployment"] = record.deployment_name
    return view


def ref(record: DeployedRecord, now: float) -> dict[str, Any]:
    """A DeployedModelRef, as Get Model lists the model's loaded copies."""
    view: dict[str, Any] = {
        "name": record.name,
        "state": deployed_state(record, now),
        "default": record.default,
        "public": bool(record.fields.get("public", False)),
    }
    if record.deployment_name is not None:
        view["deployment"] = record.deployment_name
    return view
