"""The lock's text stays exactly json.dumps(indent=2, sort_keys=True) of its data, however it
is produced (the writer re-dumps only the entries that changed)."""

from __future__ import annotations

import json
from dataclasses import replace

from reconciler.base.model import EMPTY_RECORD, AssetDigest, LockedFinetune, Pending, Recorded
from reconciler.state import lockfile


def reference(record: Recorded) -> str:
    data = {
        "format_version": lockfile.FORMAT_VERSION,
        "endpoints": dict(record.endpoints),
        "finetunes": {n: lockfile._entry_to_json(f) for n, f in record.finetunes.items()},
    }
    if record.pending:
        data["pending"] = {
            n: {"op": p.op, "provider": p.provider, "account": p.account}
            | ({"asset": p.asset} if p.asset else {})
            | ({"since": p.since} if p.since else {})
            | ({"sha256": p.sha256} if p.sha256 else {})
            | (
                {
                    "assets": {
                        a.name: {"size": a.size, "sha256": a.sha256}
                        | ({"id": a.remote_id} if a.remote_id else {})
                        for a in p.assets.values()
                    }
                }
                if p.assets
                else {}
            )
            for n, p in record.pending.items()
        }
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def entry(name: str, description: str = "d") -> LockedFinetune:
    return LockedFinetune(
        name=name,
        provider="cloudflare",
        account="0" * 32,
        id=f"id-{name}",
        model="@cf/m/x-lora",
        assets={"a.json": AssetDigest("a.json", 10, "sha256:" + "0" * 64)},
        fields={"model": "m", "description": description, "public": False},
    )


def test_to_json_is_the_indented_dump_with_or_without_the_cache() -> None:
    cache: dict[str, tuple[LockedFinetune, str]] = {}
    odd = 'é"\\\n{}\u2603 \x00finetunes\x00'
    finetunes = {n: entry(n, odd) for n in ("b", "a", odd, "ft-1")}
    records = [
        EMPTY_RECORD,
        replace(EMPTY_RECORD, endpoints={"cloudflare": odd}, finetunes=finetunes),
        replace(
            EMPTY_RECORD,
            endpoints={"cloudflare": "x"},
            finetunes={"a": entry("a", "changed")},
            pending={
                "a": Pending(
                    "upload", "cloudflare", "0" * 32, "a.json", sha256="sha256:" + "2" * 64
                )
            },
        ),
        replace(
            EMPTY_RECORD,
            pending={
                "c": Pending(
                    "create",
                    "cohere",
                    "default",
                    since="2026-12-01T10:00:00.000Z",
                    assets={"dataset": AssetDigest("dataset", 9, "sha256:" + "1" * 64, "ds-1")},
                )
            },
        ),
        replace(EMPTY_RECORD, endpoints={"cloudflare": "x"}, finetunes=finetunes),
    ]
    for record in records:
        assert lockfile.to_json(record, cache) == reference(record)
        assert lockfile.to_json(record) == reference(record)
