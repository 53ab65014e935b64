"""Plans to plain data and back, losslessly: what a saved plan file holds.

Paths are stored relative to the config's folder, so a plan made in one checkout (a pull
request's CI job) applies in another (the merge job) wherever it is cloned.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from reconciler.base.diff import FieldChange
from reconciler.base.labels import shown
from reconciler.base.model import AssetDigest, AssetFile, AssetSource, DesiredFinetune
from reconciler.plan.planner import Action, AssetChange, Change, Plan, Step, StepKind


def digest_to_data(d: AssetDigest | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {"name": d.name, "size": d.size, "sha256": d.sha256, "remote_id": d.remote_id} | (
        {"source": d.source} if d.source else {}
    )


def digest_from_data(data: dict[str, Any] | None) -> AssetDigest | None:
    if data is None:
        return None
    return AssetDigest(
        data["name"], data["size"], data["sha256"], data.get("remote_id"), data.get("source")
    )


def _source_to_data(a: AssetFile) -> dict[str, Any]:
    """An asset's remote source, where it has one (hf:, files:): a plan of it differs from a
    plan of a local file of the same name."""
    s = a.source
    if s is None:
        return {}
    location = s.location
    found: dict[str, Any] = {"kind": s.kind}
    if s.kind == "url":
        # a signed URL's query is a credential: a plan file holds the URL as shown, and a
        # digest of the whole, which still tells one URL from another
        location = shown(s.location)
        found["location_sha256"] = hashlib.sha256(s.location.encode("utf-8")).hexdigest()
    found |= {"location": location, "revision": s.revision}
    found |= {"subfolder": s.subfolder, "sha256": s.sha256}
    return {"source": {k: v for k, v in found.items() if v is not None}}


def _source_from_data(data: dict[str, Any]) -> AssetSource | None:
    s = data.get("source")
    if s is None:
        return None
    return AssetSource(
        s["kind"], s["location"], s.get("revision"), s.get("subfolder"), s.get("sha256")
    )


def relative(path: Path, base: Path, *, base_resolved: bool = False, resolved: bool = False) -> str:
    """`path` relative to `base` (both resolved, unless the caller says it did), or absolute
    where it is outside."""
    if not resolved:
        path = path.resolve()
    try:
        return path.relative_to(base if base_resolved else base.resolve()).as_posix()
    except ValueError:
        return str(path)


def plan_to_data(plan: Plan, base: Path) -> dict[str, Any]:
    return {
        "endpoints": dict(plan.endpoints),
        "changes": [_change_to_data(c, base) for c in plan.changes],
        "warnings": list(plan.warnings),
        "retired": plan.retired,
        "leftovers": plan.leftovers,
    }


def plan_from_data(data: dict[str, Any], base: Path) -> Plan:
    return Plan(
        changes=tuple(_change_from_data(c, base) for c in data["changes"]),
        endpoints=dict(data["endpoints"]),
        warnings=tuple(data.get("warnings", ())),
        retired=int(data.get("retired", 0)),
        leftovers=int(data.get("leftovers", 0)),
    )


def _change_to_data(c: Change, base: Path) -> dict[str, Any]:
    d = c.desired
    return {
        "name": c.name,
        "provider": c.provider,
        "account": c.account,
        "action": c.action.value,
        "reason": c.reason,
        "remote_id": c.remote_id,
        "desired": None
        if d is None
        else {
            "name": d.name,
            "model": d.model,
            "description": d.description,
            "public": d.public,
            "fields": dict(d.fields),
            "prevent_destroy": d.prevent_destroy,
            "previous_name": d.previous_name,
            "versioning": d.versioning,
            "keep": d.keep,
            "assets": [
                {"name": a.name, "path": relative(a.path, base), "kind": a.kind}
                | _source_to_data(a)
                for a in d.assets
            ],
        },
        "fields": [{"field": f.field, "before": f.before, "after": f.after} for f in c.fields],
        "assets": [
            {"name": a.name, "before": digest_to_data(a.before), "after": digest_to_data(a.after)}
            for a in c.assets
        ],
        "steps": [
            {
                "kind": s.kind.value,
                "asset": None if s.asset is None else s.asset.name,
                "path": None if s.asset is None else relative(s.asset.path, base),
                "asset_kind": None if s.asset is None else s.asset.kind,
                "digest": digest_to_data(s.digest),
            }
            | ({} if s.asset is None else _source_to_data(s.asset))
            for s in c.steps
        ],
        "warnings": list(c.warnings),
        "version": c.version,
        "remote_name": c.remote_name,
        "supersedes": c.supersedes,
    }


def _change_from_data(data: dict[str, Any], base: Path) -> Change:
    d = data["desired"]
    desired = None
    if d is not None:
        desired = DesiredFinetune(
            name=d.get("name", data["name"]),
            provider=data["provider"],
            account=data["account"],
            model=d["model"],
            description=d["description"],
            public=d["public"],
            assets=tuple(
                AssetFile(a["name"], base / a["path"], a.get("kind"), _source_from_data(a))
                for a in d["assets"]
            ),
            fields=d["fields"],
            prevent_destroy=d["prevent_destroy"],
            previous_name=d["previous_name"],
            versioning=d.get("versioning"),
            keep=d.get("keep"),
        )
    return Change(
        name=data["name"],
        provider=data["provider"],
        account=data["account"],
        action=Action(data["action"]),
        reason=data["reason"],
        remote_id=data["remote_id"],
        desired=desired,
        fields=tuple(FieldChange(f["field"], f["before"], f["after"]) for f in data["fields"]),
        assets=tuple(
            AssetChange(a["name"], digest_from_data(a["before"]), digest_from_data(a["after"]))
            for a in data["assets"]
        ),
        steps=tuple(
            Step(
                StepKind(s["kind"]),
                None
                if s["asset"] is None
                else AssetFile(
                    s["asset"], base / s["path"], s.get("asset_kind"), _source_from_data(s)
                ),
                digest_from_data(s["digest"]),
            )
            for s in data["steps"]
        ),
        warnings=tuple(data["warnings"]),
        version=data.get("version"),
        remote_name=data.get("remote_name"),
        supersedes=data.get("supersedes"),
    )
