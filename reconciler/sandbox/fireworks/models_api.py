"""Models: create, get, list, update, delete, and the upload flow (getUploadEndpoint, PUT to
the signed URLs, validateUpload), then getDownloadEndpoint.

The sandbox emulates LoRA addons (kind HF_PEFT_ADDON) in the caller's accounts and serves
Fireworks' base models read-only under accounts/fireworks. A model is UPLOADING from create
until validateUpload succeeds, READY from then on (byo-lora-providers.md 1.5).
"""

from __future__ import annotations

import re
from typing import Any

from reconciler.sandbox.fireworks import views
from reconciler.sandbox.fireworks.adapter import check_rank, check_targets, check_upload
from reconciler.sandbox.fireworks.errors import (
    FireworksError,
    denied,
    invalid,
    not_found,
    precondition,
    unimplemented,
)
from reconciler.sandbox.fireworks.fields import flag, parse, read_json
from reconciler.sandbox.fireworks.listing import masked, parse_mask, parse_query
from reconciler.sandbox.fireworks.names import CATALOGUE_ACCOUNT, check_id, model_name
from reconciler.sandbox.fireworks.records import OK_STATUS
from reconciler.sandbox.fireworks.schemas import CREATE_MODEL, MODEL, UPLOAD_ENDPOINT
from reconciler.sandbox.fireworks.service import Call, Service

MAX_DISPLAY_NAME = 63  # "Must be fewer than 64 characters long"
MAX_DESCRIPTION = 999  # "Must be fewer than 1000 characters long"
MAX_FILES = 100  # sandbox choice: no published limit on files per model
# Sandbox choice: a file name is one path segment of safe characters (no published rule; real
# adapters are adapter_config.json, adapter_model.safetensors, fireworks.json, README.md...).
FILENAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,254}")
# Fields a READY model can no longer change: its weights were validated against them.
FIXED_WHEN_READY = ("kind", "peftDetails")


class ModelsApi:
    def __init__(self, service: Service) -> None:
        self.s = service

    def _check_fields(self, fields: dict[str, Any]) -> dict[str, Any]:
        """A Model's caller-set fields, checked (and completed) as create and update need."""
        kind = fields.get("kind", "KIND_UNSPECIFIED")
        if kind == "KIND_UNSPECIFIED":  # "If not specified, the default is HF_PEFT_ADDON."
            kind = "HF_PEFT_ADDON"
        if kind != "HF_PEFT_ADDON":
            raise unimplemented(
                f"the sandbox emulates LoRA addons only (kind HF_PEFT_ADDON), not {kind}"
            )
        for key in ("baseModelDetails", "teftDetails"):
            if key in fields:  # "Required if kind is HF_BASE_MODEL. Must not be set otherwise."
                raise invalid(f"model.{key} must not be set for kind HF_PEFT_ADDON")
        if len(fields.get("displayName", "")) > MAX_DISPLAY_NAME:
            raise invalid(f"model.displayName must be fewer than {MAX_DISPLAY_NAME + 1} characters")
        if len(fields.get("description", "")) > MAX_DESCRIPTION:
            raise invalid(f"model.description must be fewer than {MAX_DESCRIPTION + 1} characters")
        if "conversationConfig" in fields and not fields["conversationConfig"].get("style"):
            raise invalid("model.conversationConfig.style is required")
        return {**fields, "kind": kind, "peftDetails": self._peft(fields.get("peftDetails"))}

    def _peft(self, peft: dict[str, Any] | None) -> dict[str, Any]:
        if peft is None:  # "Required if kind is HF_PEFT_ADDON or HF_TEFT_ADDON."
            raise invalid("model.peftDetails is required for kind HF_PEFT_ADDON")
        for key in ("baseModel", "r", "targetModules"):
            if key not in peft:
                raise invalid(f"model.peftDetails.{key} is required")
        check_rank(peft["r"], "model.peftDetails.r")
        check_targets(peft["targetModules"], "model.peftDetails.targetModules")
        base = self.s.catalogue.get(peft["baseModel"])
        if base is None:
            raise invalid(
                f'base model "{peft["baseModel"]}" not found: name one of Fireworks\' base'
                " models, accounts/fireworks/models/<id>"
            )
        if not base.supports_lora:
            raise invalid(f'base model "{base.name}" does not support LoRA addons')
        model_type = base.record.get("baseModelDetails", {}).get("modelType")
        return {**peft, **({"baseModelType": model_type} if model_type else {})}

    # POST /v1/accounts/{account}/models
    def create(self, call: Call) -> dict[str, Any]:
        self.s.own(call.account)
        body = parse(read_json(call.environ), CREATE_MODEL, "CreateModelRequest")
        if "modelId" not in body:
            raise invalid("modelId is required")
        model_id = check_id(body["modelId"], "modelId")
        if body.get("cluster"):
            raise unimplemented("BYOC clusters are not emulated by the sandbox")
        fields = self._check_fields(body.get("model", {}))
        record = self.s.store.create_model(call.account, model_id, fields, call.now)
        return views.model(record)

    # GET /v1/accounts/{account}/models/{model}?readMask=
    def get(self, call: Call) -> dict[str, Any]:
        mask = parse_mask(call.query().get("readMask", ""), views.MODEL_FIELDS)
        if call.account == CATALOGUE_ACCOUNT:
            base = self.s.catalogue.get(model_name(CATALOGUE_ACCOUNT, call.params["model"]))
            if base is None:
                raise not_found(
                    f'model "{model_name(call.account, call.params["model"])}" not found'
                )
            return masked(base.record, mask)
        record = self.s.model(call.account, call.params["model"])
        refs = [
            views.ref(d, call.now)
            for d in self.s.serving.list_deployed(call.account, record.model_id)
        ]
        return masked(views.model(record, refs), mask)

    # GET /v1/accounts/{account}/models?pageSize&pageToken&filter&orderBy&readMask
    def list(self, call: Call) -> dict[str, Any]:
        self.s.readable(call.account)
        query = parse_query(call.query(), "models", views.MODEL_FIELDS)
        if call.account == CATALOGUE_ACCOUNT:
            found = [base.record for base in self.s.catalogue.all()]
        else:
            found = [views.model(m) for m in self.s.store.list_models(call.account)]
        items, token, total = self.s.pages.page(found, query)
        answer: dict[str, Any] = {"models": items, "totalSize": total}
        if token:  # "If this field is omitted, there are no subsequent pages."
            answer["nextPageToken"] = token
        return answer

    # PATCH /v1/accounts/{account}/models/{model}  (Model fields at the top level)
    def update(self, call: Call) -> dict[str, Any]:
        self._writable(call.account)
        current = self.s.model(call.account, call.params["model"])
        changes = parse(read_json(call.environ), MODEL, "Model")
        merged = {**current.fields, **changes}
        if current.ready:
            for key in FIXED_WHEN_READY:
                if key in changes and self._check_fields(merged)[key] != current.fields.get(key):
                    raise precondition(
                        f'model "{current.name}" is READY: its {key} can no longer change;'
                        " upload a new model instead"
                    )
        updated = self.s.store.update_model(current, call.now, fields=self._check_fields(merged))
        return views.model(updated)

    # DELETE /v1/accounts/{account}/models/{model}
    def delete(self, call: Call) -> dict[str, Any]:
        self._writable(call.account)
        self.s.store.delete_model(call.account, call.params["model"])
        return {}

    def _writable(self, account: str) -> None:
        if account == CATALOGUE_ACCOUNT:
            raise denied("Fireworks' own models cannot be changed")
        self.s.own(account)

    # --- the upload flow -------------------------------------------------------------------

    # POST /v1/accounts/{account}/models/{model}:getUploadEndpoint
    def upload_endpoint(self, call: Call) -> dict[str, Any]:
        self._writable(call.account)
        model = self.s.model(call.account, call.params["model"])
        body = parse(read_json(call.environ), UPLOAD_ENDPOINT, "GetModelUploadEndpointRequest")
        if body.get("enableResumableUpload"):
            raise unimplemented("resumable uploads are not emulated: omit enableResumableUpload")
        sizes = self._sizes(body.get("filenameToSize"))
        self.s.store.declare_files(model, sizes)
        origin = self.s.settings.storage_origin or call.origin()
        seconds = self.s.settings.url_seconds
        return {
            "filenameToSignedUrls": {
                name: self.s.signer.url(
                    origin, model.uid, name, call.now, seconds=seconds, size=size
                )
                for name, size in sizes.items()
            }
        }

    def _sizes(self, raw: dict[str, str] | None) -> dict[str, int]:
        if not raw:
            raise invalid("filenameToSize is required: every file of the model with its size")
        if len(raw) > MAX_FILES:
            raise invalid(f"filenameToSize names {len(raw)} files; the sandbox takes {MAX_FILES}")
        sizes = {}
        limit = self.s.settings.max_file_bytes
        for name, text in raw.items():
            if not FILENAME_RE.fullmatch(name):
                raise invalid(f"filenameToSize: invalid file name {name!r}")
            size = int(text)
            if not 0 <= size <= limit:
                raise invalid(f"filenameToSize[{name!r}]: size must be 0 to {limit} bytes")
            sizes[name] = size
        return sizes

    # GET /v1/accounts/{account}/models/{model}:validateUpload?configOnly&skipHfConfigValidation
    def validate_upload(self, call: Call) -> dict[str, Any]:
        self._writable(call.account)
        model = self.s.model(call.account, call.params["model"])
        query = call.query()
        skip_config, config_only = flag(query, "skipHfConfigValidation"), flag(query, "configOnly")
        flag(query, "trustRemoteCode")  # checked for form only: no code is run
        if model.ready:
            return {}  # every upload step is safe to re-run
        files = self.s.store.files(model.uid)
        if not files:
            raise precondition(
                f'model "{model.name}" has no files: call getUploadEndpoint and upload them first'
            )
        pending = [f.filename for f in files if not f.landed]
        if pending:  # "poll until 200" (the docs): not an error of the upload itself
            raise precondition(f"still waiting for {len(pending)} file(s): {', '.join(pending)}")
        paths = {f.filename: self.s.store.object_path(model.uid, f.filename) for f in files}
        try:
            warnings = check_upload(
                paths, model.fields["peftDetails"], skip_config=skip_config, config_only=config_only
            )
        except FireworksError as exc:
            status = {"code": exc.code.name, "message": exc.message}
            self.s.store.update_model(model, call.now, status=status)
            raise
        self.s.store.update_model(model, call.now, status=OK_STATUS, validated=files)
        return {"warnings": warnings} if warnings else {}

    # GET /v1/accounts/{account}/models/{model}:getDownloadEndpoint
    def download_endpoint(self, call: Call) -> dict[str, Any]:
        self._writable(call.account)
        model = self.s.model(call.account, call.params["model"])
        if not model.ready:
            raise precondition(f'model "{model.name}" is not READY: validate its upload first')
        origin = self.s.settings.storage_origin or call.origin()
        seconds = self.s.settings.url_seconds
        return {
            "filenameToSignedUrls": {
                f.filename: self.s.signer.url(
                    origin, model.uid, f.filename, call.now, seconds=seconds, size=None
                )
                for f in self.s.store.files(model.uid)
                if f.landed
            }
        }
