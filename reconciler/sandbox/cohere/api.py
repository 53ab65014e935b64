"""Cohere v1 fine-tuning and datasets routes: what each call accepts, refuses and answers.

Every answer is a JSON body, errors as `{"message": ...}` (api-notes.md). Messages follow the
real API's habit of "invalid request: <detail>" for a 400; where no public source shows what
Cohere answers, the choice is marked "sandbox choice".

All accepted tokens belong to one organization: each sees every dataset and model.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl

from reconciler.sandbox.cohere import views
from reconciler.sandbox.cohere.datasets import (
    DATASET_TYPES,
    OUTPUT_TYPES,
    validate,
)
from reconciler.sandbox.cohere.settings import BASE_TYPES, SettingsError, normalize
from reconciler.sandbox.cohere.store import CohereStore, Dataset, Model, Part, RunPlan
from reconciler.sandbox.cohere.training import fail_step, plan_steps
from reconciler.sandbox.common.auth import Tokens, bearer
from reconciler.sandbox.common.bodies import BodyRefused, BodyTooLarge, TooDeep, read_json
from reconciler.sandbox.common.clock import Clock, parse_iso
from reconciler.sandbox.common.limits import SandboxLimits
from reconciler.sandbox.common.names import name_problem
from reconciler.sandbox.common.paging import Key, Page, Pager, page_size, whole_number
from reconciler.sandbox.common.uploads import (
    NotMultipart,
    Spool,
    UploadTooLarge,
    receive_multipart,
    spool_of,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

COHERE_PREFIX = "/v1"
MAX_DATASET_NAME = 49  # "a dataset name is under 50 characters"
# "Datasets are deleted 30 days after creation" (api-notes.md). Real time, not simulated: the
# clock's speed scales validation and training only.
DATASET_LIFETIME_SECONDS = 30 * 24 * 3600
FILE_PARTS = ("data", "eval_data")
_ORDER_RE = re.compile(r"\s*created_at(?:\s+(asc|desc))?\s*", re.IGNORECASE)


class CohereError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def invalid(detail: str) -> CohereError:
    return CohereError(400, f"invalid request: {detail}")


def is_cohere_path(path: str) -> bool:
    return path == COHERE_PREFIX or path.startswith(COHERE_PREFIX + "/")


@dataclass(frozen=True)
class Call:
    environ: WSGIEnvironment
    params: dict[str, str]
    user_id: str

    def query(self) -> dict[str, str]:
        return dict(parse_qsl(str(self.environ.get("QUERY_STRING", "")), keep_blank_values=True))


Handler = Callable[["CohereApi", Call], dict[str, Any]]
T = TypeVar("T")


class CohereApi:
    def __init__(
        self, store: CohereStore, tokens: Tokens, clock: Clock, limits: SandboxLimits
    ) -> None:
        self.store = store
        self.tokens = tokens
        self.clock = clock
        self.limits = limits
        self.pager = Pager(store.page_token_secret)

    def respond(self, environ: WSGIEnvironment, method: str, path: str) -> tuple[int, Any]:
        """(HTTP status, JSON body) for one request; errors included."""
        try:
            return 200, self._dispatch(environ, method, path)
        except CohereError as exc:
            return exc.status, {"message": exc.message}

    def _dispatch(self, environ: WSGIEnvironment, method: str, path: str) -> dict[str, Any]:
        for pattern, methods in ROUTES:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            handler = methods.get(method)
            if handler is None:
                raise CohereError(405, f"method {method} not allowed on {path}")  # sandbox choice
            user_id = self._authenticate(environ)
            return handler(self, Call(environ, match.groupdict(), user_id))
        raise CohereError(404, f"route not found: {method} {path}")  # sandbox choice

    def _authenticate(self, environ: WSGIEnvironment) -> str:
        header = environ.get("HTTP_AUTHORIZATION")
        if header is None:
            raise CohereError(401, "no api key supplied")
        token = bearer(str(header))
        ident = None if token is None else self.tokens.known(token)
        if ident is None:
            raise CohereError(401, "invalid api token")
        # Cohere ids are UUIDs; derive a stable one per token for creator_id / user_id.
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"reconciler-sandbox:{ident}"))

    # --- datasets -------------------------------------------------------------------------

    # POST /v1/datasets?name=&type=  (multipart: data, optional eval_data)
    def create_dataset(self, call: Call) -> dict[str, Any]:
        query = call.query()
        name = query.get("name", "")
        if not name.strip():
            raise invalid("name is required")
        _checked_name(name)
        if len(name) > MAX_DATASET_NAME:
            raise invalid(f"dataset name must be less than 50 characters, got {len(name)}")
        dataset_type = query.get("type", "")
        if dataset_type not in DATASET_TYPES:
            raise invalid(
                f"invalid dataset type {dataset_type!r}: use one of {', '.join(DATASET_TYPES)}"
            )
        if dataset_type in OUTPUT_TYPES:
            # Sandbox choice: well-formed but unprocessable, hence 422 (the spec lists it).
            raise CohereError(422, f"datasets of type {dataset_type} cannot be uploaded")
        skip = query.get("skip_malformed_input", "").lower() == "true"
        spools: list[Spool] = []
        try:
            parts = self._receive(call.environ, spools)
            verdict = validate(dataset_type, {p.part: p.path for p in parts}, skip_malformed=skip)
            dataset = self.store.add_dataset(
                name=name,
                dataset_type=dataset_type,
                spooled=parts,
                verdict=verdict,
                created_at=self.clock.now(),
            )
        finally:
            for spool in spools:  # accepted parts have been moved away already
                spool.discard()
        return {"id": dataset.id}

    def _receive(self, environ: WSGIEnvironment, spools: list[Spool]) -> list[Part]:
        limit = self.limits.max_dataset_bytes
        try:
            _, files = receive_multipart(environ, self.store.spool_path, limit, spools)
        except NotMultipart:
            raise invalid("expected a multipart/form-data body with a 'data' file part") from None
        except UploadTooLarge:
            raise self._too_large() from None
        except ValueError as exc:
            raise invalid(f"malformed multipart body: {exc}") from None
        if "data" not in files:
            raise invalid("missing file part 'data'")
        if sum(s.size for s in spools) > limit:
            raise self._too_large()
        parts = []
        for part in FILE_PARTS:
            if part in files:
                upload = files[part]
                _checked_name(upload.filename or "", "file name")
                spool = spool_of(spools, upload)
                parts.append(Part(part, upload.filename or part, spool.path, spool.size))
        return parts

    def _too_large(self) -> CohereError:
        return CohereError(
            413, f"dataset is too large: at most {self.limits.max_dataset_bytes} bytes"
        )

    def _expired(self, dataset: Dataset) -> bool:
        return self.clock.now() - dataset.created_at >= DATASET_LIFETIME_SECONDS

    def _live_dataset(self, ident: str) -> Dataset | None:
        """The dataset, unless it is gone: never made, deleted, or past its 30 days (then it
        is deleted now, as Cohere would have done)."""
        dataset = self.store.get_dataset(ident)
        if dataset is not None and self._expired(dataset):
            self.store.delete_dataset(dataset.id)
            return None
        return dataset

    def _dataset_or_404(self, ident: str) -> Dataset:
        dataset = self._live_dataset(ident)
        if dataset is None:
            raise CohereError(404, f"dataset {ident} not found")
        return dataset

    # GET /v1/datasets/{id}
    def get_dataset(self, call: Call) -> dict[str, Any]:
        dataset = self._dataset_or_404(call.params["id"])
        return {"dataset": views.dataset(dataset, self.clock.now(), self.clock.speed)}

    # GET /v1/datasets?datasetType=&validationStatus=&before=&after=&limit=&offset=
    def list_datasets(self, call: Call) -> dict[str, Any]:
        query = call.query()
        now, speed = self.clock.now(), self.clock.speed
        rows = []
        for dataset in self.store.list_datasets():
            if self._expired(dataset):
                self.store.delete_dataset(dataset.id)
            else:
                rows.append(dataset)
        if query.get("datasetType"):
            rows = [d for d in rows if d.dataset_type == query["datasetType"]]
        if query.get("validationStatus"):
            wanted = query["validationStatus"]
            rows = [d for d in rows if views.dataset_status(d, now, speed) == wanted]
        for key, keep in (("before", float.__lt__), ("after", float.__gt__)):
            if query.get(key):
                try:
                    bound = parse_iso(query[key])
                except ValueError:
                    raise invalid(f"{key} must be an ISO 8601 date-time") from None
                rows = [d for d in rows if keep(d.created_at, bound)]
        offset = _count(query.get("offset"), "offset") or 0
        limit = _count(query.get("limit"), "limit")
        rows = rows[offset:] if limit is None else rows[offset : offset + limit]
        return {"datasets": [views.dataset(d, now, speed) for d in rows]}

    # DELETE /v1/datasets/{id}
    def delete_dataset(self, call: Call) -> dict[str, Any]:
        if self._live_dataset(call.params["id"]) is None or not self.store.delete_dataset(
            call.params["id"]
        ):
            raise CohereError(404, f"dataset {call.params['id']} not found")
        return {}

    # --- fine-tuned models ----------------------------------------------------------------

    def _model_or_404(self, ident: str) -> Model:
        model = self.store.get_model(ident)
        if model is None:
            raise CohereError(404, f"finetuned model {ident} not found")
        return model

    def _model_view(self, model: Model) -> dict[str, Any]:
        now, speed = self.clock.now(), self.clock.speed
        return views.finetuned_model(model, now, speed, self.store.organization_id)

    def _settings(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("settings") is None:
            raise invalid("settings is required")
        try:
            return normalize(body["settings"])
        except SettingsError as exc:
            raise invalid(str(exc)) from None

    def _training_plan(self, settings: dict[str, Any]) -> RunPlan:
        """Check the referenced dataset can train this base type; settle multi_label."""
        ident = settings["dataset_id"]
        dataset = self._live_dataset(ident)
        if dataset is None:
            raise CohereError(404, f"dataset {ident} not found")
        status = views.dataset_status(dataset, self.clock.now(), self.clock.speed)
        if status != "validated":
            reason = f": {dataset.verdict.error}" if status == "failed" else ""
            raise invalid(
                f"dataset {ident} cannot be used for fine-tuning:"
                f" its validation_status is {status}{reason}"
            )
        base_type = settings["base_model"]["base_type"]
        accepted = BASE_TYPES[base_type]
        if dataset.dataset_type not in accepted:
            raise invalid(
                f"dataset {ident} has type {dataset.dataset_type}, but {base_type} needs"
                f" {' or '.join(accepted)}"
            )
        hyper = settings["hyperparameters"]
        steps = plan_steps(
            dataset.verdict.train_examples, hyper["train_epochs"], hyper["train_batch_size"]
        )
        return RunPlan(steps, fail_step(dataset.name, steps))

    def _classification(self, settings: dict[str, Any]) -> dict[str, Any]:
        """multi_label is read-only: the API sets it from the dataset's type."""
        if settings["base_model"]["base_type"] != "BASE_TYPE_CLASSIFICATION":
            return settings
        dataset = self.store.get_dataset(settings["dataset_id"])
        multi = dataset is not None and dataset.dataset_type.startswith("multi-label")
        return {**settings, "multi_label": multi}

    # POST /v1/finetuning/finetuned-models
    def create_model(self, call: Call) -> dict[str, Any]:
        body = _json_object(call.environ)
        name = _name(body)
        settings = self._settings(body)
        plan = self._training_plan(settings)
        model = self.store.create_model(
            name=name,
            settings=self._classification(settings),
            creator_id=call.user_id,
            plan=plan,
            now=self.clock.now(),
        )
        return {"finetuned_model": self._model_view(model)}

    # GET /v1/finetuning/finetuned-models/{id}
    def get_model(self, call: Call) -> dict[str, Any]:
        return {"finetuned_model": self._model_view(self._model_or_404(call.params["id"]))}

    # PATCH /v1/finetuning/finetuned-models/{id}  {name, settings}
    def update_model(self, call: Call) -> dict[str, Any]:
        current = self._model_or_404(call.params["id"])
        body = _json_object(call.environ)
        name = _name(body)
        settings = self._classification(self._settings(body))
        # Only a change of settings retrains, so only then must the dataset be usable: a
        # rename keeps working after the training dataset has been deleted.
        plan = None if settings == current.settings else self._training_plan(settings)
        updated = self.store.update_model(
            current.id,
            name=name,
            settings=settings,
            plan=plan,
            user_id=call.user_id,
            now=self.clock.now(),
        )
        if updated is None:  # deleted meanwhile
            raise CohereError(404, f"finetuned model {current.id} not found")
        return {"finetuned_model": self._model_view(updated[0])}

    # DELETE /v1/finetuning/finetuned-models/{id}
    def delete_model(self, call: Call) -> dict[str, Any]:
        if not self.store.delete_model(call.params["id"]):
            raise CohereError(404, f"finetuned model {call.params['id']} not found")
        return {}

    # GET /v1/finetuning/finetuned-models?page_size=&page_token=&order_by=
    def list_models(self, call: Call) -> dict[str, Any]:
        query = call.query()
        descending = _descending(query.get("order_by"))
        page = self._page(
            self.store.list_models(),
            lambda m: (m.seq,),
            scope=f"models:{descending}",
            query=query,
            descending=descending,
        )
        return {
            "finetuned_models": [self._model_view(m) for m in page.items],
            "next_page_token": page.next_token,
            "total_size": page.total,
        }

    # GET /v1/finetuning/finetuned-models/{id}/events?page_size=&page_token=&order_by=
    def list_events(self, call: Call) -> dict[str, Any]:
        model = self._model_or_404(call.params["id"])
        query = call.query()
        descending = _descending(query.get("order_by"))
        now, speed = self.clock.now(), self.clock.speed
        # Every run's events, oldest run first: a retrain appends, never rewrites history.
        events = [
            (run.number, index, event)
            for run in self.store.runs(model.id)
            for index, event in enumerate(run.events(now, speed))
        ]
        page = self._page(
            events,
            lambda e: (e[0], e[1]),
            scope=f"events:{model.id}:{descending}",
            query=query,
            descending=descending,
        )
        return {
            "events": [views.event(*e[2]) for e in page.items],
            "next_page_token": page.next_token,
            "total_size": page.total,
        }

    # GET /v1/finetuning/finetuned-models/{id}/training-step-metrics?page_size=&page_token=
    def list_step_metrics(self, call: Call) -> dict[str, Any]:
        model = self._model_or_404(call.params["id"])
        run, speed = model.run, self.clock.speed
        # The current run only, in step order (as the spec's example; its prose says newest
        # first, the example does not). A retrain starts a new scope: old tokens are refused.
        page = self._page(
            list(range(run.steps_done(self.clock.now(), speed))),
            lambda step: (step,),
            scope=f"metrics:{model.id}:{run.number}",
            query=call.query(),
            descending=False,
        )
        return {
            "step_metrics": [views.step_metrics(run, step, speed) for step in page.items],
            "next_page_token": page.next_token,
        }

    def _page(
        self,
        items: Sequence[T],
        key: Callable[[T], Key],
        *,
        scope: str,
        query: dict[str, str],
        descending: bool,
    ) -> Page[T]:
        try:
            size = page_size(query.get("page_size"))
            token = query.get("page_token", "")
            return self.pager.page(items, key, scope=scope, size=size, token=token,
                                   descending=descending)  # fmt: skip
        except ValueError as exc:  # BadPageToken included
            raise invalid(str(exc)) from None


def _json_object(environ: WSGIEnvironment) -> dict[str, Any]:
    """The body as a JSON object, through the sandbox's bounded reader (common/bodies.py)."""
    try:
        body = read_json(environ)
    except BodyTooLarge:
        raise CohereError(413, "request body is too large") from None
    except TooDeep as exc:
        # Sandbox choice: no Cohere body goes past 4 levels (settings.hyperparameters.x).
        raise invalid(f"body is {exc}") from None
    except BodyRefused:
        raise invalid("body is not valid JSON") from None
    if not isinstance(body, dict):
        raise invalid("body must be a JSON object")
    return body


def _name(body: dict[str, Any]) -> str:
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise invalid("name is required and must be a non-empty string")
    return _checked_name(name)


def _checked_name(name: str, what: str = "name") -> str:
    problem = name_problem(name, what)
    if problem is not None:  # sandbox choice, see common/names.py
        raise invalid(problem)
    return name


def _descending(raw: str | None) -> bool:
    """`order_by`: comma-separated fields, each optionally ` desc`; only created_at exists."""
    if not raw or not raw.strip():
        return False
    fields = raw.split(",")
    matches = [_ORDER_RE.fullmatch(f) for f in fields]
    if len(fields) != 1 or matches[0] is None:
        raise invalid(f"invalid order_by {raw!r}: the only sorting field is created_at")
    return (matches[0].group(1) or "").lower() == "desc"


def _count(raw: str | None, key: str) -> int | None:
    try:
        return whole_number(raw)
    except ValueError:
        raise invalid(f"{key} must be a non-negative integer") from None


_MODELS = COHERE_PREFIX + "/finetuning/finetuned-models"
_MODEL = _MODELS + r"/(?P<id>[^/]+)"

ROUTES: tuple[tuple[re.Pattern[str], dict[str, Handler]], ...] = (
    (re.compile(_MODELS), {"GET": CohereApi.list_models, "POST": CohereApi.create_model}),
    (
        re.compile(_MODEL),
        {
            "GET": CohereApi.get_model,
            "PATCH": CohereApi.update_model,
            "DELETE": CohereApi.delete_model,
        },
    ),
    (re.compile(_MODEL + "/events"), {"GET": CohereApi.list_events}),
    (re.compile(_MODEL + "/training-step-metrics"), {"GET": CohereApi.list_step_metrics}),
    (
        re.compile(COHERE_PREFIX + "/datasets"),
        {"GET": CohereApi.list_datasets, "POST": CohereApi.create_dataset},
    ),
    (
        re.compile(COHERE_PREFIX + r"/datasets/(?P<id>[^/]+)"),
        {"GET": CohereApi.get_dataset, "DELETE": CohereApi.delete_dataset},
    ),
)
