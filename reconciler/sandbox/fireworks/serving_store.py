"""Deployments and deployed models (loaded LoRA adapters), in the Fireworks state file.

The limits that must hold whatever two requests do at once (one copy of an adapter per
deployment, 100 adapters per deployment, 3 serverless adapters per base model and account, one
default copy per adapter) are checked in the transaction that writes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from reconciler.sandbox.common import db as sqlite
from reconciler.sandbox.fireworks.errors import exhausted, exists, not_found, precondition
from reconciler.sandbox.fireworks.names import deployment_name
from reconciler.sandbox.fireworks.records import DeployedRecord, DeploymentRecord
from reconciler.sandbox.fireworks.store import FireworksStore, dumps

# "up to 100 LoRA" per dedicated deployment (docs.fireworks.ai/fine-tuning/supervised-fine-tuning)
MAX_ADDONS_PER_DEPLOYMENT = 100
# "3 adapters per base model per account; the 4th returns ResourceExhausted" (serverless LoRA)
MAX_SERVERLESS_PER_BASE = 3


class ServingStore:
    def __init__(self, store: FireworksStore) -> None:
        self.db_path = store.db_path

    # --- deployments -----------------------------------------------------------------------

    def create_deployment(self, record: DeploymentRecord) -> DeploymentRecord:
        try:
            with sqlite.write(self.db_path) as db:
                db.execute(
                    "INSERT INTO deployments (account, deployment_id, fields, created_at,"
                    " updated_at, ready_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        record.account,
                        record.deployment_id,
                        dumps(record.fields),
                        record.created_at,
                        record.updated_at,
                        record.ready_at,
                    ),
                )
        except sqlite3.IntegrityError:
            raise exists(f'deployment "{record.name}" already exists') from None
        return record

    def get_deployment(self, account: str, deployment_id: str) -> DeploymentRecord | None:
        with sqlite.connect(self.db_path) as db:
            row = db.execute(
                "SELECT * FROM deployments WHERE account = ? AND deployment_id = ?",
                (account, deployment_id),
            ).fetchone()
        return None if row is None else _deployment(row)

    def list_deployments(self, account: str) -> list[DeploymentRecord]:
        with sqlite.connect(self.db_path) as db:
            rows = db.execute("SELECT * FROM deployments WHERE account = ?", (account,)).fetchall()
        return [_deployment(r) for r in rows]

    def delete_deployment(self, account: str, deployment_id: str, *, force: bool) -> None:
        """FAILED_PRECONDITION while adapters are loaded on it, unless `force` (ignoreChecks),
        which unloads them with it."""
        name = deployment_name(account, deployment_id)
        with sqlite.write(self.db_path) as db:
            gone = db.execute(
                "DELETE FROM deployments WHERE account = ? AND deployment_id = ?",
                (account, deployment_id),
            ).rowcount
            if not gone:
                raise not_found(f'deployment "{name}" not found')
            loaded = db.execute(
                "SELECT deployed_id FROM deployed_models WHERE account = ? AND deployment_id = ?",
                (account, deployment_id),
            ).fetchall()
            if loaded and not force:
                raise precondition(
                    f'deployment "{name}" has {len(loaded)} LoRA adapter(s) loaded; unload them'
                    " first (or delete with ignoreChecks=true)"
                )
            for row in loaded:
                _unload(db, account, row["deployed_id"])

    # --- deployed models -------------------------------------------------------------------

    def load(self, record: DeployedRecord, *, make_default: bool) -> DeployedRecord:
        """Insert a deployed model, within the limits; the first copy of an adapter is its
        default, and `make_default` moves the default to this one."""
        with sqlite.write(self.db_path) as db:
            _check_still_there(db, record)
            _check_limits(db, record)
            others = db.execute(
                "SELECT deployed_id, fields FROM deployed_models"
                " WHERE account = ? AND model_id = ?",
                (record.account, record.model_id),
            ).fetchall()
            default = make_default or not others
            if default:
                for other in others:
                    _set_field(
                        db,
                        record.account,
                        other["deployed_id"],
                        json.loads(other["fields"]),
                        "default",
                        False,
                    )
            fields = {**record.fields, "default": default}
            db.execute(
                "INSERT INTO deployed_models (account, deployed_id, model_id, deployment_id,"
                " base, fields, created_at, updated_at, ready_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.account,
                    record.deployed_id,
                    record.model_id,
                    record.deployment_id,
                    record.base,
                    dumps(fields),
                    record.created_at,
                    record.updated_at,
                    record.ready_at,
                ),
            )
        return replace(record, fields=fields)

    def get_deployed(self, account: str, deployed_id: str) -> DeployedRecord | None:
        with sqlite.connect(self.db_path) as db:
            row = db.execute(
                "SELECT * FROM deployed_models WHERE account = ? AND deployed_id = ?",
                (account, deployed_id),
            ).fetchone()
        return None if row is None else _deployed(row)

    def list_deployed(self, account: str, model_id: str | None = None) -> list[DeployedRecord]:
        query, args = "SELECT * FROM deployed_models WHERE account = ?", [account]
        if model_id is not None:
            query, args = query + " AND model_id = ?", [account, model_id]
        with sqlite.connect(self.db_path) as db:
            rows = db.execute(query + " ORDER BY created_at, deployed_id", args).fetchall()
        return [_deployed(r) for r in rows]

    def update_deployed(
        self, current: DeployedRecord, changes: Mapping[str, Any], now: float
    ) -> DeployedRecord:
        with sqlite.write(self.db_path) as db:
            row = db.execute(
                "SELECT * FROM deployed_models WHERE account = ? AND deployed_id = ?",
                (current.account, current.deployed_id),
            ).fetchone()
            if row is None:
                raise not_found(f'deployed model "{current.name}" not found')
            latest = _deployed(row)
            fields = {**latest.fields, **changes}
            if changes.get("default") is True:
                for other in db.execute(
                    "SELECT deployed_id, fields FROM deployed_models WHERE account = ?"
                    " AND model_id = ? AND deployed_id != ?",
                    (latest.account, latest.model_id, latest.deployed_id),
                ).fetchall():
                    _set_field(
                        db,
                        latest.account,
                        other["deployed_id"],
                        json.loads(other["fields"]),
                        "default",
                        False,
                    )
            db.execute(
                "UPDATE deployed_models SET fields = ?, updated_at = ? WHERE account = ?"
                " AND deployed_id = ?",
                (dumps(fields), now, latest.account, latest.deployed_id),
            )
        return replace(latest, fields=fields, updated_at=now)

    def unload(self, account: str, deployed_id: str) -> None:
        with sqlite.write(self.db_path) as db:
            if not _unload(db, account, deployed_id):
                raise not_found(
                    f'deployed model "accounts/{account}/deployedModels/{deployed_id}" not found'
                )


def _check_still_there(db: sqlite3.Connection, record: DeployedRecord) -> None:
    """The caller checked the model and the deployment before this transaction; a delete may
    have come in between, and must not leave a loaded copy of nothing behind."""
    model = db.execute(
        "SELECT validated_at FROM models WHERE account = ? AND model_id = ?",
        (record.account, record.model_id),
    ).fetchone()
    if model is None or model["validated_at"] is None:
        raise not_found(f'model "{record.model_name}" not found')
    if (
        record.deployment_id is not None
        and not db.execute(
            "SELECT 1 FROM deployments WHERE account = ? AND deployment_id = ?",
            (record.account, record.deployment_id),
        ).fetchone()
    ):
        raise not_found(f'deployment "{record.deployment_name}" not found')


def _check_limits(db: sqlite3.Connection, record: DeployedRecord) -> None:
    where = "deployment_id IS NULL" if record.serverless else "deployment_id = ?"
    target = [] if record.serverless else [record.deployment_id]
    same = db.execute(
        f"SELECT deployed_id FROM deployed_models WHERE account = ? AND model_id = ? AND {where}",
        [record.account, record.model_id, *target],
    ).fetchone()
    if same is not None:
        where_to = "serverless" if record.serverless else f'on "{record.deployment_name}"'
        raise exists(
            f'model "{record.model_name}" is already loaded {where_to}'
            f" (accounts/{record.account}/deployedModels/{same['deployed_id']})"
        )
    if record.serverless:
        count = db.execute(
            "SELECT COUNT(*) FROM deployed_models WHERE account = ? AND deployment_id IS NULL"
            " AND base = ?",
            (record.account, record.base),
        ).fetchone()[0]
        if count >= MAX_SERVERLESS_PER_BASE:
            raise exhausted(
                f"at most {MAX_SERVERLESS_PER_BASE} serverless LoRA adapters may be loaded per"
                f" base model ({record.base}) per account; unload one first"
            )
        return
    count = db.execute(
        "SELECT COUNT(*) FROM deployed_models WHERE account = ? AND deployment_id = ?",
        (record.account, record.deployment_id),
    ).fetchone()[0]
    if count >= MAX_ADDONS_PER_DEPLOYMENT:
        raise exhausted(
            f'deployment "{record.deployment_name}" already has {MAX_ADDONS_PER_DEPLOYMENT}'
            " LoRA adapters loaded"
        )


def _set_field(
    db: sqlite3.Connection,
    account: str,
    deployed_id: str,
    fields: dict[str, Any],
    key: str,
    value: Any,
) -> None:
    db.execute(
        "UPDATE deployed_models SET fields = ? WHERE account = ? AND deployed_id = ?",
        (dumps({**fields, key: value}), account, deployed_id),
    )


def _unload(db: sqlite3.Connection, account: str, deployed_id: str) -> bool:
    """Remove a deployed model; if it was its adapter's default, the oldest copy left becomes
    the default (sandbox choice: a bare model name keeps reaching a loaded copy)."""
    row = db.execute(
        "SELECT * FROM deployed_models WHERE account = ? AND deployed_id = ?",
        (account, deployed_id),
    ).fetchone()
    if row is None:
        return False
    db.execute(
        "DELETE FROM deployed_models WHERE account = ? AND deployed_id = ?", (account, deployed_id)
    )
    if json.loads(row["fields"]).get("default"):
        heir = db.execute(
            "SELECT deployed_id, fields FROM deployed_models WHERE account = ? AND model_id = ?"
            " ORDER BY created_at, deployed_id LIMIT 1",
            (account, row["model_id"]),
        ).fetchone()
        if heir is not None:
            _set_field(
                db, account, heir["deployed_id"], json.loads(heir["fields"]), "default", True
            )
    return True


def _deployment(row: sqlite3.Row) -> DeploymentRecord:
    return DeploymentRecord(
        row["account"],
        row["deployment_id"],
        json.loads(row["fields"]),
        row["created_at"],
        row["updated_at"],
        row["ready_at"],
    )


def _deployed(row: sqlite3.Row) -> DeployedRecord:
    return DeployedRecord(
        row["account"],
        row["deployed_id"],
        row["model_id"],
        row["deployment_id"],
        row["base"],
        json.loads(row["fields"]),
        row["created_at"],
        row["updated_at"],
        row["ready_at"],
    )
