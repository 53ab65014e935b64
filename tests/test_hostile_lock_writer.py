"""The lock writer never writes what the lock reader refuses (M7 of issue 20, the lock's side).

providers/checked.py refuses an id or a name a provider answers that the lockfile would not
take, where it enters. The writer is the last line behind it, for any way a value reaches a
record (a provider client that forgot the check, a fields merge, an asset's id): a record the
lock's schema or its own rules refuse is refused before anything changes, in memory or on
disk, naming the record; the file stays one every later run reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from reconciler.base.errors import LockfileError
from reconciler.base.model import (
    EMPTY_RECORD,
    AssetDigest,
    LockedFinetune,
    LockedVersion,
    Pending,
)
from reconciler.state import lockfile

ACCOUNT = "0123456789abcdef0123456789abcdef"
SHA = "sha256:" + "ab" * 32
V1 = "cd41c3d4"


def asset(**more: Any) -> AssetDigest:
    return AssetDigest("adapter_model.safetensors", 3, SHA, **more)


def entry(name: str = "bot", **more: Any) -> LockedFinetune:
    fields = {"model": "@cf/m", "description": None, "public": False}
    made = LockedFinetune(
        name, "cloudflare", ACCOUNT, "id-1", "@cf/m", {asset().name: asset()}, fields
    )
    return replace(made, **more)


def version(**more: Any) -> LockedVersion:
    made = LockedVersion(
        V1, f"bot-{V1}", "cloudflare", ACCOUNT, "id-2", "@cf/m", {}, state="candidate"
    )
    return replace(made, **more)


Write = Callable[[lockfile.LockWriter], None]

HOSTILE: dict[str, tuple[Write, str]] = {
    "an id with a line break": (
        lambda w: w.put(entry(id="abc\ndef"), "sandbox"),
        "finetunes.bot",
    ),
    "an id that is empty": (lambda w: w.put(entry(id=""), "sandbox"), "finetunes.bot"),
    "an id with an escape": (lambda w: w.put(entry(id="a\x1b]52;c;eA==\x07"), "sandbox"), "id"),
    "a remote name with a line break": (
        lambda w: w.put(entry(remote_name=f"bot-{V1}\n", version=V1), "sandbox"),
        "finetunes.bot",
    ),
    "a name the config would refuse": (
        lambda w: w.put(entry(name="../bot"), "sandbox"),
        "finetunes.../bot",
    ),
    "a version not 8 hex": (
        lambda w: w.put(entry(remote_name="bot-xyz", version="xyz"), "sandbox"),
        "finetunes.bot",
    ),
    "a version named for another": (
        lambda w: w.put(entry(remote_name="bot-00000000", version=V1), "sandbox"),
        "finetunes.bot records the remote name 'bot-00000000'",
    ),
    "a nested field": (
        lambda w: w.put(entry(fields={"public": {"$ne": 1}}), "sandbox"),
        "finetunes.bot",
    ),
    "an account with a NUL": (lambda w: w.put(entry(account="a\x00b"), "sandbox"), "account"),
    "an unknown asset": (
        lambda w: w.put(entry(assets={"run.sh": AssetDigest("run.sh", 1, SHA)}), "sandbox"),
        "'run.sh'",
    ),
    "an asset's id": (
        lambda w: (w.put(entry(), "sandbox"), w.add_asset("bot", asset(remote_id="d\r\n"))),
        "finetunes.bot",
    ),
    "an asset's digest": (
        lambda w: (
            w.put(entry(), "sandbox"),
            w.add_asset("bot", AssetDigest("adapter_model.safetensors", 3, "sha256:xyz")),
        ),
        "finetunes.bot",
    ),
    "a version's id": (
        lambda w: w.add_version("bot", version(id="x\ny"), "sandbox"),
        f"versions.bot.{V1}",
    ),
    "a version's remote name": (
        lambda w: w.add_version("bot", replace(version(), remote_name="other"), "sandbox"),
        f"versions.bot.{V1} records the remote name 'other'",
    ),
    "fields accepted from a refresh": (
        lambda w: (w.put(entry(), "sandbox"), w.accept_fields("bot", None, {"public": [1]})),
        "finetunes.bot",
    ),
    "a journal entry's account": (
        lambda w: w.intend("bot", Pending("create", "cloudflare", "a\nb")),
        "pending.bot",
    ),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_the_writer_refuses_a_record_the_reader_would(tmp_path: Path, name: str) -> None:
    path = tmp_path / "finetunes.lock"
    writer = lockfile.LockWriter(path, EMPTY_RECORD)
    writer.put(entry("kept", id="id-0"), "sandbox")
    write, expected = HOSTILE[name]
    with pytest.raises(LockfileError) as caught:
        write(writer)
    message = str(caught.value)
    assert expected in message, message
    assert "not recorded" in message, message
    assert "\n" not in message and "\x1b" not in message and "\x00" not in message
    on_disk = lockfile.read_lock(path)  # readable: what was refused is not in it
    assert on_disk == writer.current
    assert "kept" in on_disk.finetunes


def test_what_apply_records_is_written(tmp_path: Path) -> None:
    path = tmp_path / "finetunes.lock"
    writer = lockfile.LockWriter(path, EMPTY_RECORD)
    writer.intend("bot", Pending("create", "cloudflare", ACCOUNT, since="2026-12-01T00:00:00Z"))
    writer.add_version("bot", version(), "sandbox")
    writer.add_version_asset("bot", V1, asset(source="https://example.com/a.safetensors"))
    writer.promote("bot", V1, None)
    writer.put(entry("faq", id="id-9"), "sandbox")
    writer.add_asset("faq", asset())
    writer.accept_fields("faq", None, {"public": True})
    assert lockfile.read_lock(path) == writer.current
