"""A fleet of vLLM servers as one provider: the adapter store, and a load on every server.

What reconciler calls a finetune is, here, an adapter name loaded on every server of the fleet
from one immutable folder of the store. vLLM keeps loaded adapters in each server's memory: a
restarted server forgets them, so the fleet is read server by server, and a finetune loaded on
some servers only is a field change (`loaded`) that an update heals, server by server.

- upload: an adapter file goes into the store's blob area (content-addressed, verified,
  atomic), so that an interrupted apply finds it again;
- create: the files become the folder <store>/<name>-<digest>/ and the name is loaded on every
  server; a server that cannot be reached fails only its own load (PartialApply: the others
  are recorded, the apply exits 1 naming it, the next apply heals it);
- update: loaded where it is missing; delete: unloaded everywhere (a name not loaded is done).

Changed weights are never loaded under a loaded name (a server's prefix cache would serve the
old ones): the finetune is versioned by content (items.py), so new weights are a new name, and
the old one is unloaded only after the new one is current.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.adapters.assets import digest as file_digest
from reconciler.base.errors import PartialApply, ProviderError
from reconciler.base.model import AssetDigest, AssetFile, DesiredFinetune, RemoteFinetune
from reconciler.providers.base import Capabilities, History, Progress
from reconciler.providers.vllm.answers import Models
from reconciler.providers.vllm.client import AlreadyLoaded, VllmClient
from reconciler.providers.vllm.fanout import Fanned, fan_out
from reconciler.providers.vllm.fleet import Server
from reconciler.providers.vllm.store import StoreError, StoreFile, place, placed_already

log = logging.getLogger("reconciler.vllm")

BLOBS = "blobs"  # the store's name for one-file folders, the uploads a create assembles
EVERY = "every server"


@dataclass(frozen=True)
class Fleet:
    servers: tuple[Server, ...]
    store: Path  # where reconciler places adapter folders (this machine's view)
    server_store: str  # the same folder as the servers see it


class VllmProvider:
    name = "vllm"
    capabilities = Capabilities(
        can_update=True,  # load where missing
        can_delete=True,  # unload everywhere
        can_replace_assets=False,  # new weights are a new name (versioned by content)
        trains_async=False,
        assets_before_create=True,  # the store has the files before any server loads them
    )

    def __init__(self, fleet: Fleet, endpoint: str, api_key: str | None) -> None:
        self.fleet = fleet
        self.endpoint = endpoint
        self._clients = {s.url: VllmClient(s.url, api_key) for s in fleet.servers}

    def close(self) -> None:
        for client in self._clients.values():
            client.close()

    # --- reading ---

    def _models(self) -> Fanned[str, Models]:
        return fan_out(list(self._clients), lambda url: self._clients[url].models())

    def list_finetunes(self, account: str) -> tuple[RemoteFinetune, ...]:
        """Every adapter name loaded on any server, with where it is loaded from. A server that
        cannot be read is said once, and counts as lacking every adapter."""
        read = self._models()
        for url, error in read.errors().items():
            log.warning("vLLM server %s cannot be read: %s", url, error)
        if not read.values():
            read.raise_failures("list the adapters of the vLLM fleet")
        seen: dict[str, dict[str, tuple[str, str | None]]] = {}
        for url, models in read.values().items():
            for card in models.adapters:
                seen.setdefault(card.id, {})[url] = (card.root, card.parent)
        return tuple(self._remote(account, name, where) for name, where in sorted(seen.items()))

    def _remote(
        self, account: str, name: str, where: Mapping[str, tuple[str, str | None]]
    ) -> RemoteFinetune:
        roots = {root for root, _ in where.values()}
        parents = {parent for _, parent in where.values()}
        parent = next(iter(parents)) if len(parents) == 1 else None
        return RemoteFinetune(
            provider=self.name,
            account=account,
            id=name,
            name=name,
            model=parent or "",
            description=None,
            public=False,
            fields={
                "model": parent if parent is not None else sorted(p or "" for p in parents),
                "loaded": self._loaded(where),
                "root": next(iter(roots)) if len(roots) == 1 else sorted(roots),
            },
            placement={url: url in where for url in self._clients},
        )

    def _loaded(self, where: Mapping[str, object]) -> str:
        missing = [url for url in self._clients if url not in where]
        if not missing:
            return EVERY
        return (
            f"{len(where)} of {len(self._clients)} servers "
            f"({', '.join(missing)} {'lacks' if len(missing) == 1 else 'lack'} it)"
        )

    def get_finetune(self, account: str, remote_id: str) -> RemoteFinetune | None:
        return next((r for r in self.list_finetunes(account) if r.id == remote_id), None)

    def history(self, account: str, remote_id: str) -> History:
        return History()

    def run(self, account: str, model: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """A check's request (apply/checks.request) as a chat completion on every server, the
        adapter's name as the model: {"responses": {server: text}}. A server that fails
        fails the check, named."""
        messages = body.get("messages") or [{"role": "user", "content": body.get("prompt", "")}]
        name = str(body.get("lora") or model)
        tokens = body.get("max_tokens")

        def chat(url: str) -> str:
            return self._clients[url].chat(name, list(messages), max_tokens=tokens).text

        done = fan_out(list(self._clients), chat)
        done.raise_failures(f"ask {name} on the vLLM fleet")
        return {"responses": done.values()}

    # --- writing ---

    def upload_asset(
        self,
        account: str,
        finetune_id: str | None,
        asset: AssetFile,
        progress: Progress | None = None,
    ) -> AssetDigest:
        """Into the store's blob area, verified and atomic: <store>/blobs-<digest>/<name>."""
        digest = file_digest(asset)
        place(self.fleet.store, BLOBS, [StoreFile.of(digest, asset.path)])
        if progress is not None:
            progress(digest.size, digest.size)
        return digest

    def create_finetune(
        self, desired: DesiredFinetune, assets: Mapping[str, AssetDigest]
    ) -> RemoteFinetune:
        self._check_bases(desired.model)
        folder = self._assemble(desired.name, assets)
        return self._load(desired, folder, list(self._clients))

    def update_finetune(
        self, desired: DesiredFinetune, remote_id: str, assets: Mapping[str, AssetDigest]
    ) -> RemoteFinetune:
        """Loaded where it is missing; the servers that have it get no request."""
        folder = self._assemble(desired.name, assets)
        read = self._models()
        lacking = [
            url
            for url in self._clients
            if url not in read.values() or read.values()[url].adapter(desired.name) is None
        ]
        return self._load(desired, folder, lacking)

    def delete_finetune(self, account: str, remote_id: str) -> None:
        done = fan_out(list(self._clients), lambda url: self._clients[url].unload(remote_id))
        done.raise_failures(f"unload {remote_id} from the vLLM fleet")

    # --- helpers ---

    def _assemble(self, name: str, assets: Mapping[str, AssetDigest]) -> str:
        """The adapter's folder in the store, as the servers see it."""
        files = [StoreFile.of(d, self._blob(d)) for _, d in sorted(assets.items())]
        placed = place(self.fleet.store, name, files)
        return placed.server_path(self.fleet.server_store)

    def _blob(self, digest: AssetDigest) -> Path:
        """An uploaded file's blob in the store: placed by its upload, never read again from
        a source, so one that is missing (removed by hand since) is said as such."""
        placed = placed_already(self.fleet.store, BLOBS, [_blob_file(digest)])
        if placed is None:
            raise StoreError(
                f"the store {self.fleet.store} lacks the uploaded {digest.name} "
                f"({digest.sha256}): it was removed since it was uploaded; apply again to "
                "upload it"
            )
        return placed.folder / digest.name

    def _check_bases(self, model: str) -> None:
        read = self._models()
        other = {
            url: models.bases
            for url, models in read.values().items()
            if model not in {card.id for card in models.bases}
        }
        if other:
            serves = "; ".join(
                f"{url} serves {', '.join(c.id for c in bases) or 'no base'}"
                for url, bases in sorted(other.items())
            )
            raise ProviderError(f"base model {model} is not served by every server: {serves}")

    def _load(self, desired: DesiredFinetune, folder: str, urls: Sequence[str]) -> RemoteFinetune:
        def load(url: str) -> None:
            # loaded by an earlier, interrupted apply: the same name is the same folder
            with contextlib.suppress(AlreadyLoaded):
                self._clients[url].load(desired.name, folder)

        done = fan_out(list(urls), load)
        where = {url: (folder, desired.model) for url in self._clients if url not in done.errors()}
        remote = self._remote(desired.account, desired.name, where)
        if done.errors():
            failed = ", ".join(f"{url}: {error}" for url, error in sorted(done.errors().items()))
            raise PartialApply(f"load {desired.name} on {failed}", remote)
        return remote


def _blob_file(digest: AssetDigest) -> StoreFile:
    # names the blob folder only: it is found complete (placed_already), never copied again
    return StoreFile(digest.name, Path(os.devnull), digest.sha256, digest.size)
