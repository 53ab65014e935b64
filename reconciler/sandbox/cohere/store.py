"""Cohere's side of the sandbox state: datasets, fine-tuned models and their training runs.

Same SQLite file as the Cloudflare state (tables prefixed `cohere_`), dataset files under
<data dir>/cohere/datasets/<id>/. Times are stored as real epoch seconds; statuses are not
stored at all but derived from them on read (training.py), so they survive restarts.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import sqlite3
import string
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.sandbox.cohere.datasets import Verdict
from reconciler.sandbox.cohere.training import Run
from reconciler.sandbox.common import db as sqlite
from reconciler.sandbox.common.uploads import sweep

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cohere_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cohere_datasets (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    dataset_type TEXT NOT NULL,
    created_at REAL NOT NULL,
    parts TEXT NOT NULL,            -- JSON: [{part, file_name, path, size}], paths relative
    verdict TEXT NOT NULL           -- JSON: decided at upload, shown once validation "ends"
);
CREATE TABLE IF NOT EXISTS cohere_models (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    creator_id TEXT NOT NULL,
    settings TEXT NOT NULL,         -- JSON, normal form (cohere_settings.normalize)
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS cohere_runs (
    model_id TEXT NOT NULL REFERENCES cohere_models (id) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    started_at REAL NOT NULL,
    total_steps INTEGER NOT NULL,
    fail_step INTEGER,
    superseded_at REAL,
    user_id TEXT NOT NULL,
    PRIMARY KEY (model_id, number)
);
"""

_ID_ALPHABET = string.ascii_lowercase + string.digits


@dataclass(frozen=True)
class Part:
    part: str  # "data" or "eval_data"
    file_name: str
    path: Path
    size: int


@dataclass(frozen=True)
class Dataset:
    seq: int
    id: str
    name: str
    dataset_type: str
    created_at: float
    parts: list[Part]
    verdict: Verdict


@dataclass(frozen=True)
class Model:
    seq: int
    id: str
    name: str
    creator_id: str
    settings: dict[str, Any]
    created_at: float
    updated_at: float
    run: Run  # the current (latest) training run


@dataclass(frozen=True)
class RunPlan:
    total_steps: int
    fail_step: int | None


def dataset_id(name: str) -> str:
    """Cohere's shape: the name as a slug plus a random suffix, e.g. `my-dataset-d701tr`."""
    slug = "".join(c if c in _ID_ALPHABET else "-" for c in name.lower())
    slug = "-".join(filter(None, slug.split("-")))[:40] or "dataset"
    return f"{slug}-{''.join(secrets.choice(_ID_ALPHABET) for _ in range(6))}"


class CohereStore:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.db_path = self.data_dir / sqlite.DB_NAME
        self.datasets_dir = self.data_dir / "cohere" / "datasets"
        self.tmp_dir = self.data_dir / "tmp"
        for directory in (self.datasets_dir, self.tmp_dir):
            directory.mkdir(parents=True, exist_ok=True)
        sweep(self.tmp_dir)  # uploads a kill cut short (uploads.py)
        sqlite.create_schema(self.db_path, _SCHEMA)
        with sqlite.write(self.db_path) as db:
            # Fixed once per data dir: page tokens stay valid, and ids stay put, on restart.
            for key, value in (
                ("page_token_secret", secrets.token_hex(32)),
                ("organization_id", str(uuid.uuid4())),
            ):
                db.execute("INSERT OR IGNORE INTO cohere_meta VALUES (?, ?)", (key, value))
            meta = dict(db.execute("SELECT key, value FROM cohere_meta").fetchall())
        self.page_token_secret = bytes.fromhex(meta["page_token_secret"])
        self.organization_id: str = meta["organization_id"]

    def _read(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return sqlite.connect(self.db_path)

    def _write(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return sqlite.write(self.db_path)

    def spool_path(self) -> Path:
        return self.tmp_dir / f"dataset-{uuid.uuid4().hex}.part"

    # --- datasets -------------------------------------------------------------------------

    def add_dataset(
        self,
        *,
        name: str,
        dataset_type: str,
        spooled: list[Part],
        verdict: Verdict,
        created_at: float,
    ) -> Dataset:
        with self._write() as db:
            ident = dataset_id(name)
            while db.execute("SELECT 1 FROM cohere_datasets WHERE id = ?", (ident,)).fetchone():
                ident = dataset_id(name)
            home = self.datasets_dir / ident
            parts = [Part(p.part, p.file_name, home / p.part, p.size) for p in spooled]
            stored = [
                {"part": p.part, "file_name": p.file_name, "size": p.size,
                 "path": p.path.relative_to(self.data_dir).as_posix()}
                for p in parts
            ]  # fmt: skip
            cursor = db.execute(
                "INSERT INTO cohere_datasets (id, name, dataset_type, created_at, parts, verdict)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (ident, name, dataset_type, created_at, json.dumps(stored), verdict.to_json()),
            )
            # Still inside the transaction: if a move fails, the row is rolled back too.
            home.mkdir(parents=True)
            for source, target in zip(spooled, parts, strict=True):
                os.replace(source.path, target.path)
        return Dataset(
            int(cursor.lastrowid or 0), ident, name, dataset_type, created_at, parts, verdict
        )

    def _dataset(self, row: sqlite3.Row) -> Dataset:
        parts = [
            Part(p["part"], p["file_name"], self.data_dir / p["path"], p["size"])
            for p in json.loads(row["parts"])
        ]
        return Dataset(
            row["seq"],
            row["id"],
            row["name"],
            row["dataset_type"],
            row["created_at"],
            parts,
            Verdict.from_json(row["verdict"]),
        )

    def get_dataset(self, ident: str) -> Dataset | None:
        with self._read() as db:
            row = db.execute("SELECT * FROM cohere_datasets WHERE id = ?", (ident,)).fetchone()
        return None if row is None else self._dataset(row)

    def list_datasets(self) -> list[Dataset]:
        with self._read() as db:
            rows = db.execute("SELECT * FROM cohere_datasets ORDER BY seq").fetchall()
        return [self._dataset(r) for r in rows]

    def delete_dataset(self, ident: str) -> bool:
        with self._write() as db:
            gone = db.execute("DELETE FROM cohere_datasets WHERE id = ?", (ident,)).rowcount
        if gone:
            shutil.rmtree(self.datasets_dir / ident, ignore_errors=True)
        return bool(gone)

    # --- fine-tuned models ----------------------------------------------------------------

    def create_model(
        self,
        *,
        name: str,
        settings: dict[str, Any],
        creator_id: str,
        plan: RunPlan,
        now: float,
    ) -> Model:
        ident = str(uuid.uuid4())
        with self._write() as db:
            db.execute(
                "INSERT INTO cohere_models (id, name, creator_id, settings, created_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                (ident, name, creator_id, json.dumps(settings), now, now),
            )
            _start_run(db, ident, 1, plan, now, creator_id)
            model = _model(db, ident)
        assert model is not None
        return model

    def get_model(self, ident: str) -> Model | None:
        with self._read() as db:
            return _model(db, ident)

    def list_models(self) -> list[Model]:
        with self._read() as db:
            ids = [r[0] for r in db.execute("SELECT id FROM cohere_models ORDER BY seq")]
            models = [_model(db, i) for i in ids]
        return [m for m in models if m is not None]

    def runs(self, model_id: str) -> list[Run]:
        with self._read() as db:
            rows = db.execute(
                "SELECT * FROM cohere_runs WHERE model_id = ? ORDER BY number", (model_id,)
            ).fetchall()
        return [_run(r) for r in rows]

    def update_model(
        self,
        ident: str,
        *,
        name: str,
        settings: dict[str, Any],
        plan: RunPlan | None,
        user_id: str,
        now: float,
    ) -> tuple[Model, bool] | None:
        """Rename, and retrain if the settings changed; (model, retrained), None if unknown."""
        with self._write() as db:
            current = _model(db, ident)
            if current is None:
                return None
            retrain = settings != current.settings
            db.execute(
                "UPDATE cohere_models SET name = ?, settings = ?, updated_at = ? WHERE id = ?",
                (name, json.dumps(settings), now, ident),
            )
            if retrain:
                if plan is None:  # the settings changed under a concurrent PATCH
                    plan = RunPlan(current.run.total_steps, current.run.fail_step)
                db.execute(
                    "UPDATE cohere_runs SET superseded_at = ? WHERE model_id = ? AND number = ?",
                    (now, ident, current.run.number),
                )
                _start_run(db, ident, current.run.number + 1, plan, now, user_id)
            model = _model(db, ident)
        assert model is not None
        return model, retrain

    def delete_model(self, ident: str) -> bool:
        with self._write() as db:
            return bool(db.execute("DELETE FROM cohere_models WHERE id = ?", (ident,)).rowcount)


def _start_run(
    db: sqlite3.Connection, model_id: str, number: int, plan: RunPlan, now: float, user_id: str
) -> None:
    db.execute(
        "INSERT INTO cohere_runs (model_id, number, started_at, total_steps, fail_step,"
        " superseded_at, user_id) VALUES (?, ?, ?, ?, ?, NULL, ?)",
        (model_id, number, now, plan.total_steps, plan.fail_step, user_id),
    )


def _run(row: sqlite3.Row) -> Run:
    return Run(
        model_id=row["model_id"],
        number=row["number"],
        started_at=row["started_at"],
        total_steps=row["total_steps"],
        fail_step=row["fail_step"],
        superseded_at=row["superseded_at"],
        user_id=row["user_id"],
    )


def _model(db: sqlite3.Connection, ident: str) -> Model | None:
    row = db.execute("SELECT * FROM cohere_models WHERE id = ?", (ident,)).fetchone()
    if row is None:
        return None
    run = db.execute(
        "SELECT * FROM cohere_runs WHERE model_id = ? ORDER BY number DESC LIMIT 1", (ident,)
    ).fetchone()
    return Model(
        seq=row["seq"],
        id=row["id"],
        name=row["name"],
        creator_id=row["creator_id"],
        settings=json.loads(row["settings"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        run=_run(run),
    )
