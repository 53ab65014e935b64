"""Cohere fine-tuning (v1): the API's shapes, nothing else.

Everything Cloudflare is not: a finetune can be renamed, retrained with new settings or data,
and deleted; it trains asynchronously; and its training data is uploaded first, as a dataset
that Cohere validates before a finetune may use it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any

from ..assets import HashingReader
from ..errors import EndpointError, ProviderError
from ..model import AssetDigest, AssetFile, DesiredFinetune, RemoteFinetune
from ..training import poll_interval
from . import registry
from .base import Capabilities, Event, History, Progress, StepMetric
from .http import Api
from .once import create_once
from .registry import Endpoint

log = logging.getLogger("reconciler.cohere")

DEFAULT_BASE_URL = "https://api.cohere.com"
TOKEN_ENV = "CO_API_KEY"
URL_ENV = "CO_API_URL"
MODELS = "/v1/finetuning/finetuned-models"
PAGE_SIZE = 50
GONE = {"STATUS_DELETED"}
DATASET_NAME_MAX = 49  # Cohere: a dataset name is under 50 characters


def endpoint_from_env(env: Mapping[str, str], label: str | None = None) -> Endpoint:
    return registry.endpoint_from_env(
        env,
        label,
        token_variable=TOKEN_ENV,
        url_variable=URL_ENV,
        default_url=DEFAULT_BASE_URL,
        missing="export a Cohere API key",
    )


def _error_text(body: Any) -> str:
    return str(body.get("message", "")) if isinstance(body, dict) else ""


class CohereProvider:
    name = "cohere"
    capabilities = Capabilities(
        can_update=True,
        can_delete=True,
        can_replace_assets=True,
        trains_async=True,
        can_rename=True,
        assets_before_create=True,
        replace_fields=frozenset({"base_model"}),
    )

    def __init__(
        self,
        endpoint: Endpoint,
        transport: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        dataset_timeout: float = 1800.0,
    ) -> None:
        self.endpoint = endpoint.label
        self._sleep = sleep
        self._dataset_timeout = dataset_timeout
        self._api = Api.for_endpoint(endpoint, TOKEN_ENV, URL_ENV, _error_text, transport)

    def close(self) -> None:
        self._api.close()

    def _pages(self, what: str, path: str, key: str) -> Iterator[dict[str, Any]]:
        """Every item of a paged list, following next_page_token until it is empty."""
        token = ""
        seen: set[str] = set()
        while True:
            params = {"page_size": PAGE_SIZE} | ({"page_token": token} if token else {})
            body = self._api.call(what, "GET", path, params=params)
            if not isinstance(body, dict) or not isinstance(body.get(key), list):
                raise EndpointError(f"{what}: the answer has no {key} list")
            yield from body[key]
            token = str(body.get("next_page_token") or "")
            if not token:
                return
            if token in seen:  # a server that pages in a circle must not hang us
                raise EndpointError(f"{what}: page token {token!r} came back twice")
            seen.add(token)

    def list_finetunes(self, account: str) -> tuple[RemoteFinetune, ...]:
        items = self._pages("list finetuned models", MODELS, "finetuned_models")
        found = (_remote(item) for item in items)
        return tuple(r for r in found if r.status not in GONE)

    def get_finetune(self, account: str, remote_id: str) -> RemoteFinetune | None:
        what = f"read finetuned model {remote_id}"
        try:
            body = self._api.call(what, "GET", f"{MODELS}/{remote_id}", ok=(200,))
        except ProviderError as exc:
            if "HTTP 404" in str(exc):
                return None
            raise
        remote = _remote(_field(body, "finetuned_model", what))
        return None if remote.status in GONE else remote

    def create_finetune(
        self, desired: DesiredFinetune, assets: Mapping[str, AssetDigest]
    ) -> RemoteFinetune:
        what = f"create finetuned model {desired.name}"
        payload = {"name": desired.name, "settings": _settings(desired, assets)}

        def send() -> RemoteFinetune:
            body = self._api.call(what, "POST", MODELS, json=payload, idempotent=False)
            return _remote(_field(body, "finetuned_model", what))

        def find() -> RemoteFinetune | None:
            return next((r for r in self.list_finetunes("") if r.name == desired.name), None)

        return create_once(what, send, find)

    def update_finetune(
        self, desired: DesiredFinetune, remote_id: str, assets: Mapping[str, AssetDigest]
    ) -> RemoteFinetune:
        what = f"update finetuned model {desired.name} ({remote_id})"
        dataset = assets.get("dataset")
        if dataset is not None and dataset.remote_id is None:
            # adopted by `import`: the lock knows the file, not its dataset id; keep the
            # model's own dataset, which is what the recorded file stands for
            current = self.get_finetune(account="", remote_id=remote_id)
            dataset_id = current.fields.get("dataset_id") if current else None
            if dataset_id:
                assets = {**assets, "dataset": replace(dataset, remote_id=str(dataset_id))}
        # the API wants both the name and the full settings; a PATCH of the same body twice
        # leaves the same model, so it may be retried
        payload = {"name": desired.name, "settings": _settings(desired, assets)}
        body = self._api.call(what, "PATCH", f"{MODELS}/{remote_id}", json=payload)
        return _remote(_field(body, "finetuned_model", what))

    def delete_finetune(self, account: str, remote_id: str) -> None:
        what = f"delete finetuned model {remote_id}"
        try:
            self._api.call(what, "DELETE", f"{MODELS}/{remote_id}")
        except ProviderError as exc:
            if "HTTP 404" not in str(exc):
                raise  # a 404: already gone, which is what we wanted

    def history(self, account: str, remote_id: str) -> History:
        events = self._pages(
            f"read events of {remote_id}", f"{MODELS}/{remote_id}/events", "events"
        )
        metrics = self._pages(
            f"read training metrics of {remote_id}",
            f"{MODELS}/{remote_id}/training-step-metrics",
            "step_metrics",
        )
        return History(
            events=tuple(
                Event(str(e.get("status", "")), str(e.get("created_at", ""))) for e in events
            ),
            metrics=tuple(
                sorted(
                    (
                        StepMetric(
                            int(m.get("step_number", 0)),
                            str(m.get("created_at", "")),
                            {k: float(v) for k, v in (m.get("metrics") or {}).items()},
                        )
                        for m in metrics
                    ),
                    key=lambda m: m.step,
                )
            ),
        )

    def upload_asset(
        self,
        account: str,
        finetune_id: str | None,
        asset: AssetFile,
        progress: Progress | None = None,
    ) -> AssetDigest:
        """Upload the training data as a dataset and wait until Cohere has validated it."""
        if asset.kind is None:
            raise ProviderError(f"upload {asset.path}: a Cohere dataset needs a type")
        name = asset.path.stem[:DATASET_NAME_MAX]
        what = f"upload dataset {asset.path.name}"
        with asset.path.open("rb") as f:
            reader = HashingReader(f, asset.name, progress)
            body = self._api.call(
                what,
                "POST",
                "/v1/datasets",
                params={"name": name, "type": asset.kind},
                files={"data": (asset.path.name, reader, "application/octet-stream")},
            )
        dataset_id = _field(body, "id", what)
        self._wait_validated(str(dataset_id), asset)
        sent = reader.result()
        return AssetDigest(sent.name, sent.size, sent.sha256, remote_id=str(dataset_id))

    def _wait_validated(self, dataset_id: str, asset: AssetFile) -> None:
        what = f"validate dataset {asset.path.name} ({dataset_id})"
        deadline = time.monotonic() + self._dataset_timeout
        interval = poll_interval()
        while True:
            body = self._api.call(what, "GET", f"/v1/datasets/{dataset_id}")
            dataset = _field(body, "dataset", what)
            status = dataset.get("validation_status")
            if status == "validated":
                return
            if status == "failed":
                reason = dataset.get("validation_error") or "no reason given"
                raise ProviderError(f"{what}: Cohere refused the dataset: {reason}")
            if time.monotonic() > deadline:
                raise ProviderError(f"{what}: still {status} after {self._dataset_timeout:g}s")
            self._sleep(interval)


def _settings(desired: DesiredFinetune, assets: Mapping[str, AssetDigest]) -> dict[str, Any]:
    dataset = assets.get("dataset")
    if dataset is None or dataset.remote_id is None:
        raise ProviderError(f"{desired.name}: no uploaded dataset to train on")
    settings: dict[str, Any] = {
        "base_model": dict(desired.fields["base_model"]),
        "dataset_id": dataset.remote_id,
    }
    hyperparameters = desired.fields.get("hyperparameters")
    if hyperparameters:
        settings["hyperparameters"] = dict(hyperparameters)
    return settings


def _field(body: Any, key: str, what: str) -> Any:
    if not isinstance(body, dict) or key not in body:
        raise EndpointError(f"{what}: the answer has no {key}")
    return body[key]


def _remote(item: Any) -> RemoteFinetune:
    if not isinstance(item, dict) or not {"id", "name"} <= item.keys():
        raise EndpointError("a finetuned model in the answer lacks id or name")
    settings = item.get("settings") or {}
    base = settings.get("base_model") or {}
    status = item.get("status")
    model = str(base.get("base_type", "")) + (f"/{base['name']}" if base.get("name") else "")
    return RemoteFinetune(
        provider="cohere",
        account="default",
        id=str(item["id"]),
        name=str(item["name"]),
        model=model,
        description=None,
        public=False,
        created_at=item.get("created_at"),
        modified_at=item.get("updated_at"),
        fields={
            "base_model": dict(base),
            "hyperparameters": dict(settings.get("hyperparameters") or {}),
            "dataset_id": settings.get("dataset_id"),
        },
        status=status,
        failed=status == "STATUS_FAILED",
        ready=status == "STATUS_READY",
    )
