"""Fireworks' side of the sandbox state: models and their files, in SQLite and on disk.

Layout under <data dir>/fireworks/:

    state.sqlite3        models, files, deployments, deployed_models, meta (the secrets)
    objects/<uid>/<file> each model's uploaded files, as they landed through signed URLs
    tmp/                 uploads in flight (common/uploads.py sweeps what a kill left)

Each operation opens its own connection (common/db.py) and every check-then-write runs in one
BEGIN IMMEDIATE transaction, so the threaded server never races two requests into a state the
API forbids. Deployments and deployed models live in serving_store.py, on the same file.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reconciler.sandbox.common import db as sqlite
from reconciler.sandbox.common.uploads import Spool, sweep
from reconciler.sandbox.fireworks.errors import exists, not_found, precondition
from reconciler.sandbox.fireworks.records import OK_STATUS, FileRecord, ModelRecord

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS models (
    account TEXT NOT NULL,
    model_id TEXT NOT NULL,
    uid TEXT NOT NULL UNIQUE,
    fields TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    validated_at REAL,
    PRIMARY KEY (account, model_id)
);
CREATE TABLE IF NOT EXISTS files (
    uid TEXT NOT NULL REFERENCES models (uid) ON DELETE CASCADE,
    filename TEXT NOT NULL,
    size INTEGER NOT NULL,
    landed INTEGER NOT NULL DEFAULT 0,
    sha256 TEXT,
    md5 TEXT,
    PRIMARY KEY (uid, filename)
);
CREATE TABLE IF NOT EXISTS deployments (
    account TEXT NOT NULL,
    deployment_id TEXT NOT NULL,
    fields TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    ready_at REAL NOT NULL,
    PRIMARY KEY (account, deployment_id)
);
CREATE TABLE IF NOT EXISTS deployed_models (
    account TEXT NOT NULL,
    deployed_id TEXT NOT NULL,
    model_id TEXT NOT NULL,
    deployment_id TEXT,
    base TEXT NOT NULL,
    fields TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    ready_at REAL NOT NULL,
    PRIMARY KEY (account, deployed_id)
);
"""

DB_NAME = "state.sqlite3"
SECRETS = ("signing_key", "page_token_key")


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class Landing:
    """What became of an upload (land_file): it landed, or why not."""

    LANDED = "landed"
    GONE = "gone"  # the model was deleted, or the file is no longer declared
    SEALED = "sealed"  # the model is READY: its files are fixed
    RESIZED = "resized"  # declared again with another size since the URL was signed


class FireworksStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.db_path = self.root / DB_NAME
        self.objects_dir = self.root / "objects"
        self.tmp_dir = self.root / "tmp"
        for directory in (self.objects_dir, self.tmp_dir):
            directory.mkdir(parents=True, exist_ok=True)
        sweep(self.tmp_dir)
        sqlite.create_schema(self.db_path, _SCHEMA)
        with sqlite.write(self.db_path) as db:
            for key in SECRETS:  # random per data dir, kept: signed URLs and page tokens
                db.execute(  # stay valid across a restart of the sandbox
                    "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",
                    (key, secrets.token_bytes(32)),
                )
        with sqlite.connect(self.db_path) as db:
            rows = dict(db.execute("SELECT key, value FROM meta").fetchall())
        self.signing_key: bytes = rows["signing_key"]
        self.page_token_key: bytes = rows["page_token_key"]

    def spool(self, max_bytes: int) -> Spool:
        return Spool(self.tmp_dir / f"upload-{secrets.token_hex(8)}", max_bytes)

    def object_path(self, uid: str, filename: str) -> Path:
        return self.objects_dir / uid / filename

    # --- models ----------------------------------------------------------------------------

    def create_model(
        self, account: str, model_id: str, fields: Mapping[str, Any], now: float
    ) -> ModelRecord:
        record = ModelRecord(
            account, model_id, secrets.token_hex(16), dict(fields), OK_STATUS, now, now, None
        )
        try:
            with sqlite.write(self.db_path) as db:
                db.execute(
                    "INSERT INTO models (account, model_id, uid, fields, status, created_at,"
                    " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        account,
                        model_id,
                        record.uid,
                        dumps(record.fields),
                        dumps(OK_STATUS),
                        now,
                        now,
                    ),
                )
        except sqlite3.IntegrityError:
            raise exists(f'model "{record.name}" already exists') from None
        return record

    def get_model(self, account: str, model_id: str) -> ModelRecord | None:
        with sqlite.connect(self.db_path) as db:
            row = db.execute(
                "SELECT * FROM models WHERE account = ? AND model_id = ?", (account, model_id)
            ).fetchone()
        return None if row is None else _model(row)

    def list_models(self, account: str) -> list[ModelRecord]:
        with sqlite.connect(self.db_path) as db:
            rows = db.execute("SELECT * FROM models WHERE account = ?", (account,)).fetchall()
        return [_model(r) for r in rows]

    def update_model(
        self,
        current: ModelRecord,
        now: float,
        *,
        fields: Mapping[str, Any] | None = None,
        status: Mapping[str, str] | None = None,
        validated: Sequence[FileRecord] | None = None,
    ) -> ModelRecord:
        """Write new fields and/or status; with `validated` (the files the caller checked),
        make it READY unless those files changed meanwhile. NOT_FOUND if it was deleted
        meanwhile; FAILED_PRECONDITION if it changed state or files under the caller."""
        with sqlite.write(self.db_path) as db:
            row = db.execute("SELECT * FROM models WHERE uid = ?", (current.uid,)).fetchone()
            if row is None:
                raise not_found(f'model "{current.name}" not found')
            latest = _model(row)
            if fields is not None and latest.ready != current.ready:
                raise precondition(f'model "{current.name}" changed state meanwhile; retry')
            if validated is not None and _landed(db, current.uid) != {
                f.filename: f.sha256 for f in validated
            }:
                raise precondition(f'the files of model "{current.name}" changed meanwhile; retry')
            new_fields = latest.fields if fields is None else dict(fields)
            new_status = latest.status if status is None else dict(status)
            validated_at = latest.validated_at
            if validated is not None and validated_at is None:
                validated_at = now
            db.execute(
                "UPDATE models SET fields = ?, status = ?, updated_at = ?, validated_at = ?"
                " WHERE uid = ?",
                (dumps(new_fields), dumps(new_status), now, validated_at, current.uid),
            )
        return ModelRecord(
            latest.account,
            latest.model_id,
            latest.uid,
            new_fields,
            new_status,
            latest.created_at,
            now,
            validated_at,
        )

    def delete_model(self, account: str, model_id: str) -> None:
        """Remove the model and its files; FAILED_PRECONDITION while a copy is deployed."""
        with sqlite.write(self.db_path) as db:
            row = db.execute(
                "SELECT uid FROM models WHERE account = ? AND model_id = ?", (account, model_id)
            ).fetchone()
            if row is None:
                raise not_found(f'model "accounts/{account}/models/{model_id}" not found')
            loaded = db.execute(
                "SELECT deployed_id FROM deployed_models WHERE account = ? AND model_id = ?",
                (account, model_id),
            ).fetchall()
            if loaded:
                names = ", ".join(f"accounts/{account}/deployedModels/{r[0]}" for r in loaded)
                raise precondition(
                    f'model "accounts/{account}/models/{model_id}" is deployed ({names});'
                    " unload it before deleting the model"
                )
            db.execute("DELETE FROM models WHERE uid = ?", (row["uid"],))
        # After the commit: a PUT that lands from now on finds no model (land_file).
        shutil.rmtree(self.objects_dir / row["uid"], ignore_errors=True)

    # --- files -----------------------------------------------------------------------------

    def files(self, uid: str) -> list[FileRecord]:
        with sqlite.connect(self.db_path) as db:
            rows = db.execute(
                "SELECT * FROM files WHERE uid = ? ORDER BY filename", (uid,)
            ).fetchall()
        return [
            FileRecord(r["filename"], r["size"], bool(r["landed"]), r["sha256"], r["md5"])
            for r in rows
        ]

    def declare_files(self, model: ModelRecord, sizes: Mapping[str, int]) -> None:
        """Replace the model's declared files (getUploadEndpoint overwrites the map). A file
        declared again with its size keeps what already landed; any other is forgotten, its
        bytes removed. ALREADY_EXISTS once the model is READY."""
        with sqlite.write(self.db_path) as db:
            row = db.execute(
                "SELECT validated_at FROM models WHERE uid = ?", (model.uid,)
            ).fetchone()
            if row is None:
                raise not_found(f'model "{model.name}" not found')
            if row["validated_at"] is not None:
                raise exists(f'model "{model.name}" has already been uploaded and validated')
            kept = {
                r["filename"]
                for r in db.execute("SELECT filename, size FROM files WHERE uid = ?", (model.uid,))
                if sizes.get(r["filename"]) == r["size"]
            }
            for stale in db.execute(
                "SELECT filename FROM files WHERE uid = ?", (model.uid,)
            ).fetchall():
                if stale["filename"] not in kept:
                    db.execute(
                        "DELETE FROM files WHERE uid = ? AND filename = ?",
                        (model.uid, stale["filename"]),
                    )
                    self.object_path(model.uid, stale["filename"]).unlink(missing_ok=True)
            for filename, size in sizes.items():
                if filename not in kept:
                    db.execute(
                        "INSERT INTO files (uid, filename, size) VALUES (?, ?, ?)",
                        (model.uid, filename, size),
                    )

    def land_file(self, uid: str, filename: str, spool: Spool, md5: str) -> str:
        """Move a completed upload into place, if the model still waits for it (Landing)."""
        with sqlite.write(self.db_path) as db:
            model = db.execute("SELECT validated_at FROM models WHERE uid = ?", (uid,)).fetchone()
            declared = db.execute(
                "SELECT size FROM files WHERE uid = ? AND filename = ?", (uid, filename)
            ).fetchone()
            if model is None or declared is None:
                return Landing.GONE
            if model["validated_at"] is not None:
                return Landing.SEALED
            if declared["size"] != spool.size:
                return Landing.RESIZED
            target = self.object_path(uid, filename)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(spool.path, target)
            db.execute(
                "UPDATE files SET landed = 1, sha256 = ?, md5 = ? WHERE uid = ? AND filename = ?",
                (spool.digest.hexdigest(), md5, uid, filename),
            )
        return Landing.LANDED

    def landed_file(self, uid: str, filename: str) -> FileRecord | None:
        """A file that has landed, for a signed GET."""
        with sqlite.connect(self.db_path) as db:
            r = db.execute(
                "SELECT * FROM files WHERE uid = ? AND filename = ? AND landed = 1", (uid, filename)
            ).fetchone()
        return (
            None if r is None else FileRecord(r["filename"], r["size"], True, r["sha256"], r["md5"])
        )


def _landed(db: sqlite3.Connection, uid: str) -> dict[str, str | None]:
    rows = db.execute("SELECT filename, sha256, landed FROM files WHERE uid = ?", (uid,))
    return {r["filename"]: r["sha256"] if r["landed"] else None for r in rows}


def _model(row: sqlite3.Row) -> ModelRecord:
    return ModelRecord(
        row["account"],
        row["model_id"],
        row["uid"],
        json.loads(row["fields"]),
        json.loads(row["status"]),
        row["created_at"],
        row["updated_at"],
        row["validated_at"],
    )
