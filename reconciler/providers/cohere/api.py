"""Cohere fine-tuning (v1): the API's shapes, nothing else.

Everything Cloudflare is not: a finetune can be renamed, retrained with new settings or data,
and deleted; it trains asynchronously; and its training data is uploaded first, as a dataset
that Cohere validates before a finetune may use it.

The upload returns as soon as Cohere has the dataset and its id, so that apply journals the id
at once; the create or update that names the dataset waits for its validation first. An apply
cut short anywhere after the upload therefore leaves the id behind, and the next one reuses the
dataset instead of uploading it again.

Cohere retired fine-tuning on 2025-09-15 (see RETIRED); this provider runs against the sandbox,
the model of a provider that trains, updates and deletes.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from reconciler.adapters.assets import HashingReader
from reconciler.apply.training import poll_interval
from reconciler.base.errors import EndpointError, ProviderError
from reconciler.base.model import AssetDigest, AssetFile, DesiredFinetune, RemoteFinetune
from reconciler.base.untrusted import quoted
from reconciler.plan import adoption
from reconciler.providers import checked
from reconciler.providers import endpoint as endpoints
from reconciler.providers.base import Capabilities, Event, History, Progress, StepMetric
from reconciler.providers.cohere.env import TOKEN_ENV, URL_ENV
from reconciler.providers.endpoint import Endpoint
from reconciler.providers.http import Api
from reconciler.providers.once import create_once

log = logging.getLogger("reconciler.cohere")

DEFAULT_BASE_URL = "https://api.cohere.com"
MODELS = "/v1/finetuning/finetuned-models"
PAGE_SIZE = 50
MAX_PAGES = 400  # 20,000 models, events or step metrics: past that, the pages do not end
MAX_TOKEN = 4096  # characters of a page token (Cohere's are tens)
GONE = {"STATUS_DELETED"}
DATASET_NAME_MAX = 49  # Cohere: a dataset name is under 50 characters
MAX_OFFSET = 10_000  # a look for one dataset reads at most this many (recent ones: `after`)
# A dataset is being validated while queued or processing; validated, it may be trained on;
# any other validation_status (failed, unknown, skipped, cancelled, or one not known yet) is
# an end without validation.
VALIDATING = {"queued", "processing"}
# Training that will not finish by itself: what apply --wait says instead of waiting on
STOPPED = {
    "STATUS_PAUSED": "training is paused; it will not finish until it is resumed",
    "STATUS_TEMPORARILY_OFFLINE": "the model is temporarily offline at Cohere; its training "
    "is not going on",
    "STATUS_DELETED": "the model was deleted while it trained",
}
RETIRED = (
    'Cohere retired fine-tuning on 2025-09-15 ("All fine-tuning options via dashboard and API '
    '... are being retired"); {url} is not the sandbox, so its fine-tuning calls are expected '
    "to fail (try --sandbox)"
)


def endpoint_from_env(env: Mapping[str, str], label: str | None = None) -> Endpoint:
    return endpoints.endpoint_from_env(
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
        self.base_url = endpoint.base_url
        self._told = False  # whether notices() were logged
        self._sleep = sleep
        self._dataset_timeout = dataset_timeout
        self._api = Api.for_endpoint(endpoint, TOKEN_ENV, URL_ENV, _error_text, transport)

    def close(self) -> None:
        self._api.close()

    def _pages(self, what: str, path: str, key: str) -> Iterator[dict[str, Any]]:
        """Every item of a paged list, following next_page_token until it is empty; a token
        seen before or more than MAX_PAGES pages end it with an error (a server that pages
        in a circle or without end)."""
        token = ""
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            params = {"page_size": PAGE_SIZE} | ({"page_token": token} if token else {})
            body = self._api.call(what, "GET", path, params=params)
            if not isinstance(body, dict) or not isinstance(body.get(key), list):
                raise EndpointError(f"{what}: the answer has no {key} list")
            yield from body[key]
            token = str(body.get("next_page_token") or "")
            if not token:
                return
            if len(token) > MAX_TOKEN:  # each is kept, to see it come back
                raise EndpointError(f"{what}: a page token of {len(token):,} characters")
            if token in seen:  # a server that pages in a circle must not hang us
                raise EndpointError(f"{what}: page token {quoted(token[:80])} came back twice")
            seen.add(token)
        raise EndpointError(f"{what}: read {MAX_PAGES} pages and the pages go on; stopped")

    def list_finetunes(self, account: str) -> tuple[RemoteFinetune, ...]:
        if not self._told:
            self._told = True  # once a run: the first read of a plan, an apply or a drift
            for notice in self.notices():
                log.warning("%s", notice)
        what = "list finetuned models"
        found = (_remote(item, what) for item in self._pages(what, MODELS, "finetuned_models"))
        return tuple(r for r in checked.distinct(found, what) if r.status not in GONE)

    def get_finetune(self, account: str, remote_id: str) -> RemoteFinetune | None:
        what = f"read finetuned model {remote_id}"
        try:
            body = self._api.call(what, "GET", f"{MODELS}/{checked.segment(remote_id)}", ok=(200,))
        except ProviderError as exc:
            if "HTTP 404" in str(exc):
                return None
            raise
        remote = _remote(_field(body, "finetuned_model", what), what)
        return None if remote.status in GONE else remote

    def create_finetune(
        self, desired: DesiredFinetune, assets: Mapping[str, AssetDigest]
    ) -> RemoteFinetune:
        what = f"create finetuned model {desired.name}"
        settings = _settings(desired, assets)
        payload = {"name": desired.name, "settings": settings}

        def send() -> RemoteFinetune:
            body = self._api.call(what, "POST", MODELS, json=payload, idempotent=False)
            return _remote(_field(body, "finetuned_model", what), what)

        def find() -> RemoteFinetune | None:
            return next((r for r in self.list_finetunes("") if r.name == desired.name), None)

        self._wait_validated(settings["dataset_id"], what)
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
        settings = _settings(desired, assets)
        payload = {"name": desired.name, "settings": settings}
        self._wait_validated(settings["dataset_id"], what)
        body = self._api.call(what, "PATCH", f"{MODELS}/{checked.segment(remote_id)}", json=payload)
        return _remote(_field(body, "finetuned_model", what), what)

    def delete_finetune(self, account: str, remote_id: str) -> None:
        what = f"delete finetuned model {remote_id}"
        try:
            self._api.call(what, "DELETE", f"{MODELS}/{checked.segment(remote_id)}")
        except ProviderError as exc:
            if "HTTP 404" not in str(exc):
                raise  # a 404: already gone, which is what we wanted

    def history(self, account: str, remote_id: str) -> History:
        events = self._pages(
            f"read events of {remote_id}", f"{MODELS}/{checked.segment(remote_id)}/events", "events"
        )
        metrics = self._pages(
            f"read training metrics of {remote_id}",
            f"{MODELS}/{checked.segment(remote_id)}/training-step-metrics",
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
        """Upload the training data as a dataset; returns once Cohere has it and its id (the
        create or update that uses it waits for its validation).

        Each upload makes a new dataset, so it is not sent twice blindly: after a lost answer
        the dataset is looked for first (create_once), as a lost create is."""
        if asset.kind is None:
            raise ProviderError(f"upload {asset.path}: a Cohere dataset needs a type")
        name = _dataset_name(asset)
        what = f"upload dataset {asset.path.name}"
        since = adoption.now()
        with asset.path.open("rb") as f:
            reader = HashingReader(f, asset.name, progress)
            whole = os.fstat(f.fileno()).st_size

            def send() -> AssetDigest:
                body = self._api.call(
                    what,
                    "POST",
                    "/v1/datasets",
                    params={"name": name, "type": asset.kind},
                    files={"data": (asset.path.name, reader, "application/octet-stream")},
                    idempotent=False,
                )
                dataset_id = checked.remote_id(_field(body, "id", what), what, "dataset id")
                sent = reader.result()
                return AssetDigest(sent.name, sent.size, sent.sha256, remote_id=dataset_id)

            def find() -> AssetDigest | None:
                sent = reader.result()
                if sent.size != whole:
                    return None  # cut off mid-way: no dataset was made of it
                return self.find_upload(account, asset, sent, since)

            return create_once(what, send, find)

    def find_upload(
        self, account: str, asset: AssetFile, digest: AssetDigest, since: str | None
    ) -> AssetDigest | None:
        """The dataset an upload cut short made, if Cohere has it: of this name, type and size,
        created since the upload was journaled, and not refused. Cohere takes no idempotency
        key, so an upload whose answer (or journal write) was lost is found this way instead
        of being sent again."""
        began = adoption.instant(since)
        if began is None or asset.kind is None:
            return None
        after = (began - adoption.CLOCK_SKEW).isoformat(timespec="milliseconds")
        params = {"datasetType": asset.kind, "after": after.replace("+00:00", "Z")}
        name = _dataset_name(asset)
        found = [
            d
            for d in self._offset_pages("look for an uploaded dataset", "/v1/datasets", params)
            if isinstance(d, dict)
            and d.get("name") == name
            and isinstance(d.get("id"), str)
            and d.get("validation_status") in VALIDATING | {"validated"}
            and _size_fits(d, digest.size)
        ]
        if not found:
            return None
        first = min(found, key=lambda d: str(d.get("created_at", "")))
        log.info("dataset %s was uploaded by an apply cut short: reusing it", first["id"])
        return AssetDigest(digest.name, digest.size, digest.sha256, remote_id=first["id"])

    def _offset_pages(
        self, what: str, path: str, params: Mapping[str, str]
    ) -> Iterator[dict[str, Any]]:
        """Every item of a list paged by limit and offset (the datasets list), until a short
        page."""
        offset = 0
        while True:
            query = {**params, "limit": PAGE_SIZE, "offset": offset}
            body = self._api.call(what, "GET", path, params=query)
            items = body.get("datasets") if isinstance(body, dict) else None
            if not isinstance(items, list):
                raise EndpointError(f"{what}: the answer has no datasets list")
            yield from items
            if len(items) < PAGE_SIZE or offset >= MAX_OFFSET:
                return
            offset += len(items)

    def _wait_validated(self, dataset_id: str, why: str) -> None:
        """Return once Cohere has validated the dataset; ProviderError if its validation ended
        any other way, or did not end in time."""
        what = f"{why}: validate dataset {dataset_id}"
        deadline = time.monotonic() + self._dataset_timeout
        interval = poll_interval()
        while True:
            body = self._api.call(what, "GET", f"/v1/datasets/{checked.segment(dataset_id)}")
            dataset = _field(body, "dataset", what)
            if not isinstance(dataset, dict):
                raise EndpointError(f"{what}: the answer's dataset is not an object")
            status = dataset.get("validation_status")
            if not isinstance(status, str):
                raise EndpointError(f"{what}: the answer's dataset has no validation_status")
            if status == "validated":
                return
            if status not in VALIDATING:
                reason = dataset.get("validation_error") or "no reason given"
                if status == "failed":
                    raise ProviderError(f"{what}: Cohere refused the dataset: {reason}")
                raise ProviderError(
                    f"{what}: its validation ended as {status!r}, not validated ({reason}); "
                    "it cannot be trained on. Apply again to upload it again"
                )
            if time.monotonic() > deadline:
                raise ProviderError(f"{what}: still {status} after {self._dataset_timeout:g}s")
            self._sleep(interval)

    def stopped(self, remote: RemoteFinetune) -> str | None:
        """Why this finetune's training will not finish by itself (paused, offline, deleted),
        for apply --wait; None while it may."""
        return STOPPED.get(remote.status or "")

    def notices(self) -> tuple[str, ...]:
        """What a run against this endpoint should be told: that Cohere's fine-tuning is
        retired, unless it talks to the sandbox (--sandbox, or a loopback address). Logged
        as a warning at the first read (the CLI shows warnings on stderr, one line each); the
        library prints nothing itself."""
        if self.endpoint == "sandbox" or _loopback(self.base_url):
            return ()
        return (RETIRED.format(url=self.base_url),)


def _dataset_name(asset: AssetFile) -> str:
    return asset.path.stem[:DATASET_NAME_MAX]


def _size_fits(dataset: dict[str, Any], size: int) -> bool:
    """Whether the dataset's training part has `size` bytes, where Cohere says its size."""
    sizes = [
        p.get("size_bytes")
        for p in dataset.get("dataset_parts") or []
        if isinstance(p, dict) and isinstance(p.get("size_bytes"), int)
    ]
    return not sizes or size in sizes


def _loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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


def _remote(item: Any, what: str) -> RemoteFinetune:
    """One finetuned model of an answer, its id, name and dataset id checked
    (providers/checked.py) before they can reach a lock, a path or a plan."""
    if not isinstance(item, dict) or not {"id", "name"} <= item.keys():
        raise EndpointError(f"{what}: a finetuned model in the answer lacks id or name")
    settings = _object(item.get("settings"), what, "settings")
    base = _object(settings.get("base_model"), what, "base_model")
    dataset_id = settings.get("dataset_id")
    if dataset_id is not None:
        dataset_id = checked.remote_id(dataset_id, what, "dataset id")
    status = item.get("status")
    if status is not None:
        status = checked.remote_text(status, what, "status")
    hyperparameters = _object(settings.get("hyperparameters"), what, "hyperparameters")
    model = str(base.get("base_type", "")) + (f"/{base['name']}" if base.get("name") else "")
    remote = RemoteFinetune(
        provider="cohere",
        account="default",
        id=checked.remote_id(item["id"], what),
        name=checked.remote_name(item["name"], what),
        model=model,
        description=None,
        public=False,
        created_at=item.get("created_at"),
        modified_at=item.get("updated_at"),
        fields={
            "base_model": dict(base),
            "hyperparameters": dict(hyperparameters),
            "dataset_id": dataset_id,
        },
        status=status,
        failed=status == "STATUS_FAILED",
        ready=status == "STATUS_READY",
    )
    return checked.recordable(remote, what)


def _object(value: Any, what: str, key: str) -> dict[str, Any]:
    """A part of the answer that is an object, or absent (then empty)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise EndpointError(f"{what}: the answer's {key} is not an object")
    return value
