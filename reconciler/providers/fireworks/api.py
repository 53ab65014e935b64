"""Fireworks AI models (bring-your-own LoRA): the control-plane calls, nothing else.

A LoRA adapter at Fireworks is a Model of kind HF_PEFT_ADDON, `accounts/<a>/models/<id>`,
with an id the caller chooses. It is made in four calls (byo-lora-providers.md 1.5): create
(the model is UPLOADING), getUploadEndpoint (one signed URL per file, every file in one map:
the map is replaced on each call), a PUT of each file to its URL (storage.py), then
validateUpload, polled while it answers FAILED_PRECONDITION, after which the model is READY.
A model has no revisions: other files mean another model.

Paths are the SDK's (fireworks-ai 1.2.30, resources/models.py): /v1/accounts/{a}/models...,
under FIREWORKS_BASE_URL, an origin. Errors are gRPC-gateway bodies, {"code", "message"}.
Every answer is checked by records.py before it is used.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from typing import Any

from reconciler.base.errors import EndpointError, ProviderError
from reconciler.base.model import AssetDigest, AssetFile
from reconciler.base.untrusted import visible
from reconciler.plan import adoption
from reconciler.providers.base import Progress
from reconciler.providers.endpoint import Endpoint
from reconciler.providers.fireworks.gateway import (
    Gateway,
    account_path,
    code_name,
    error_text,
    is_error,
    segment,
)
from reconciler.providers.fireworks.marker import with_marker
from reconciler.providers.fireworks.records import (
    ID_RULE,
    PEFT_ADDON,
    FireworksModel,
    parse_model,
)
from reconciler.providers.fireworks.serving import FireworksServing
from reconciler.providers.fireworks.storage import REFRESH_AFTER, SignedStorage, signed_urls
from reconciler.providers.http import MAX_REMOTE_TEXT
from reconciler.providers.once import create_once

log = logging.getLogger("reconciler.fireworks")

VALIDATE_POLL = 5.0  # seconds between validateUpload calls while files are landing
VALIDATE_TIMEOUT = 600.0
MAX_ANSWER = 100_000  # characters of a chat answer kept for a check
MAX_STORED_BYTES = 64 << 30  # a stored file read back for its digest: far above any adapter


class FireworksApi:
    """The calls on one Fireworks endpoint. Raises our errors (base/errors.py), never httpx's."""

    def __init__(
        self,
        endpoint: Endpoint,
        transport: Any = None,
        *,
        storage_transport: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        poll: float = VALIDATE_POLL,
        validate_timeout: float = VALIDATE_TIMEOUT,
        serve_poll: float | None = None,
    ) -> None:
        self.endpoint = endpoint.label
        self.gateway = Gateway(endpoint, transport)
        self._api = self.gateway.api
        self._storage = SignedStorage(transport=storage_transport, sleep=sleep)
        self.serving = FireworksServing(
            self.gateway,
            sleep=sleep,
            clock=clock,
            **({"poll": serve_poll} if serve_poll is not None else {}),
        )
        self._sleep, self._clock = sleep, clock
        self._poll, self._validate_timeout = poll, validate_timeout

    def close(self) -> None:
        self.gateway.close()
        self._storage.close()

    def list_models(self, account: str) -> tuple[FireworksModel, ...]:
        """Every model of the account, all pages (gateway.read_all); one listed twice (the
        list changed while it was read) is an EndpointError."""
        what = f"list models of account {account}"
        found: dict[str, FireworksModel] = {}
        for item in self.gateway.read_all(what, _models(account), "models"):
            model = parse_model(account, item, what)
            if model.id in found:
                raise EndpointError(f"{what}: model {model.id} was listed twice; try again")
            found[model.id] = model
        return tuple(found.values())

    def get_model(self, account: str, model_id: str) -> FireworksModel | None:
        """The model, with its deployedModelRefs; None if there is none of that id."""
        what = f"get model {model_id} of account {account}"
        body = self._api.call(what, "GET", _model(account, model_id), ok=(200, 404))
        if self.gateway.gone(what, body):
            return None
        model = parse_model(account, body, what)
        if model.id != model_id:
            raise EndpointError(f"{what}: the answer is model {model.id}")
        return model

    def create_model(
        self,
        account: str,
        model_id: str,
        *,
        base_model: str,
        rank: int,
        target_modules: Sequence[str],
        description: str | None,
        digest: str,
        display_name: str | None = None,
        take_over: Callable[[FireworksModel], bool] | None = None,
    ) -> FireworksModel:
        """POST a LoRA model (kind HF_PEFT_ADDON); it is UPLOADING until validate_upload.
        The description carries the digest marker (marker.py). Created once: a lost answer
        is settled by reading the id back (providers/once.py). A model of that id already
        there (ALREADY_EXISTS) is returned when `take_over` says it is ours to go on with,
        else the refusal stands."""
        if not ID_RULE.fullmatch(model_id):
            raise ProviderError(f"create model {model_id!r}: not a Fireworks model id")
        text = with_marker(description, digest)
        peft = {"baseModel": base_model, "r": rank, "targetModules": list(target_modules)}
        payload = {
            "modelId": model_id,
            "model": {
                "kind": PEFT_ADDON,
                "displayName": display_name or model_id,
                "description": text,
                "peftDetails": peft,
            },
        }
        what = f"create model {model_id} in account {account}"

        def send() -> FireworksModel:
            body = self._api.call(
                what, "POST", _models(account), json=payload, ok=(200, 409), idempotent=False
            )
            if is_error(body):
                there = self.get_model(account, model_id)
                if there is None or take_over is None or not take_over(there):
                    raise ProviderError(f"{what}: {self.gateway.clean(error_text(body))}")
                return there
            return parse_model(account, body, what)

        def not_ours(found: FireworksModel, since: str) -> list[str]:
            early = adoption.created_too_early(found.created_at, since)
            sent = (base_model, rank, tuple(target_modules), digest)
            has = (found.base_model, found.rank, found.target_modules, found.digest)
            return ([early] if early else []) + (
                ["its base model, rank, modules or digest differ"] if sent != has else []
            )

        return create_once(what, send, lambda: self.get_model(account, model_id), not_ours)

    def update_model(
        self, account: str, model_id: str, fields: Mapping[str, str]
    ) -> FireworksModel:
        """PATCH top-level fields of the model (displayName, description): the SDK sends them
        as they are, with no update mask."""
        what = f"update model {model_id} of account {account}"
        body = self._api.call(what, "PATCH", _model(account, model_id), json=dict(fields))
        model = parse_model(account, body, what)
        if model.id != model_id:
            raise EndpointError(f"{what}: the answer is model {model.id}")
        return model

    def delete_model(self, account: str, model_id: str) -> bool:
        """Delete it; False if it was already gone. Fireworks refuses (FAILED_PRECONDITION)
        while a copy of it is deployed: those are unloaded first."""
        what = f"delete model {model_id} of account {account}"
        body = self._api.call(what, "DELETE", _model(account, model_id), ok=(200, 404))
        return not self.gateway.gone(what, body)

    def upload_endpoint(
        self, account: str, model_id: str, sizes: Mapping[str, int]
    ) -> dict[str, str]:
        """POST :getUploadEndpoint with every file's size (as strings, int64 in proto-JSON):
        a signed PUT URL per file. The call replaces the model's map of files, so it names
        them all at once."""
        what = f"get upload URLs for model {model_id}"
        body = self._api.call(
            what,
            "POST",
            _model(account, model_id) + ":getUploadEndpoint",
            json={"filenameToSize": {name: str(size) for name, size in sizes.items()}},
        )
        return signed_urls(what, body, sizes)

    def download_endpoint(self, account: str, model_id: str) -> dict[str, str]:
        """GET :getDownloadEndpoint: a signed GET URL per file of the model."""
        what = f"get download URLs for model {model_id}"
        body = self._api.call(what, "GET", _model(account, model_id) + ":getDownloadEndpoint")
        urls = body.get("filenameToSignedUrls") if isinstance(body, dict) else None
        names = list(urls) if isinstance(urls, dict) else []
        if any(not isinstance(n, str) or not 0 < len(n) <= 255 or "/" in n for n in names):
            raise EndpointError(f"{what}: the answer names a file that cannot be one")
        return signed_urls(what, body, names)

    def stored_digests(
        self, account: str, model_id: str, max_bytes: int = MAX_STORED_BYTES
    ) -> dict[str, AssetDigest]:
        """The digest of each file Fireworks holds for the model, by name, read through its
        signed download URLs: what --verify compares with the lock (Fireworks keeps no
        digest of its own)."""
        digests: dict[str, AssetDigest] = {}
        for name, url in sorted(self.download_endpoint(account, model_id).items()):
            what = f"read {name} of model {model_id}"
            digests[name] = self._storage.digest(what, url, name, max_bytes)
        return digests

    def upload_files(
        self,
        account: str,
        model_id: str,
        files: Sequence[AssetFile],
        progress: Progress | None = None,
        declared: Mapping[str, int] | None = None,
    ) -> dict[str, AssetDigest]:
        """Each file PUT to its signed URL, streamed and hashed on the way: the digest of the
        bytes sent, by name. `progress(sent, total)` counts over all the files. `declared`:
        the sizes of the model's other files, named with these in getUploadEndpoint (the call
        replaces the model's map of files: one sent alone would drop the others)."""
        with ExitStack() as stack:
            opened = {f.name: stack.enter_context(f.path.open("rb")) for f in files}
            sizes = {name: os.fstat(h.fileno()).st_size for name, h in opened.items()}
            everything = {**(declared or {}), **sizes}
            signed_at = self._clock()  # before the call: the URLs are at least this old
            urls = self.upload_endpoint(account, model_id, everything)
            total, done = sum(sizes.values()), 0
            digests: dict[str, AssetDigest] = {}
            for name, handle in opened.items():
                if self._clock() - signed_at > REFRESH_AFTER:  # as the SDK: ask again
                    signed_at = self._clock()
                    urls = self.upload_endpoint(account, model_id, everything)
                step = _offset(progress, done, total)
                what = f"upload {name} of model {model_id}"
                digests[name] = self._storage.put(what, urls[name], handle, sizes[name], name, step)
                done += sizes[name]
        return digests

    def validate_upload(self, account: str, model_id: str) -> tuple[str, ...]:
        """GET :validateUpload until it answers 200 (the model is READY), waiting while it
        answers FAILED_PRECONDITION (files still landing), at most validate_timeout seconds.
        Returns its warnings, each one visible line."""
        what = f"validate the upload of model {model_id}"
        path = _model(account, model_id) + ":validateUpload"
        deadline = self._clock() + self._validate_timeout
        while True:
            body = self._api.call(what, "GET", path, ok=(200, 400))
            if not is_error(body):
                return _warnings(body, what)
            if code_name(body) != "FAILED_PRECONDITION":
                raise ProviderError(f"{what}: HTTP 400: {self.gateway.clean(error_text(body))}")
            if self._clock() >= deadline:
                raise ProviderError(
                    f"{what}: still not ready after {self._validate_timeout:.0f}s "
                    f"({self.gateway.clean(error_text(body))})"
                )
            self._sleep(self._poll)

    def chat(
        self, model: str, messages: Sequence[Mapping[str, Any]], max_tokens: int | None
    ) -> str:
        """POST /inference/v1/chat/completions (docs.fireworks.ai: the inference base is
        <origin>/inference/v1) with `model` accounts/<a>/models/<id>: the answer's text, one
        bounded string (shown escaped by render/)."""
        what = f"ask {model}"
        body: dict[str, Any] = {"model": model, "messages": list(messages)}
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        answer = self._api.call(what, "POST", "/inference/v1/chat/completions", json=body)
        choices = answer.get("choices") if isinstance(answer, dict) else None
        first = choices[0] if isinstance(choices, list) and choices else None
        message = first.get("message") if isinstance(first, dict) else None
        text = message.get("content") if isinstance(message, dict) else None
        if not isinstance(text, str):
            raise EndpointError(f"{what}: the answer has no choices[0].message.content")
        return text[:MAX_ANSWER]


def _models(account: str) -> str:
    return f"{account_path(account)}/models"


def _model(account: str, model_id: str) -> str:
    return f"{_models(account)}/{segment(model_id, 'model')}"


def _warnings(body: Any, what: str) -> tuple[str, ...]:
    warnings = body.get("warnings") if isinstance(body, dict) else None
    if warnings is None:
        return ()
    if not isinstance(warnings, list) or not all(isinstance(w, str) for w in warnings):
        raise EndpointError(f"{what}: warnings is not a list of texts")
    return tuple(visible(w[:MAX_REMOTE_TEXT]) for w in warnings[:20])


def _offset(progress: Progress | None, done: int, total: int) -> Progress | None:
    """A file's progress as a part of all the files'."""
    if progress is None:
        return None
    report = progress
    return lambda sent, _size: report(done + sent, total)
