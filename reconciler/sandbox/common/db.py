"""Short-lived SQLite connections to the sandbox's one database file.

Each operation opens its own connection, so the threaded server never shares one between
threads; WAL mode lets readers run while a writer holds the lock.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

from reconciler.sandbox.common.files import kind_of

DB_NAME = "sandbox.sqlite3"


def state_problem(data_dir: Path) -> str | None:
    """Why `data_dir` cannot hold the sandbox's state, or None: it is there and no folder, or
    the database's files are there and not regular files (SQLite opens a FIFO and fails on
    it with "disk I/O error"). A folder not there yet is fine: it is made."""
    try:
        mode = os.stat(data_dir).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        return exc.strerror or str(exc)
    if not stat.S_ISDIR(mode):
        return f"not a folder ({kind_of(mode)})"
    for name in (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm"):
        try:
            mode = os.stat(data_dir / name).st_mode
        except OSError:
            continue  # not there (made), or for SQLite to report
        if not stat.S_ISREG(mode):
            return f"{name} is not a regular file ({kind_of(mode)})"
    return None


@contextlib.contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    # isolation_level=None: callers write BEGIN/COMMIT themselves (see write()), so a
    # check-then-insert can hold the write lock from the start.
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA foreign_keys=ON")
        # In WAL mode NORMAL still survives a killed process (only a power cut can lose the
        # last commits) and saves an fsync per write: tests create thousands of records.
        db.execute("PRAGMA synchronous=NORMAL")
        yield db
    finally:
        db.close()


@contextlib.contextmanager
def write(path: Path) -> Iterator[sqlite3.Connection]:
    """A transaction that holds the write lock from its first statement (BEGIN IMMEDIATE)."""
    with connect(path) as db:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


def create_schema(path: Path, schema: str) -> None:
    """Switch the file to WAL and create the tables, in one transaction (one fsync, not ten)."""
    with connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(f"BEGIN IMMEDIATE;\n{schema}\nCOMMIT;")
