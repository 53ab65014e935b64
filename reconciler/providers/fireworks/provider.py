"""Fireworks AI as a provider of the seam: a finetune is a LoRA model (HF_PEFT_ADDON), made in
the steps of a create (plan/steps.py):

    CREATE    the model, UPLOADING, its id the finetune's name (its first model) or
              NAME-<8 hex> (a later one, or any with versioning: content: items.py), its
              description carrying the digest marker (marker.py) and its display name saying
              that reconciler is still making it (APPLYING)
    UPLOAD    each file: getUploadEndpoint naming every file of the model with its size, then a
              PUT of this one to its signed URL (storage.py)
    VALIDATE  validateUpload until the model is READY
    SERVE     a copy loaded on the deployment (or serverless) the config names, waited for
              until DEPLOYED; then the display name becomes the model id: the create is done

A model whose display name still says APPLYING is one an apply was cut off while making: it
is left out of what the account is said to hold, so the next plan creates it again, and the
create takes it over (ALREADY_EXISTS, our marker, our base, rank and modules) and goes on
from where it was: files already in a READY model are read back and compared, not sent again.
That is how a kill at any step converges in one more apply without a second model.

Changed weights are a new model (its id is its content's version); the superseded one is
deleted once the new one is current, its copies unloaded first (delete_finetune).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from reconciler.adapters.assets import digest as file_digest
from reconciler.adapters.catalogue import Catalogue, CatalogueModel
from reconciler.adapters.preflight import CONFIG
from reconciler.base.errors import ProviderError
from reconciler.base.model import AssetDigest, AssetFile, DesiredFinetune, RemoteFinetune
from reconciler.providers.base import Capabilities, History, Progress, Quota
from reconciler.providers.fireworks import catalogue, checks
from reconciler.providers.fireworks.api import FireworksApi
from reconciler.providers.fireworks.marker import files_digest, with_marker
from reconciler.providers.fireworks.records import FireworksModel, model_ref
from reconciler.providers.fireworks.remote import remote_finetune
from reconciler.providers.fireworks.serving_plan import SERVERLESS, SERVERLESS_PER_BASE, ServingPlan

log = logging.getLogger("reconciler.fireworks")

# The display name of a model whose create is not finished (Fireworks keeps display names
# under 64 characters; a model id may take all 63, so the mark is a fixed text instead).
APPLYING = "reconciler: applying"
CATALOGUE_ACCOUNT = "fireworks"  # the base models: accounts/fireworks/models/...


class FireworksProvider:
    name = "fireworks"
    capabilities = Capabilities(
        can_update=True,  # the description, and a copy loaded again where it went missing
        can_delete=True,  # after unloading every copy
        can_replace_assets=False,  # a model has no revisions: new weights are a new model
        trains_async=False,
        validates_uploads=True,
        serves=True,
        # docs: three serverless adapters per base model per account, the fourth refused
        quotas=(
            Quota(
                field="serve",
                value=SERVERLESS,
                most=SERVERLESS_PER_BASE,
                what="serverless adapters",
                who="Fireworks",
                refusal="ResourceExhausted",
                fix="unload one (or remove it from the config and apply with --prune), or "
                "serve this one on a deployment made with enableAddons",
            ),
        ),
    )

    def __init__(self, api: FireworksApi, limit: checks.FireworksLimits | None = None) -> None:
        self.api = api
        self.endpoint = api.endpoint
        self.limit = limit or checks.limits()
        self.serving = ServingPlan(api)
        # (account, model id) -> every file's size, as declared at create: each upload names
        # them all (getUploadEndpoint replaces the model's map of files)
        self._declared: dict[tuple[str, str], dict[str, int]] = {}
        self._mutex = threading.Lock()

    def close(self) -> None:
        self.api.close()

    # --- reading ---

    def list_finetunes(self, account: str) -> tuple[RemoteFinetune, ...]:
        """Every adapter model of the account but those an apply is still making, with
        where each is served."""
        copies = self.api.serving.list_deployed(account)
        found = (remote_finetune(m, copies) for m in self.api.list_models(account) if done(m))
        return tuple(r for r in found if r is not None)

    def get_finetune(self, account: str, remote_id: str) -> RemoteFinetune | None:
        model = self.api.get_model(account, remote_id)
        if model is None or not done(model):
            return None
        return remote_finetune(model, self.api.serving.list_deployed(account))

    def history(self, account: str, remote_id: str) -> History:
        return History()

    def stated_content(
        self, account: str, remote_id: str, assets: Mapping[str, AssetDigest]
    ) -> tuple[str, str] | None:
        """(the digest marker of the model's description, the marker `assets` would make):
        providers/base.KnowsContent, for `import`; None for a model without a marker."""
        model = self.api.get_model(account, remote_id)
        if model is None or model.digest is None or not assets:
            return None
        return model.digest, files_digest(assets.values())

    def run(self, account: str, model: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """A check's request (apply/checks.request) as a chat completion with the adapter,
        accounts/<account>/models/<lora>: inference goes to its default loaded copy."""
        lora = str(body.get("lora") or "")
        name = lora if lora.startswith("accounts/") else f"accounts/{account}/models/{lora}"
        messages = body.get("messages") or [{"role": "user", "content": body.get("prompt", "")}]
        tokens = body.get("max_tokens")
        return {"response": self.api.chat(name, messages, tokens)}

    def read_catalogue(self, account: str) -> dict[str, CatalogueModel]:
        """The base models (accounts/fireworks/models), each LoRA-capable or not
        (supportsLora): the plan blocks an adapter on a base that takes none."""
        return {
            m.name: CatalogueModel(m.name, lora=bool(m.supports_lora))
            for m in self.api.list_models(CATALOGUE_ACCOUNT)
        }

    # providers/catalogues.OwnsCatalogue: the bundled snapshot, and the config's bases on top
    catalogue_hint = catalogue.HINT

    def snapshot_catalogue(self) -> tuple[Catalogue, str]:
        return catalogue.snapshot(self.limit.lora_models)

    def shown_catalogue(self, read: Catalogue) -> Catalogue:
        return catalogue.shown(read, self.limit.lora_models)

    # --- writing ---

    def create_finetune(
        self, desired: DesiredFinetune, assets: Mapping[str, AssetDigest]
    ) -> RemoteFinetune:
        """The model, UPLOADING and marked APPLYING; where it is to serve is checked first,
        so that a deployment that cannot take it makes nothing."""
        rank, modules = self._peft(desired)  # before any request: a local read
        self.serving.check(desired)
        files = {a.name: file_digest(a) for a in desired.assets}
        digest = files_digest(files.values())
        account = desired.account

        def ours(there: FireworksModel) -> bool:
            return there.display_name == APPLYING and (
                there.base_model,
                there.rank,
                there.target_modules,
                there.digest,
            ) == (desired.model, rank, modules, digest)

        model = self.api.create_model(
            account,
            desired.name,
            base_model=desired.model,
            rank=rank,
            target_modules=modules,
            description=desired.description,
            digest=digest,
            display_name=APPLYING,
            take_over=ours,
        )
        with self._mutex:
            self._declared[(account, model.id)] = {n: d.size for n, d in files.items()}
        return _made(model, desired.fields.get("serve"))

    def upload_asset(
        self,
        account: str,
        finetune_id: str | None,
        asset: AssetFile,
        progress: Progress | None = None,
    ) -> AssetDigest:
        """PUT the file to its signed URL; into a model already READY (a create taken over
        after its validation), nothing is sent: the file there is read back and compared."""
        if finetune_id is None:
            raise ProviderError(f"upload {asset.name}: Fireworks uploads into a model made first")
        model = self.api.get_model(account, finetune_id)
        if model is None:
            raise ProviderError(f"upload {asset.name}: model {finetune_id} is gone")
        if model.state == "READY":
            return self._stored(account, finetune_id, asset)
        declared = self._sizes(account, finetune_id, asset)
        sent = self.api.upload_files(account, finetune_id, [asset], progress, declared)
        return sent[asset.name]

    def validate_finetune(self, desired: DesiredFinetune, remote_id: str) -> str:
        model = self.api.get_model(desired.account, remote_id)
        if model is None:
            raise ProviderError(f"validate model {remote_id}: it is gone")
        if model.state == "READY":
            return "READY (validated before)"
        warnings = self.api.validate_upload(desired.account, remote_id)
        said = f": {len(warnings)} warnings ({'; '.join(warnings)[:300]})" if warnings else ""
        return f"READY{said}"

    def serve_finetune(self, desired: DesiredFinetune, remote_id: str) -> str:
        """Loaded where the config says, and DEPLOYED; then marked done (display name = id)."""
        said = self.serving.ensure(desired, remote_id)
        self.api.update_model(desired.account, remote_id, {"displayName": remote_id})
        return said

    def update_finetune(
        self, desired: DesiredFinetune, remote_id: str, assets: Mapping[str, AssetDigest]
    ) -> RemoteFinetune:
        """The description written again (the digest marker kept), and the copy the config
        asks for loaded again where it went missing (or every copy unloaded, if it asks
        for none)."""
        account = desired.account
        model = self.api.get_model(account, remote_id)
        if model is None:
            raise ProviderError(f"update model {remote_id}: it is gone")
        if model.description != desired.description:
            digest = model.digest or files_digest(assets.values())
            text = with_marker(desired.description, digest)
            model = self.api.update_model(account, remote_id, {"description": text})
        self.serving.ensure(desired, remote_id)
        found = remote_finetune(model, self.api.serving.list_deployed(account))
        assert found is not None  # a model we made is an adapter
        return found

    def delete_finetune(self, account: str, remote_id: str) -> None:
        """Every copy unloaded, then the model deleted (Fireworks refuses to delete a model
        that is loaded); one already gone counts as deleted."""
        self.serving.unload_all(account, remote_id)
        self.api.delete_model(account, remote_id)

    # --- helpers ---

    def _peft(self, desired: DesiredFinetune) -> tuple[int, tuple[str, ...]]:
        """peftDetails' rank and target modules, from adapter_config.json: the local folder's,
        or, for an adapter from a Hub repo or URLs, the file apply fetched (and verified
        against the plan's digest) before the create; checked against Fireworks' limits."""
        config = next((a for a in desired.assets if a.name == CONFIG), None)
        if config is None:
            raise ProviderError(f"create {desired.name}: the adapter has no {CONFIG}")
        if config.source is not None:  # apply hands the create the fetched files
            raise ProviderError(
                f"create {desired.name}: {CONFIG} of {config.source.location} was not fetched "
                "before the create, and its rank and target modules are part of it"
            )
        try:
            with config.path.open("rb") as f:
                raw = f.read(checks.MAX_CONFIG_BYTES + 1)
        except OSError as exc:
            raise ProviderError(
                f"create {desired.name}: {CONFIG} cannot be read ({exc.strerror or exc})"
            ) from None
        try:
            return checks.peft_details(raw, self.limit)
        except ValueError as exc:
            raise ProviderError(f"create {desired.name}: {CONFIG} {exc}") from None

    def _sizes(self, account: str, model_id: str, asset: AssetFile) -> dict[str, int]:
        """Every file of the model by size: as declared at create, or, in an apply that did
        not make it (one cut short made it), the adapter folder's required files."""
        with self._mutex:
            known = self._declared.get((account, model_id))
        if known is not None:
            return dict(known)
        folder: Path = asset.path.parent
        return {
            name: (folder / name).stat().st_size
            for name in self.limit.required_files
            if (folder / name).is_file()
        }

    def _stored(self, account: str, model_id: str, asset: AssetFile) -> AssetDigest:
        local = file_digest(asset)
        there = self.api.stored_digests(account, model_id).get(asset.name)
        if there is None or there.sha256 != local.sha256:
            raise ProviderError(
                f"upload {asset.name}: model {model_id} is READY with other content for it "
                f"than {asset.path}; delete the model, or give the finetune another name"
            )
        return there


def done(model: FireworksModel) -> bool:
    """Whether the model is not one an apply is still making (APPLYING)."""
    return model.display_name != APPLYING


def _made(model: FireworksModel, serve: Any) -> RemoteFinetune:
    """What a create made, with where it is to serve: the SERVE step that follows in the same
    change loads it there. Recorded so, the record holds every compared field: a finetune
    whose first model bears its bare name has no content version recorded, and its version
    is reckoned from them (plan/versions.version_of). (A SERVE cut short leaves the model
    marked APPLYING: the next apply's create takes it over.)"""
    found = remote_finetune(model)
    assert found is not None and model_ref(model.name) is not None
    # ready: nothing trains, the steps after the create finish it
    return replace(
        found, fields={**found.fields, "serve": serve}, public=False, ready=True, failed=False
    )
