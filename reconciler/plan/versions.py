"""Content-addressed versions of a finetune: pure functions, no I/O.

With `versioning: content`, the name a finetune has at the provider is `NAME-<8 hex>`, the hex
the start of a sha256 over everything the provider cannot change once made: the compared
fields (Cloudflare: model, description, public) and each asset's sha256. The canonical form
hashed is the JSON text

    {"assets":{"<asset name>":"sha256:<64 hex>",...},"fields":{<field>:<value>,...}}

with keys sorted at every depth, no whitespace (separators "," and ":"), non-ASCII kept as
UTF-8 and the text encoded as UTF-8; it holds neither the provider nor the account, so the
same bytes make the same remote name in a staging account and in production.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from reconciler.base.model import AssetDigest, LockedFinetune

CONTENT = "content"  # the only versioning scheme so far
# Versioned by content, the first version bearing the finetune's own name: a provider whose
# ids are unique and that deletes (Fireworks without `versioning: content`) makes NAME, and a
# changed adapter as NAME-<8 hex>, create before destroy (planner._declared). Once NAME is
# recorded it is a finetune "made before versioning was turned on" (names_version, version_of).
FIRST_BY_NAME = "first-by-name"
HEX = 8  # 32 bits: a collision needs some 65,000 versions of one finetune


def canonical(fields: Mapping[str, Any], assets: Mapping[str, AssetDigest | str]) -> bytes:
    """The documented canonical form of a version's content (see the module docstring)."""
    document = {
        "assets": {
            name: (a if isinstance(a, str) else a.sha256) for name, a in sorted(assets.items())
        },
        "fields": dict(fields),
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def content_version(fields: Mapping[str, Any], assets: Mapping[str, AssetDigest | str]) -> str:
    """The 8 hex characters that name this content."""
    return hashlib.sha256(canonical(fields, assets)).hexdigest()[:HEX]


def remote_name(name: str, version: str) -> str:
    return f"{name}-{version}"


def version_named(remote: str, name: str) -> str | None:
    """The content version a remote name of `name` names (`bot-cd41c3d4` of `bot`: cd41c3d4);
    None for any other name."""
    version = remote.removeprefix(f"{name}-") if remote.startswith(f"{name}-") else ""
    hexes = len(version) == HEX and all(c in "0123456789abcdef" for c in version)
    return version if hexes and remote == remote_name(name, version) else None


def names_version(remote: str, name: str, version: str) -> bool:
    """Whether a record of `name`'s version `version` may bear the remote name `remote`: its
    own, NAME-VERSION, or NAME itself, which a finetune made before versioning was turned on
    keeps when it is retired (and when an apply makes it current again)."""
    return remote in (remote_name(name, version), name)


def version_of(current: LockedFinetune, declared: Mapping[str, Any]) -> str:
    """The content version of a current record. One made before versioning was turned on has
    none recorded, and gets the one its recorded content has (the declared fields' keys)."""
    if current.version:
        return current.version
    known = dict(current.fields or {})
    return content_version({k: known.get(k) for k in declared}, current.assets)
