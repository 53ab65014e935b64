"""Cloudflare Workers AI finetunes: the API's shapes, nothing else.

Cloudflare can create a finetune and upload its two assets, and list what an account has. It
cannot update, delete or replace anything, and its list says nothing about assets.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from reconciler.adapters.assets import HashingReader
from reconciler.adapters.catalogue import CatalogueModel, parse_models
from reconciler.base.errors import EndpointError, ProviderError
from reconciler.base.model import AssetDigest, AssetFile, DesiredFinetune, RemoteFinetune
from reconciler.base.untrusted import visible
from reconciler.providers import checked
from reconciler.providers import endpoint as endpoints
from reconciler.providers.base import Capabilities, History, Progress
from reconciler.providers.cloudflare.env import TOKEN_ENV, URL_ENV
from reconciler.providers.endpoint import Endpoint
from reconciler.providers.http import Api
from reconciler.providers.once import create_once

log = logging.getLogger("reconciler.cloudflare")

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
CATALOGUE_PAGE = 50  # what wrangler asks for
MAX_CATALOGUE_PAGES = 100  # 5,000 models; Workers AI serves about a hundred
# `reconciler public` reads at most this many (Cloudflare offers a few dozen), in at most this
# many pages (--page-size 1 is allowed): past either the server is not paging as asked
MAX_PUBLIC = 20_000
MAX_PUBLIC_PAGES = 500


def endpoint_from_env(env: Mapping[str, str], label: str | None = None) -> Endpoint:
    return endpoints.endpoint_from_env(
        env,
        label,
        token_variable=TOKEN_ENV,
        url_variable=URL_ENV,
        default_url=DEFAULT_BASE_URL,
        missing="create an API token with the 'Workers AI Write' permission and export it",
    )


def _error_text(body: Any) -> str:
    errors = body.get("errors") if isinstance(body, dict) else None
    if not errors:
        return ""
    return "; ".join(
        f"{e.get('message', '?')} [code: {e.get('code', '?')}]"
        for e in errors
        if isinstance(e, dict)
    )


def _failure(body: Any) -> str | None:
    """Whether an answer says it failed: every Cloudflare answer is an envelope whose `success`
    is true when the call did what was asked, whatever the HTTP status."""
    if not isinstance(body, dict) or "success" not in body:
        return "an answer that is not a Cloudflare API envelope (no success: true)"
    if body["success"] is True:
        return None
    return "success: " + visible(json.dumps(body["success"])[:40])


class CloudflareProvider:
    name = "cloudflare"
    capabilities = Capabilities(
        can_update=False, can_delete=False, can_replace_assets=False, trains_async=False
    )

    def __init__(self, endpoint: Endpoint, transport: Any = None) -> None:
        self.endpoint = endpoint.label
        self._api = Api.for_endpoint(
            endpoint, TOKEN_ENV, URL_ENV, _error_text, transport, failed=_failure
        )

    def close(self) -> None:
        self._api.close()

    def list_finetunes(self, account: str) -> tuple[RemoteFinetune, ...]:
        what = f"list finetunes of account {account}"
        result = _result(self._api.call(what, "GET", f"{_account(account)}/ai/finetunes"), what)
        if not isinstance(result, list):
            raise EndpointError(f"{what}: expected a list of finetunes")
        return checked.distinct((_remote(account, item, what) for item in result), what)

    def create_finetune(
        self, desired: DesiredFinetune, assets: Mapping[str, AssetDigest] | None = None
    ) -> RemoteFinetune:
        payload: dict[str, Any] = {
            "model": desired.model,
            "name": desired.name,
            "public": desired.public,
        }
        if desired.description is not None:
            payload["description"] = desired.description
        what = f"create finetune {desired.name}"
        path = f"{_account(desired.account)}/ai/finetunes"

        def send() -> RemoteFinetune:
            body = self._api.call(what, "POST", path, json=payload, idempotent=False)
            return _remote(desired.account, _result(body, what), what)

        def find() -> RemoteFinetune | None:
            return next(
                (r for r in self.list_finetunes(desired.account) if r.name == desired.name), None
            )

        return create_once(what, send, find)

    def update_finetune(
        self, desired: DesiredFinetune, remote_id: str, assets: Mapping[str, AssetDigest]
    ) -> RemoteFinetune:
        raise ProviderError("cloudflare has no API to update a finetune")  # never planned

    def delete_finetune(self, account: str, remote_id: str) -> None:
        raise ProviderError("cloudflare has no API to delete a finetune")  # never planned

    def get_finetune(self, account: str, remote_id: str) -> RemoteFinetune | None:
        # no GET by id: the list is the only read there is
        return next((r for r in self.list_finetunes(account) if r.id == remote_id), None)

    def history(self, account: str, remote_id: str) -> History:
        return History()  # Cloudflare keeps no events or metrics: adapters are not trained

    def run(self, account: str, model: str, body: dict[str, Any]) -> Any:
        """POST /ai/run/{model}: the model name is one path segment, its slashes encoded."""
        segment = quote(model, safe="@")
        what = f"run {model}" + (f" with lora {body['lora']}" if body.get("lora") else "")
        answer = self._api.call(what, "POST", f"{_account(account)}/ai/run/{segment}", json=body)
        return _result(answer, what)

    def read_catalogue(self, account: str) -> dict[str, CatalogueModel]:
        """The account's model catalogue, page by page as wrangler reads it (per_page=50,
        page=1, 2, ...) until a short page. A page that adds no new model also ends it, so a
        server that ignores paging cannot keep us reading, nor can one that invents models
        page after page: MAX_CATALOGUE_PAGES is the most read."""
        found: dict[str, CatalogueModel] = {}
        for page_number in range(1, MAX_CATALOGUE_PAGES + 1):
            what = f"read the model catalogue of account {account} (page {page_number})"
            page = _result(
                self._api.call(
                    what,
                    "GET",
                    f"{_account(account)}/ai/models/search",
                    # deprecated models are left out unless asked for (for up to three
                    # months after their date, per the SDK): a plan must see them to warn
                    params={
                        "per_page": CATALOGUE_PAGE,
                        "page": page_number,
                        "include_deprecated": "true",
                    },
                ),
                what,
            )
            if not isinstance(page, list):
                raise EndpointError(f"{what}: expected a list of models")
            models = parse_models(page)
            fresh = set(models) - set(found)
            found.update(models)
            if len(page) < CATALOGUE_PAGE or not fresh:
                return found
        raise EndpointError(
            f"{what}: read {MAX_CATALOGUE_PAGES} pages and the pages go on; stopped"
        )

    def list_public(
        self, account: str, order_by: str | None = None, page_size: int = 100
    ) -> list[RemoteFinetune]:
        """Every public finetune, following limit/offset until a page comes back short. A
        server that ignores `offset` (a page of finetunes already given) or pages without end
        (past MAX_PUBLIC finetunes or MAX_PUBLIC_PAGES pages) is stopped with an error, its
        pages held within those bounds."""
        found: dict[str, RemoteFinetune] = {}  # by id: a page that overlaps adds no twin
        offset = 0
        for _ in range(MAX_PUBLIC_PAGES):
            params: dict[str, Any] = {"limit": page_size, "offset": offset}
            if order_by:
                params["orderBy"] = order_by
            what = f"list public finetunes (offset {offset:,})"
            path = f"{_account(account)}/ai/finetunes/public"
            page = _result(self._api.call(what, "GET", path, params=params), what)
            if not isinstance(page, list):
                raise EndpointError(f"{what}: expected a list of finetunes")
            items = [_remote(account, item, what) for item in page]
            if items and all(r.id in found for r in items):
                again = ", ".join(r.name for r in items[:3]) + (", ..." if len(items) > 3 else "")
                raise EndpointError(
                    f"{what}: the API answered the finetunes it had already given ({again}): "
                    "it ignores `offset`, so the list cannot be read to its end"
                )
            found.update((r.id, r) for r in items)
            if len(page) < page_size:
                return list(found.values())
            if len(found) >= MAX_PUBLIC:
                raise EndpointError(
                    f"{what}: more than {MAX_PUBLIC:,} public finetunes, and the pages go on; "
                    "stopped (does the API honour `offset`?)"
                )
            offset += len(page)
        raise EndpointError(
            f"list public finetunes: read {MAX_PUBLIC_PAGES:,} pages and the pages go on; "
            "stopped (does the API honour `offset`?)"
        )

    def upload_asset(
        self,
        account: str,
        finetune_id: str | None,
        asset: AssetFile,
        progress: Progress | None = None,
    ) -> AssetDigest:
        if finetune_id is None:
            raise ProviderError(f"upload {asset.name}: a Cloudflare asset belongs to a finetune")
        what = f"upload {asset.name} to finetune {finetune_id}"
        with asset.path.open("rb") as f:
            reader = HashingReader(f, asset.name, progress)
            # file_name first, then file: the order the official SDK sends
            self._api.call(
                what,
                "POST",
                f"{_account(account)}/ai/finetunes/{checked.segment(finetune_id)}/finetune-assets",
                data={"file_name": asset.name},
                files={"file": (asset.name, reader, "application/octet-stream")},
            )
        return reader.result()


def _account(account: str) -> str:
    """The path of an account's API; the account is one segment, whatever it holds."""
    return f"/accounts/{checked.segment(account)}"


def _result(body: Any, what: str) -> Any:
    if not isinstance(body, dict) or "result" not in body:
        raise EndpointError(f"{what}: the answer is not a Cloudflare API envelope")
    return body["result"]


def _remote(account: str, item: Any, what: str) -> RemoteFinetune:
    """One finetune of an answer, its id and name checked (providers/checked.py) before they
    can reach a lock, a path or a plan."""
    if not isinstance(item, dict) or not {"id", "name", "model"} <= item.keys():
        raise EndpointError(f"{what}: a finetune in the answer lacks id, name or model")
    model = checked.remote_text(item["model"], what, "model")
    description = _optional(item, "description", what) or None
    # The list does not return `public` (only the create response does): where it is absent
    # it is unknown, never false, and the plan compares it with what the lockfile recorded.
    public = item.get("public")
    known = bool(public) if isinstance(public, bool) else None
    remote = RemoteFinetune(
        provider="cloudflare",
        account=account,
        id=checked.remote_id(item["id"], what),
        name=checked.remote_name(item["name"], what),
        model=model,
        description=description,
        public=bool(known),
        created_at=_optional(item, "created_at", what),
        modified_at=_optional(item, "modified_at", what),
        fields=fields(model, description, known),
    )
    return checked.recordable(remote, what)


def _optional(item: dict[str, Any], key: str, what: str) -> str | None:
    value = item.get(key)
    return None if value is None else checked.remote_text(value, what, key.replace("_", " "))


def fields(model: str, description: str | None, public: bool | None) -> dict[str, Any]:
    """What the plan compares for a Cloudflare finetune: what the answer carried (`public`
    only where it was returned)."""
    found: dict[str, Any] = {"model": model, "description": description}
    if public is not None:
        found["public"] = public
    return found
