"""Cloudflare Workers AI finetune routes: what each call accepts, refuses and answers.

Error codes come from what the real API is seen to send (see /work/shared/api-notes.md and the
public responses quoted in comments). Where no public source shows the real code, the sandbox
uses 3010 (Workers AI's "invalid input") with a message that names the problem; those places
say "sandbox choice" so nobody mistakes them for observed behaviour.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from reconciler.sandbox.cloudflare import inference
from reconciler.sandbox.cloudflare.catalogue import (
    MODEL_NAME_RE,
    TEXT_GENERATION,
    Catalogue,
    Model,
)
from reconciler.sandbox.cloudflare.store import (
    PUBLIC_ADAPTER_BASES,
    PUBLIC_ORDER_COLUMNS,
    AssetExists,
    DuplicateName,
    FinetuneLimitReached,
    SandboxLimits,
    SandboxStore,
)
from reconciler.sandbox.common.bodies import BodyRefused, BodyTooLarge, TooDeep, read_json
from reconciler.sandbox.common.clock import Clock, SystemClock
from reconciler.sandbox.common.defaults import REQUIRED_FILES, RESERVED_NAME_PREFIX
from reconciler.sandbox.common.names import name_problem
from reconciler.sandbox.common.paging import MAX_INT64, whole_number
from reconciler.sandbox.common.uploads import (
    NotMultipart,
    Spool,
    UploadTooLarge,
    receive_multipart,
    spool_of,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

# Observed codes (api-notes.md and public captures of real responses).
AUTH_ERROR = 10000  # "Authentication error": unknown token (401) or account not granted (403)
INVALID_API_TOKEN = 1000  # /user/tokens/verify with an unknown token, HTTP 401
MISSING_AUTH = 9106  # no credential headers at all, HTTP 400
INVALID_HEADERS = 6003  # parent of 6111/6102 in `error_chain`, HTTP 400
BAD_AUTHORIZATION = 6111  # "Invalid format for Authorization header"
BAD_AUTH_EMAIL = 6102  # "Invalid format for X-Auth-Email header"
UNKNOWN_AUTH_KEY = 9103  # "Unknown X-Auth-Key or X-Auth-Email" (HTTP 403: sandbox choice)
MALFORMED_JSON = 6007  # "Malformed JSON in request body", HTTP 400
NO_ROUTE = 7000  # "No route for that URI", HTTP 400
BAD_IDENTIFIER = 7003  # "Could not route to ..., perhaps your object identifier is invalid?"
METHOD_NOT_ALLOWED = 7001  # "Method PUT not available for that URI." (HTTP 405: sandbox choice)
TOO_LARGE = 3006  # request too large, HTTP 413
# "Finetune not found: <x> does not exist or is not accessible" (2026 reports; 2024-2025
# reports show 3037 "Finetune <x> not found" for the same case, with HTTP 404).
FINETUNE_NOT_FOUND = 5033
LORA_MISMATCH = 3030  # "Lora not compatible with model": an adapter on another LoRA base
NO_SUCH_MODEL = 5007  # no such model, HTTP 400
# Workers AI's own table (developers.cloudflare.com/workers-ai/platform/errors/):
FINETUNE_INCOMPLETE = 3039  # "Finetune is missing required files ...", HTTP 400
INVALID_MODEL_NAME = 3042  # "The model name is invalid", HTTP 404
LORA_UNSUPPORTED = 5005  # "The model <m> does not support LoRa inference", HTTP 405
BAD_INPUT = 5006  # "AiError: Bad input: Error: oneOf at '/' not met, ...", HTTP 400 (observed)
# "AiError: 5028: This model was deprecated on 2026-05-30. Please use an alternative model", a
# run of @cf/meta/llama-3.1-8b-instruct two months after its date (cloudflare-docs #32501,
# 2026-08); its HTTP status is not shown (see _retired).
MODEL_DEPRECATED = 5028
INVALID_INPUT = 3010  # sandbox choice for every other 400, see the module docstring
INTERNAL_ERROR = 10001  # sandbox choice for an unexpected failure, HTTP 500

# The file part's name: `file`, required (the API reference and the SDKs: "file and file_name
# are both required"); wrangler names the part `file` too, with the *filename* `blob`.
FILE_PART = "file"

# GET .../ai/models/search paging. Sandbox choices, no public source gives them: pages count
# from 1; 20 models a page unless `per_page` says otherwise (the Cloudflare v4 API's usual
# default, and fewer than the bundled catalogue holds, so a client that does not page is
# caught); a larger `per_page` than 100 is served 100, which `result_info.per_page` reports.
MODELS_DEFAULT_PER_PAGE = 20
MODELS_MAX_PER_PAGE = 100


class ApiError(Exception):
    """An error the API answers with: HTTP status plus the envelope's `errors` list."""

    def __init__(self, status: int, errors: list[dict[str, Any]], *, result: object = None) -> None:
        super().__init__(errors[0]["message"])
        self.status = status
        self.errors = errors
        # The envelope's `result`: null, except where the real API is seen to send `{}`.
        self.result = result


def fail(
    status: int,
    code: int,
    message: str,
    *,
    chain: tuple[tuple[int, str], ...] = (),
    result: object = None,
) -> ApiError:
    error: dict[str, Any] = {"code": code, "message": message}
    if chain:
        error["error_chain"] = [{"code": c, "message": m} for c, m in chain]
    return ApiError(status, [error], result=result)


def invalid(message: str) -> ApiError:
    return fail(400, INVALID_INPUT, message)


@dataclass(frozen=True)
class Reply:
    result: object = None
    status: int = 200
    # The asset upload answers `{"success": true}` with no `result` key at all.
    with_result: bool = True
    messages: list[dict[str, Any]] = field(default_factory=list)
    # Paged lists (the model search) add `result_info` beside `result`.
    result_info: dict[str, int] | None = None


@dataclass(frozen=True)
class Call:
    """What a handler gets: the request, its path parameters, and who is calling."""

    environ: WSGIEnvironment
    params: dict[str, str]
    token_id: str


Handler = Callable[["CloudflareApi", Call], Reply]


@dataclass(frozen=True)
class Route:
    pattern: re.Pattern[str]
    methods: dict[str, Handler]
    # On /user/tokens/verify an unknown token is the answer (1000), not an auth failure.
    verifies_token: bool = False


def read_json_object(environ: WSGIEnvironment) -> dict[str, Any]:
    """The body as a JSON object, whatever Content-Type says (wrangler sends text/plain), read
    through the sandbox's bounded reader (common/bodies.py)."""
    try:
        body = read_json(environ)
    except BodyTooLarge:
        raise fail(413, TOO_LARGE, "Request is too large") from None
    except TooDeep as exc:
        # Sandbox choice: the real API's parser goes deeper; no body it documents does.
        raise invalid(f"Request body is {exc}") from None
    except BodyRefused:
        raise fail(400, MALFORMED_JSON, "Malformed JSON in request body") from None
    if not isinstance(body, dict):
        raise invalid("Request body must be a JSON object")
    return body


def _optional(body: dict[str, Any], key: str, kind: type, label: str) -> Any:
    value = body.get(key)
    if value is not None and not isinstance(value, kind):
        raise invalid(f"Field '{key}' must be {label}")
    return value


def _required_text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        raise invalid(f"Field '{key}' is required and must be a non-empty string")
    return value


class CloudflareApi:
    def __init__(
        self,
        store: SandboxStore,
        limits: SandboxLimits,
        catalogue: Catalogue | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.store = store
        self.limits = limits
        self.catalogue = catalogue if catalogue is not None else Catalogue.bundled()
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.reserved_prefix = RESERVED_NAME_PREFIX
        self.asset_names = REQUIRED_FILES

    def today(self) -> date:
        """The day by the sandbox's clock, in UTC: what retires a deprecated model."""
        return datetime.fromtimestamp(self.clock.now(), timezone.utc).date()

    # GET /accounts/{account_id}/ai/finetunes
    def list_finetunes(self, call: Call) -> Reply:
        # No `public` here: the real list leaves it out (see Finetune.to_api).
        finetunes = self.store.list_finetunes(call.params["account_id"])
        return Reply([f.to_api(with_public=False) for f in finetunes])

    # POST /accounts/{account_id}/ai/finetunes
    def create_finetune(self, call: Call) -> Reply:
        body = read_json_object(call.environ)
        model = _required_text(body, "model")
        name = _required_text(body, "name")
        problem = name_problem(name, "Field 'name'")
        if problem is not None:  # sandbox choice, see common/names.py
            raise invalid(problem)
        description = _optional(body, "description", str, "a string")
        public = _optional(body, "public", bool, "a boolean")
        # Sandbox choice: no public source shows what create answers for a model that does not
        # exist or takes no LoRA. The sandbox refuses both, against its catalogue (which a
        # test can extend), so that a client that gets past it never creates an adapter the
        # real API could not run: 5007 (400) as for a malformed name, and 5005, the code
        # Workers AI gives for "model does not support LoRA", with HTTP 400 rather than run's
        # 405 since the request itself is what is wrong.
        known = self.catalogue.get(model) if MODEL_NAME_RE.fullmatch(model) else None
        if known is None:
            raise fail(400, NO_SUCH_MODEL, f"No such model {model}")
        if not known.lora:
            raise fail(400, LORA_UNSUPPORTED, f"The model {model} does not support LoRA")
        if known.retired(self.today()):
            # Sandbox choice: no public source shows create on a retired model; the sandbox
            # refuses it as the run does (5028, HTTP 400), in create's plain message.
            raise fail(400, MODEL_DEPRECATED, _retired(known))
        if name.lower().startswith(self.reserved_prefix):
            raise invalid(
                f"Finetune names starting with '{self.reserved_prefix}' are reserved for"
                " Cloudflare's public finetunes"
            )
        account_id = call.params["account_id"]
        limit = self.limits.max_finetunes_per_account
        try:
            finetune = self.store.create_finetune(
                account_id,
                name=name,
                model=model,
                description=description,
                public=bool(public),
                max_per_account=limit,
            )
        except DuplicateName:
            # Sandbox choice: 400, not 409, because the official SDK retries 409 twice and a
            # duplicate name never succeeds on retry. No public source shows the real answer.
            raise invalid(f"A finetune named '{name}' already exists on this account") from None
        except FinetuneLimitReached:
            raise invalid(
                f"Finetune limit reached: an account can have at most {limit} finetunes"
            ) from None
        return Reply(finetune.to_api())

    # POST /accounts/{account_id}/ai/finetunes/{finetune_id}/finetune-assets
    def upload_asset(self, call: Call) -> Reply:
        finetune_id = call.params["finetune_id"]
        finetune = self.store.get_finetune(call.params["account_id"], finetune_id)
        if finetune is None:
            # Sandbox choice: the upload's answer to an unknown finetune is not shown in any
            # public source; the sandbox gives the run's 2026 answer (5033, HTTP 404).
            raise fail(404, FINETUNE_NOT_FOUND, _not_found(finetune_id))
        spools: list[Spool] = []
        try:
            file_name, spool = self._receive(call.environ, spools)
            try:
                self.store.add_asset(
                    finetune, file_name, spool.path, spool.size, spool.digest.hexdigest()
                )
            except AssetExists:
                # Sandbox choice: assets can't be edited once uploaded (Workers AI docs: "you
                # can't edit a fine tune's asset files after you upload it"), so different
                # bytes under a name already uploaded are refused, not silently swapped in.
                # The same bytes again succeed: the store treats that as a retry.
                raise invalid(
                    f"Asset '{file_name}' was already uploaded to finetune {finetune_id} with"
                    " different content; assets cannot be replaced, create a new finetune"
                    " instead"
                ) from None
        finally:
            for spool in spools:  # the accepted one has been renamed away already
                spool.discard()
        return Reply(with_result=False)

    def _receive(self, environ: WSGIEnvironment, spools: list[Spool]) -> tuple[str, Spool]:
        """Stream the multipart body to disk; return the asset's name and its spooled file."""
        try:
            form, files = receive_multipart(
                environ, self.store.spool_path, self.limits.max_asset_bytes, spools
            )
        except NotMultipart:
            raise invalid(
                "Expected a multipart/form-data body with 'file_name' and 'file'"
            ) from None
        except UploadTooLarge:
            raise self._too_large() from None
        except ValueError as exc:
            raise invalid(f"Malformed multipart body: {exc}") from None
        file_name = form.get("file_name")
        if not file_name:
            raise invalid("Missing form field 'file_name'")
        if file_name not in self.asset_names:
            allowed = " or ".join(f"'{n}'" for n in self.asset_names)
            raise invalid(f"Invalid file_name '{file_name}': must be {allowed}")
        part = files.get(FILE_PART)
        if part is None:
            raise invalid(f"Missing file part '{FILE_PART}'")
        return file_name, spool_of(spools, part)

    def _too_large(self) -> ApiError:
        return fail(
            413,
            TOO_LARGE,
            f"Request is too large: an asset may be at most {self.limits.max_asset_bytes} bytes",
        )

    # GET /accounts/{account_id}/ai/finetunes/public?limit=&offset=&orderBy=
    def list_public(self, call: Call) -> Reply:
        # Sandbox choice: only Cloudflare's own adapters are listed. No source says whether an
        # account's own `public: true` finetunes appear here (api-notes.md), so a client can
        # rely on neither; the sandbox takes the narrower answer. For the same reason a run's
        # `lora` finds another account's finetune, public or not, nowhere (store.find_finetune).
        query = dict(parse_qsl(str(call.environ.get("QUERY_STRING", "")), keep_blank_values=True))
        limit = _count(query.get("limit"), "limit")
        offset = _count(query.get("offset"), "offset") or 0
        order_by, descending = _order(query.get("orderBy"))
        rows = self.store.list_public(
            limit=limit, offset=offset, order_by=order_by, descending=descending
        )
        return Reply([f.to_api() for f in rows])

    # GET /accounts/{account_id}/ai/models/search?search=&task=&author=&source=
    #     &hide_experimental=&page=&per_page=
    def search_models(self, call: Call) -> Reply:
        """The catalogue (catalogue.py), filtered, one page of it.

        Paged as wrangler and the SDKs expect: `page` from 1 and `per_page` (see
        MODELS_DEFAULT_PER_PAGE), a page past the end is empty (wrangler stops at a short page,
        the SDK's iterator at an empty one), and `result_info` carries `page` and `per_page`
        (the SDKs read only those, as optional) plus `count` (this page) and `total_count`:
        sandbox choice, Cloudflare's usual v4 fields; no source shows this endpoint's.
        """
        query = dict(parse_qsl(str(call.environ.get("QUERY_STRING", "")), keep_blank_values=True))
        page = _positive(query.get("page"), "page") or 1
        per_page = _positive(query.get("per_page"), "per_page") or MODELS_DEFAULT_PER_PAGE
        per_page = min(per_page, MODELS_MAX_PER_PAGE)
        source = _count(query.get("source"), "source")
        hide_experimental = _flag(query.get("hide_experimental"), "hide_experimental")
        # `include_deprecated` (SDK 5.x: "If true, include models for up to three months after
        # their deprecation date. Defaults to false"): a model whose planned_deprecation_date
        # has come, by the sandbox's clock, is left out without it, and with it is listed
        # until three months after that date (catalogue.Model.listed has the day rules).
        include_deprecated = _flag(query.get("include_deprecated"), "include_deprecated")
        if query.get("format"):
            # Sandbox choice: SDK 5.x offers `format=openrouter` ("return models in the
            # requested marketplace format"), a shape no public source shows.
            raise invalid(f"The sandbox does not serve format={query['format']}")
        found = self.catalogue.search(
            search=query.get("search"),
            task=query.get("task"),
            author=query.get("author"),
            source=source,
            hide_experimental=hide_experimental,
            today=self.today(),
            include_deprecated=include_deprecated,
        )
        start = (page - 1) * per_page
        served = [m.record for m in found[start : start + per_page]]
        info = {"page": page, "per_page": per_page, "count": len(served), "total_count": len(found)}
        return Reply(served, result_info=info)

    # POST /accounts/{account_id}/ai/run/{model_name}
    def run_model(self, call: Call) -> Reply:
        """Text generation, optionally through a LoRA finetune (`lora`: its name or id).

        The answer is deterministic: inference.py documents the rule. Checks, in order: the
        model name's shape (3042), the model, in the catalogue (5007), its deprecation date
        (5028), the body (6007, 5006), LoRA support, in the catalogue (5005), the finetune
        (5033), its base model (3030), its files (3039).
        """
        model = _wsgi_text(call.params["model_name"])
        if not MODEL_NAME_RE.fullmatch(model):
            raise _ai_error(404, INVALID_MODEL_NAME, "The model name is invalid")
        known = self.catalogue.get(model)
        if known is None:
            raise _ai_error(400, NO_SUCH_MODEL, f"No such model {model} or task")
        if known.retired(self.today()):
            # Observed code and message (MODEL_DEPRECATED), from its date on, whether the
            # search still lists the model or not. Sandbox choice: HTTP 400, as for 5007, the
            # other "this model cannot be used" answer; no report shows the status.
            raise _ai_error(400, MODEL_DEPRECATED, _retired(known))
        body = read_json_object(call.environ)
        try:
            run = inference.parse_input(body)
        except inference.BadInput as exc:
            raise fail(400, BAD_INPUT, f"AiError: Bad input: Error: {exc}", result={}) from None
        if run.stream:
            # Sandbox choice: the real API streams server-sent events; the sandbox does not,
            # and a JSON answer to a streaming client would be misread.
            raise invalid("The sandbox does not stream: leave out 'stream' or set it to false")
        if known.task != TEXT_GENERATION:
            # Sandbox choice: the sandbox answers text generation only; other tasks (embeddings,
            # speech, images) take other inputs and give other outputs it does not emulate.
            raise invalid(
                f"The sandbox runs Text Generation models only; {model} is a {known.task} model"
            )
        adapter = None
        if run.lora is not None:
            if not known.lora:
                raise _ai_error(
                    405, LORA_UNSUPPORTED, f"The model {model} does not support LoRa inference"
                )
            adapter = self._adapter(call.params["account_id"], run.lora, model)
        return Reply(inference.answer(model, adapter, run))

    def _adapter(self, account_id: str, ref: str, model: str) -> inference.Adapter:
        finetune = self.store.find_finetune(account_id, ref)
        if finetune is None:
            raise _ai_error(404, FINETUNE_NOT_FOUND, _not_found(ref))
        public = finetune.account_id is None
        bases = PUBLIC_ADAPTER_BASES if public else frozenset({finetune.model})
        if model not in bases:
            # An adapter on a LoRA-capable base other than its own (api-notes.md: 3030, seen
            # in reports). Sandbox choice: HTTP 400, as the request is what is wrong; no
            # report shows the status.
            raise _ai_error(400, LORA_MISMATCH, "Lora not compatible with model")
        if public:  # Cloudflare's own public adapters are complete
            return inference.Adapter(finetune.name)
        digests = {a.file_name: a.sha256 for a in self.store.list_assets(finetune.id)}
        if any(name not in digests for name in self.asset_names):
            raise _ai_error(
                400,
                FINETUNE_INCOMPLETE,
                "Finetune is missing required files (model.safetensors and config.json)",
            )
        return inference.Adapter(finetune.name, tuple(digests[n] for n in self.asset_names))

    # GET /user/tokens/verify (the app has already resolved the token)
    def verify_token(self, call: Call) -> Reply:
        return Reply(
            {"id": call.token_id, "status": "active"},
            messages=[
                {"code": AUTH_ERROR, "message": "This API Token is valid and active", "type": None}
            ],
        )

    # GET /user: wrangler asks for it after an authentication error, to say who is logged in.
    def user(self, call: Call) -> Reply:
        return Reply({"id": call.token_id, "email": "sandbox@reconciler.invalid"})


def _ai_error(status: int, code: int, message: str) -> ApiError:
    """An error from Workers AI's model layer: the real API wraps the message twice in
    `AiError: ` and sends `result: {}` (observed on 3037, cloudflare-docs issues #14757 and
    #23272; assumed for 3030, 3039, 3042, 5005, 5007 and 5033, from the same layer)."""
    return fail(status, code, f"AiError: AiError: {message}", result={})


def _retired(model: Model) -> str:
    return f"This model was deprecated on {model.deprecation}. Please use an alternative model"


def _not_found(ref: str) -> str:
    return f"Finetune not found: {ref} does not exist or is not accessible"


def _wsgi_text(value: str) -> str:
    """A path parameter as text: WSGI hands the decoded path over as latin-1 code points."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def _count(raw: str | None, key: str) -> int | None:
    try:
        return whole_number(raw)
    except ValueError:
        raise invalid(f"Query parameter '{key}' must be an integer from 0 to {MAX_INT64}") from None


def _positive(raw: str | None, key: str) -> int | None:
    number = _count(raw, key)
    if number == 0:
        raise invalid(f"Query parameter '{key}' must be an integer from 1 to {MAX_INT64}")
    return number


def _flag(raw: str | None, key: str) -> bool:
    """A boolean query parameter: the SDKs send `true`/`false`. Sandbox choice: `1`/`0` are
    taken too, anything else is refused rather than guessed at."""
    if raw is None or raw == "":
        return False
    value = raw.strip().lower()
    if value not in ("true", "false", "1", "0"):
        raise invalid(f"Query parameter '{key}' must be true or false")
    return value in ("true", "1")


def _order(raw: str | None) -> tuple[str, bool]:
    """`orderBy` names a column, optionally followed by ASC or DESC."""
    if not raw:
        return "created_at", False
    column, _, direction = raw.strip().partition(" ")
    direction = direction.strip().upper()
    if column not in PUBLIC_ORDER_COLUMNS or direction not in ("", "ASC", "DESC"):
        columns = ", ".join(PUBLIC_ORDER_COLUMNS)
        raise invalid(f"Invalid orderBy '{raw}': use one of {columns}, optionally with ASC/DESC")
    return column, direction == "DESC"


_ACCOUNT = r"/accounts/(?P<account_id>[^/]+)"

ROUTES: tuple[Route, ...] = (
    Route(re.compile(r"/user/tokens/verify"), {"GET": CloudflareApi.verify_token}, True),
    Route(re.compile(r"/user"), {"GET": CloudflareApi.user}),
    Route(re.compile(_ACCOUNT + r"/ai/finetunes/public"), {"GET": CloudflareApi.list_public}),
    Route(re.compile(_ACCOUNT + r"/ai/models/search"), {"GET": CloudflareApi.search_models}),
    Route(
        re.compile(_ACCOUNT + r"/ai/finetunes/(?P<finetune_id>[^/]+)/finetune-assets"),
        {"POST": CloudflareApi.upload_asset},
    ),
    # The model name is one percent-encoded segment (`@cf%2Fmistral%2F...`, as the official
    # SDK sends it) or, as in Cloudflare's own curl examples, plain with its slashes. The WSGI
    # server decodes %2F before routing, so both arrive here as the same path and the route
    # takes everything after /ai/run/ as the name.
    Route(re.compile(_ACCOUNT + r"/ai/run/(?P<model_name>.+)"), {"POST": CloudflareApi.run_model}),
    Route(
        re.compile(_ACCOUNT + r"/ai/finetunes"),
        {"GET": CloudflareApi.list_finetunes, "POST": CloudflareApi.create_finetune},
    ),
)
