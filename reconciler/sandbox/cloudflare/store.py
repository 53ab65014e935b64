"""The sandbox's state: finetunes in SQLite, uploaded assets as files, both under one data dir.

Everything survives a restart with the same data dir. Each operation opens its own short
SQLite connection, so the threaded server never shares a connection between threads; WAL mode
lets readers run while a writer holds the lock.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from reconciler.sandbox.common import db as sqlite

# SandboxLimits lives in common/limits.py (Cohere reads it too); still importable from here.
from reconciler.sandbox.common.limits import SandboxLimits as SandboxLimits
from reconciler.sandbox.common.uploads import sweep

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS finetunes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- creation order, stable even within one millisecond
    id TEXT NOT NULL UNIQUE,
    account_id TEXT,                        -- NULL: Cloudflare's own public catalogue
    name TEXT NOT NULL,
    model TEXT NOT NULL,
    description TEXT,
    public INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    modified_at TEXT NOT NULL,
    UNIQUE (account_id, name)
);
CREATE TABLE IF NOT EXISTS assets (
    finetune_id TEXT NOT NULL REFERENCES finetunes (id),
    file_name TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    path TEXT NOT NULL,                     -- relative to the data dir, so the dir can move
    created_at TEXT NOT NULL,
    PRIMARY KEY (finetune_id, file_name)
);
"""

# Columns a client may sort the public list by (the API's `orderBy`); a whitelist, since the
# value ends up in SQL.
PUBLIC_ORDER_COLUMNS = ("id", "name", "model", "description", "public", "created_at", "modified_at")


@dataclass(frozen=True)
class Finetune:
    id: str
    account_id: str | None
    name: str
    model: str
    description: str | None
    public: bool
    created_at: str
    modified_at: str

    def to_api(self, *, with_public: bool = True) -> dict[str, object]:
        """The shape the API returns (account_id is implied by the URL, never echoed).

        `public` is in the create response and in the public list, but not in the account's
        list: the SDKs' FinetuneListResponse is {id, created_at, model, modified_at, name,
        description?} (api-notes.md), so a client can learn it only from what it created.
        """
        shape: dict[str, object] = {
            "id": self.id,
            "name": self.name,
            "model": self.model,
            "description": self.description,
        }
        if with_public:
            shape["public"] = self.public
        shape["created_at"] = self.created_at
        shape["modified_at"] = self.modified_at
        return shape


@dataclass(frozen=True)
class Asset:
    finetune_id: str
    file_name: str
    size: int
    sha256: str
    path: Path
    created_at: str


class DuplicateName(Exception):
    pass


class FinetuneLimitReached(Exception):
    pass


class AssetExists(Exception):
    pass


def now_iso() -> str:
    """ISO 8601 in UTC with milliseconds and Z, as the API writes them."""
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def _finetune(row: sqlite3.Row) -> Finetune:
    return Finetune(
        id=row["id"],
        account_id=row["account_id"],
        name=row["name"],
        model=row["model"],
        description=row["description"],
        public=bool(row["public"]),
        created_at=row["created_at"],
        modified_at=row["modified_at"],
    )


class SandboxStore:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.db_path = self.data_dir / sqlite.DB_NAME
        self.assets_dir = self.data_dir / "assets"
        # Uploads spool here, on the same filesystem as assets/, so the final move is a rename.
        self.tmp_dir = self.data_dir / "tmp"
        for directory in (self.data_dir, self.assets_dir, self.tmp_dir):
            directory.mkdir(parents=True, exist_ok=True)
        # Uploads a kill cut short (uploads.py): nothing else would ever remove them.
        sweep(self.tmp_dir)
        sqlite.create_schema(self.db_path, _SCHEMA)
        with self._write() as db:
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            _seed_public(db)

    def _connect(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return sqlite.connect(self.db_path)

    def _write(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return sqlite.write(self.db_path)

    def list_finetunes(self, account_id: str) -> list[Finetune]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT * FROM finetunes WHERE account_id = ? ORDER BY seq", (account_id,)
            ).fetchall()
        return [_finetune(r) for r in rows]

    def get_finetune(self, account_id: str, finetune_id: str) -> Finetune | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT * FROM finetunes WHERE account_id = ? AND id = ?",
                (account_id, finetune_id),
            ).fetchone()
        return None if row is None else _finetune(row)

    def find_finetune(self, account_id: str, ref: str) -> Finetune | None:
        """What a run's `lora` names: a finetune of the account, by id or by name, else one of
        Cloudflare's public finetunes (by id or name). Ids are looked up before names."""
        with self._connect() as db:
            for clause, args in (
                ("account_id = ? AND id = ?", (account_id, ref)),
                ("account_id = ? AND name = ?", (account_id, ref)),
                ("account_id IS NULL AND id = ?", (ref,)),
                ("account_id IS NULL AND name = ?", (ref,)),
            ):
                row = db.execute(f"SELECT * FROM finetunes WHERE {clause}", args).fetchone()
                if row is not None:
                    return _finetune(row)
        return None

    def create_finetune(
        self,
        account_id: str,
        *,
        name: str,
        model: str,
        description: str | None,
        public: bool,
        max_per_account: int,
    ) -> Finetune:
        stamp = now_iso()
        finetune = Finetune(
            id=str(uuid.uuid4()),
            account_id=account_id,
            name=name,
            model=model,
            description=description,
            public=public,
            created_at=stamp,
            modified_at=stamp,
        )
        with self._write() as db:
            if db.execute(
                "SELECT 1 FROM finetunes WHERE account_id = ? AND name = ?", (account_id, name)
            ).fetchone():
                raise DuplicateName(name)
            (count,) = db.execute(
                "SELECT count(*) FROM finetunes WHERE account_id = ?", (account_id,)
            ).fetchone()
            if count >= max_per_account:
                raise FinetuneLimitReached(count)
            _insert(db, finetune)
        return finetune

    def spool_path(self) -> Path:
        """A fresh temporary path for an upload in progress."""
        return self.tmp_dir / f"upload-{uuid.uuid4().hex}.part"

    def add_asset(
        self, finetune: Finetune, file_name: str, spooled: Path, size: int, sha256: str
    ) -> Asset:
        """Move a fully received upload into place and record it.

        Assets are write-once: the same bytes again are accepted as a no-op (a client retrying
        an upload whose answer it lost must not fail), different bytes raise AssetExists.
        """
        relative = Path("assets") / str(finetune.account_id) / finetune.id / file_name
        asset = Asset(finetune.id, file_name, size, sha256, self.data_dir / relative, now_iso())
        with self._write() as db:
            row = db.execute(
                "SELECT * FROM assets WHERE finetune_id = ? AND file_name = ?",
                (finetune.id, file_name),
            ).fetchone()
            if row is not None:
                if (row["sha256"], row["size"]) != (sha256, size):
                    raise AssetExists(file_name)
                return self._asset(row)
            db.execute(
                "INSERT INTO assets VALUES (?, ?, ?, ?, ?, ?)",
                (finetune.id, file_name, size, sha256, relative.as_posix(), asset.created_at),
            )
            # Still inside the transaction: if the rename fails, the row is rolled back too.
            asset.path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(spooled, asset.path)
        return asset

    def list_assets(self, finetune_id: str) -> list[Asset]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT * FROM assets WHERE finetune_id = ? ORDER BY file_name", (finetune_id,)
            ).fetchall()
        return [self._asset(r) for r in rows]

    def _asset(self, row: sqlite3.Row) -> Asset:
        return Asset(
            finetune_id=row["finetune_id"],
            file_name=row["file_name"],
            size=row["size"],
            sha256=row["sha256"],
            path=self.data_dir / row["path"],
            created_at=row["created_at"],
        )

    def list_public(
        self, *, limit: int | None, offset: int, order_by: str, descending: bool
    ) -> list[Finetune]:
        if order_by not in PUBLIC_ORDER_COLUMNS:
            raise ValueError(order_by)
        direction = "DESC" if descending else "ASC"
        # order_by is whitelisted above; seq breaks ties so pages never overlap or skip.
        sql = (
            "SELECT * FROM finetunes WHERE account_id IS NULL "
            f"ORDER BY {order_by} {direction}, seq {direction} LIMIT ? OFFSET ?"
        )
        with self._connect() as db:
            rows = db.execute(sql, (-1 if limit is None else limit, offset)).fetchall()
        return [_finetune(r) for r in rows]


def _insert(db: sqlite3.Connection, f: Finetune) -> None:
    db.execute(
        "INSERT INTO finetunes (id, account_id, name, model, description, public, created_at,"
        " modified_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (f.id, f.account_id, f.name, f.model, f.description, int(f.public), f.created_at,
         f.modified_at),
    )  # fmt: skip


# Cloudflare's public adapters: the three the docs name (Workers AI, "Public LoRA adapters"),
# each "compatible with @cf/mistral/mistral-7b-instruct-v0.1 and
# @hf/mistral/mistral-7b-instruct-v0.2". A record has one `model`; sandbox choice: every seed
# names v0.1 (the base the docs' own example runs them on), and a run accepts each of them on
# either base (PUBLIC_ADAPTER_BASES). Fixed ids and dates so every sandbox shows the same list.
PUBLIC_ADAPTER_BASES = frozenset(
    {"@cf/mistral/mistral-7b-instruct-v0.1", "@hf/mistral/mistral-7b-instruct-v0.2"}
)
_PUBLIC_SEED = (
    ("cf-public-magicoder", "@cf/mistral/mistral-7b-instruct-v0.1",
     "Coding tasks in multiple languages", "2024-04-01T17:00:00.000Z"),
    ("cf-public-jigsaw-classification", "@cf/mistral/mistral-7b-instruct-v0.1",
     "Toxic comment classification", "2024-04-02T17:00:00.000Z"),
    ("cf-public-cnn-summarization", "@cf/mistral/mistral-7b-instruct-v0.1",
     "Article summarization", "2024-04-03T17:00:00.000Z"),
)  # fmt: skip

_SEED_NAMESPACE = uuid.UUID("6f1c7a52-93a4-4a7e-9d2b-6c1f0e5d8b3a")


def _seed_public(db: sqlite3.Connection) -> None:
    """Make the public list exactly the seed, also in a data dir an older sandbox seeded
    (which invented two adapters and put these on other bases)."""
    names = [name for name, *_ in _PUBLIC_SEED]
    marks = ", ".join("?" for _ in names)
    db.execute(f"DELETE FROM finetunes WHERE account_id IS NULL AND name NOT IN ({marks})", names)
    for name, model, description, stamp in _PUBLIC_SEED:
        db.execute(
            "INSERT INTO finetunes (id, account_id, name, model, description, public,"
            " created_at, modified_at) VALUES (?, NULL, ?, ?, ?, 1, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET name = excluded.name, model = excluded.model,"
            " description = excluded.description, created_at = excluded.created_at,"
            " modified_at = excluded.modified_at",
            (str(uuid.uuid5(_SEED_NAMESPACE, name)), name, model, description, stamp, stamp),
        )
