"""Short-lived SQLite connections to the sandbox's one database file.

Each operation opens its own connection, so the threaded server never shares one between
threads; WAL mode lets readers run while a writer holds the lock.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

DB_NAME = "sandbox.sqlite3"


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
