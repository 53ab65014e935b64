"""The Cohere sandbox over real HTTP on 127.0.0.1: every route and error, on a hand-driven clock."""

from __future__ import annotations

import itertools
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sandbox_clients import client_for as cloudflare_or_cohere_client
from sandbox_clients import serve_process

from reconciler.sandbox import DEFAULT_TOKEN
from reconciler.sandbox.cloudflare.store import SandboxLimits
from reconciler.sandbox.cohere.training import (
    QUEUED_SECONDS,
    STEP_SECONDS,
    VALIDATION_QUEUED_SECONDS,
    VALIDATION_SECONDS,
)
from reconciler.sandbox.common.clock import ManualClock
from reconciler.sandbox.server import SandboxServer

MODELS = "/v1/finetuning/finetuned-models"
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
START = 1_760_000_000.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=START)


@pytest.fixture
def sb(tmp_path: Path, clock: ManualClock) -> Iterator[SandboxServer]:
    with SandboxServer(tmp_path / "data", clock=clock) as server:
        yield server


@pytest.fixture
def api(sb: SandboxServer) -> Iterator[httpx.Client]:
    with client_for(sb) as client:
        yield client


def client_for(sb: SandboxServer, token: str | None = DEFAULT_TOKEN) -> httpx.Client:
    return cloudflare_or_cohere_client(sb, token, cohere=True)


def body(response: httpx.Response, status: int) -> Any:
    """The JSON body, checked to come with the expected status; errors carry a message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    data = response.json()
    if status >= 400:
        assert set(data) == {"message"} and isinstance(data["message"], str), data
    return data


def message(response: httpx.Response, status: int) -> str:
    text: str = body(response, status)["message"]
    return text


# --- datasets helpers -------------------------------------------------------------------


def conversation(i: int, *, roles: tuple[str, ...] = ("System", "User", "Chatbot")) -> str:
    contents = {"System": "You answer briefly.", "User": f"question {i}?", "Chatbot": f"answer {i}"}
    return json.dumps({"messages": [{"role": r, "content": contents.get(r, "x")} for r in roles]})


def jsonl(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def chat_data(n: int = 4) -> bytes:
    return jsonl([conversation(i) for i in range(n)])


def upload(
    api: httpx.Client,
    data: bytes,
    *,
    name: str = "support chats",
    kind: str = "chat-finetune-input",
    eval_data: bytes | None = None,
    **params: str,
) -> httpx.Response:
    files = {"data": ("train.jsonl", data, "application/octet-stream")}
    if eval_data is not None:
        files["eval_data"] = ("eval.jsonl", eval_data, "application/octet-stream")
    return api.post("/v1/datasets", params={"name": name, "type": kind, **params}, files=files)


def dataset(api: httpx.Client, ident: str) -> dict[str, Any]:
    found: dict[str, Any] = body(api.get(f"/v1/datasets/{ident}"), 200)["dataset"]
    return found


def validated(
    api: httpx.Client, clock: ManualClock, data: bytes | None = None, **kwargs: Any
) -> str:
    ident: str = body(upload(api, chat_data() if data is None else data, **kwargs), 200)["id"]
    clock.advance(VALIDATION_SECONDS)
    assert dataset(api, ident)["validation_status"] == "validated"
    return ident


def settings(dataset_id: str, **hyper: Any) -> dict[str, Any]:
    chosen: dict[str, Any] = {
        "base_model": {"base_type": "BASE_TYPE_CHAT"},
        "dataset_id": dataset_id,
    }
    if hyper:
        chosen["hyperparameters"] = hyper
    return chosen


def create(api: httpx.Client, name: str, dataset_id: str, **hyper: Any) -> httpx.Response:
    return api.post(MODELS, json={"name": name, "settings": settings(dataset_id, **hyper)})


def created(api: httpx.Client, name: str, dataset_id: str, **hyper: Any) -> dict[str, Any]:
    model: dict[str, Any] = body(create(api, name, dataset_id, **hyper), 200)["finetuned_model"]
    return model


def model(api: httpx.Client, ident: str) -> dict[str, Any]:
    found: dict[str, Any] = body(api.get(f"{MODELS}/{ident}"), 200)["finetuned_model"]
    return found


def events(api: httpx.Client, ident: str, **params: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = body(api.get(f"{MODELS}/{ident}/events", params=params), 200)[
        "events"
    ]
    return found


def metrics(api: httpx.Client, ident: str, **params: Any) -> dict[str, Any]:
    found: dict[str, Any] = body(
        api.get(f"{MODELS}/{ident}/training-step-metrics", params=params), 200
    )
    return found


def all_pages(api: httpx.Client, path: str, key: str, **params: Any) -> list[list[Any]]:
    pages, token = [], ""
    while True:
        page = body(api.get(path, params={**params, "page_token": token}), 200)
        pages.append(page[key])
        token = page["next_page_token"]
        if token == "":
            return pages
        assert len(pages) < 50, "paging never ends"


# Ten steps: 4 conversations, 1 epoch, batch 16 is below the minimum, which is 10.
TRAINING_SECONDS = QUEUED_SECONDS + 10 * STEP_SECONDS


# --- authentication and routing ---------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", MODELS),
        ("POST", MODELS),
        ("GET", f"{MODELS}/abc"),
        ("PATCH", f"{MODELS}/abc"),
        ("DELETE", f"{MODELS}/abc"),
        ("GET", f"{MODELS}/abc/events"),
        ("GET", f"{MODELS}/abc/training-step-metrics"),
        ("GET", "/v1/datasets"),
        ("POST", "/v1/datasets"),
        ("GET", "/v1/datasets/abc"),
        ("DELETE", "/v1/datasets/abc"),
    ],
)
def test_every_route_refuses_a_wrong_token_with_401_json(
    sb: SandboxServer, method: str, path: str
) -> None:
    with client_for(sb, token="not-the-token") as wrong:
        assert message(wrong.request(method, path), 401) == "invalid api token"
    with client_for(sb, token=None) as anonymous:
        assert message(anonymous.request(method, path), 401) == "no api key supplied"


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_bearer_scheme_is_case_insensitive(sb: SandboxServer, scheme: str) -> None:
    with httpx.Client(base_url=sb.url, verify=False) as raw:
        response = raw.get(MODELS, headers={"Authorization": f"{scheme} {DEFAULT_TOKEN}"})
    assert body(response, 200)["finetuned_models"] == []


@pytest.mark.parametrize(
    "header", [f"Basic {DEFAULT_TOKEN}", DEFAULT_TOKEN, f"Bearer  {DEFAULT_TOKEN}", "Bearer a b"]
)
def test_malformed_authorization_is_401_invalid_token(sb: SandboxServer, header: str) -> None:
    with httpx.Client(base_url=sb.url, verify=False) as raw:
        assert message(raw.get(MODELS, headers={"Authorization": header}), 401) == (
            "invalid api token"
        )


def test_every_accepted_token_sees_the_same_organization(tmp_path: Path) -> None:
    with (
        SandboxServer(tmp_path / "d", tokens=("first-token", "second-token")) as sb,
        client_for(sb, "first-token") as first,
        client_for(sb, "second-token") as second,
    ):
        a = body(first.get(MODELS), 200)
        b = body(second.get(MODELS), 200)
    assert a == b == {"finetuned_models": [], "next_page_token": "", "total_size": 0}


def test_unknown_route_is_404_json_and_wrong_method_is_405_json(api: httpx.Client) -> None:
    assert message(api.get("/v1/finetuning/unknown"), 404) == (
        "route not found: GET /v1/finetuning/unknown"
    )
    assert "not allowed" in message(api.put(MODELS), 405)
    assert "not allowed" in message(api.post("/v1/datasets/some-id"), 405)


def test_cloudflare_paths_still_answer_the_cloudflare_envelope(sb: SandboxServer) -> None:
    with httpx.Client(base_url=sb.url, verify=False) as raw:
        response = raw.get("/client/v4/zones", headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"})
    assert response.json()["errors"] == [{"code": 7000, "message": "No route for that URI"}]


def test_unexpected_failure_is_a_500_message_without_traceback(
    sb: SandboxServer, api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode() -> list[object]:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(sb.cohere_store, "list_models", explode)
    response = api.get(MODELS)
    assert message(response, 500) == "internal server error"
    assert "fire" not in response.text


# --- datasets ---------------------------------------------------------------------------


def test_dataset_validates_asynchronously_queued_processing_validated(
    api: httpx.Client, clock: ManualClock
) -> None:
    created_id = body(upload(api, chat_data(3), eval_data=chat_data(1)), 200)
    assert set(created_id) == {"id"}
    ident = created_id["id"]
    assert re.fullmatch(r"support-chats-[a-z0-9]{6}", ident)
    first = dataset(api, ident)
    assert first["validation_status"] == "queued"
    assert first["name"] == "support chats"
    assert first["dataset_type"] == "chat-finetune-input"
    assert TIMESTAMP.fullmatch(first["created_at"]) and first["updated_at"] == first["created_at"]
    assert "validation_error" not in first and "metrics" not in first
    clock.advance(VALIDATION_QUEUED_SECONDS)
    assert dataset(api, ident)["validation_status"] == "processing"
    clock.advance(VALIDATION_SECONDS - VALIDATION_QUEUED_SECONDS)
    done = dataset(api, ident)
    assert done["validation_status"] == "validated"
    assert done["updated_at"] > done["created_at"]
    assert [(p["name"], p["num_rows"]) for p in done["dataset_parts"]] == [
        ("train.jsonl", 3),
        ("eval.jsonl", 1),
    ]
    counts = done["metrics"]["finetune_dataset_metrics"]
    assert (counts["train_examples"], counts["eval_examples"], counts["total_examples"]) == (
        3,
        1,
        4,
    )
    assert counts["chat_data_metrics"] == {
        "num_train_turns": 3,
        "num_eval_turns": 1,
        "preamble": "You answer briefly.",
    }


def failed_with(api: httpx.Client, clock: ManualClock, data: bytes, **kwargs: Any) -> str:
    ident = body(upload(api, data, **kwargs), 200)["id"]
    clock.advance(VALIDATION_SECONDS)
    found = dataset(api, ident)
    assert found["validation_status"] == "failed", found
    reason: str = found["validation_error"]
    return reason


def test_too_few_conversations_fail_validation_with_the_count(
    api: httpx.Client, clock: ManualClock
) -> None:
    reason = failed_with(api, clock, chat_data(1))
    assert reason == "a chat dataset needs at least 2 valid conversations, found 1"


def test_malformed_jsonl_fails_validation_naming_the_line(
    api: httpx.Client, clock: ManualClock
) -> None:
    data = jsonl([conversation(0), "{not json", conversation(2)])
    assert failed_with(api, clock, data).startswith("line 2 of data: not valid JSON")


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (conversation(0, roles=("User", "Assistant")), "message 2 has role 'Assistant'"),
        (conversation(0, roles=("System", "User")), "at least one User and one Chatbot"),
        (json.dumps({"text": "no messages"}), "'messages' must be a non-empty list"),
        ("[1, 2]", "not a JSON object"),
    ],
)
def test_a_bad_conversation_fails_validation_with_its_reason(
    api: httpx.Client, clock: ManualClock, line: str, reason: str
) -> None:
    found = failed_with(api, clock, jsonl([conversation(0), conversation(1), line]))
    assert found.startswith("line 3 of data: ") and reason in found


def test_skip_malformed_input_drops_bad_lines_with_warnings(
    api: httpx.Client, clock: ManualClock
) -> None:
    data = jsonl([conversation(0), "oops", conversation(2), conversation(3, roles=("User",))])
    ident = body(upload(api, data, skip_malformed_input="true"), 200)["id"]
    clock.advance(VALIDATION_SECONDS)
    found = dataset(api, ident)
    assert found["validation_status"] == "validated"
    assert found["dataset_parts"][0]["num_rows"] == 2
    assert [w.split(":")[0] for w in found["validation_warnings"]] == [
        "dropped line 2 of data",
        "dropped line 4 of data",
    ]


def test_empty_eval_file_fails_validation(api: httpx.Client, clock: ManualClock) -> None:
    reason = failed_with(api, clock, chat_data(2), eval_data=b"\n")
    assert reason == "eval_data contains no valid examples"


def rerank_line(i: int) -> str:
    return json.dumps(
        {"query": f"q{i}", "relevant_passages": [f"yes {i}"], "hard_negatives": [f"no {i}"]}
    )


def test_reranker_dataset_needs_256_unique_queries(api: httpx.Client, clock: ManualClock) -> None:
    kind = "reranker-finetune-input"
    short = jsonl([rerank_line(i) for i in range(255)] + [rerank_line(0)])
    assert failed_with(api, clock, short, kind=kind) == (
        "a reranker dataset needs at least 256 unique queries, found 255"
    )
    ident = validated(api, clock, jsonl([rerank_line(i) for i in range(256)]), kind=kind)
    counts = dataset(api, ident)["metrics"]["finetune_dataset_metrics"]
    assert counts["reranker_data_metrics"]["num_train_hard_negatives"] == 256
    both = json.dumps({"query": "q", "relevant_passages": ["p"], "hard_negatives": ["p"]})
    assert "both as relevant and as a hard negative" in failed_with(
        api, clock, jsonl([both]), kind=kind
    )


def classify_lines(counts: dict[str, int], multi: bool = False) -> list[str]:
    return [
        json.dumps({"text": f"{label} text {i}", "label": [label] if multi else label})
        for label, n in counts.items()
        for i in range(n)
    ]


def test_classification_drops_rare_labels_and_needs_40_examples(
    api: httpx.Client, clock: ManualClock
) -> None:
    kind = "single-label-classification-finetune-input"
    data = jsonl(classify_lines({"billing": 20, "tech": 20, "rare": 3}))
    ident = validated(api, clock, data, kind=kind)
    found = dataset(api, ident)
    assert found["validation_warnings"] == [
        "label 'rare' has 3 examples (fewer than 5) and was dropped"
    ]
    labels = found["metrics"]["finetune_dataset_metrics"]["classify_data_metrics"]
    assert [m["label"] for m in labels["label_metrics"]] == ["billing", "tech"]
    too_few = jsonl(classify_lines({"billing": 20, "tech": 19}))
    assert "found 39 examples and 2 such labels" in failed_with(api, clock, too_few, kind=kind)
    multi = jsonl(classify_lines({"a": 25, "b": 25}, multi=True))
    validated(api, clock, multi, kind="multi-label-classification-finetune-input")


@pytest.mark.parametrize(
    ("params", "status", "expected"),
    [
        ({"type": "chat-finetune-input"}, 400, "invalid request: name is required"),
        ({"name": "x" * 50, "type": "chat-finetune-input"}, 400, "less than 50 characters"),
        ({"name": "n"}, 400, "invalid dataset type ''"),
        ({"name": "n", "type": "chat"}, 400, "invalid dataset type 'chat'"),
        ({"name": "n", "type": "embed-result"}, 422, "cannot be uploaded"),
    ],
)
def test_dataset_create_refuses_bad_query_parameters(
    api: httpx.Client, params: dict[str, str], status: int, expected: str
) -> None:
    files = {"data": ("d.jsonl", chat_data(), "application/octet-stream")}
    assert expected in message(api.post("/v1/datasets", params=params, files=files), status)


def test_dataset_name_of_49_characters_is_accepted(api: httpx.Client) -> None:
    assert body(upload(api, chat_data(), name="x" * 49), 200)["id"].startswith("x" * 40 + "-")


def test_dataset_create_needs_a_multipart_data_part(api: httpx.Client) -> None:
    params = {"name": "n", "type": "chat-finetune-input"}
    assert "multipart/form-data" in message(
        api.post("/v1/datasets", params=params, content=chat_data()), 400
    )
    wrong_part = {"file": ("d.jsonl", chat_data(), "application/octet-stream")}
    assert message(api.post("/v1/datasets", params=params, files=wrong_part), 400) == (
        "invalid request: missing file part 'data'"
    )


def test_oversize_dataset_is_413(tmp_path: Path) -> None:
    limits = SandboxLimits(max_dataset_bytes=1000)
    with SandboxServer(tmp_path / "d", limits=limits) as sb, client_for(sb) as api:
        assert "at most 1000 bytes" in message(upload(api, b"x" * 1001), 413)
        assert body(upload(api, chat_data(4)[:1000]), 200)["id"]
        assert list((tmp_path / "d" / "tmp").iterdir()) == []  # no spooled leftovers


def test_dataset_list_filters_and_delete_answers_empty_json(
    api: httpx.Client, clock: ManualClock
) -> None:
    chat = validated(api, clock, name="chat one")
    clock.advance(1)
    bad = body(upload(api, chat_data(1), name="bad one"), 200)["id"]
    clock.advance(VALIDATION_SECONDS)
    listed = body(api.get("/v1/datasets"), 200)["datasets"]
    assert [d["id"] for d in listed] == [chat, bad]
    failed = body(api.get("/v1/datasets", params={"validationStatus": "failed"}), 200)
    assert [d["id"] for d in failed["datasets"]] == [bad]
    typed = body(api.get("/v1/datasets", params={"datasetType": "embed-input"}), 200)
    assert typed == {"datasets": []}
    paged = body(api.get("/v1/datasets", params={"limit": "1.0", "offset": "1"}), 200)
    assert [d["id"] for d in paged["datasets"]] == [bad]
    response = api.delete(f"/v1/datasets/{bad}")
    assert body(response, 200) == {} and response.content == b"{}"
    assert message(api.get(f"/v1/datasets/{bad}"), 404) == f"dataset {bad} not found"
    assert message(api.delete(f"/v1/datasets/{bad}"), 404) == f"dataset {bad} not found"
    assert [d["id"] for d in body(api.get("/v1/datasets"), 200)["datasets"]] == [chat]


def test_a_dataset_is_deleted_30_days_after_its_creation(
    sb: SandboxServer, api: httpx.Client, clock: ManualClock
) -> None:
    # api-notes.md: "datasets are deleted 30 days after creation".
    old = validated(api, clock, name="old one")
    clock.advance(29 * 86400)
    young = validated(api, clock, name="young one")
    assert created(api, "still-fine", old)["name"] == "still-fine"
    clock.advance(86400 - VALIDATION_SECONDS)  # `old` is now exactly 30 days old
    assert message(api.get(f"/v1/datasets/{old}"), 404) == f"dataset {old} not found"
    assert [d["id"] for d in body(api.get("/v1/datasets"), 200)["datasets"]] == [young]
    assert message(create(api, "too-late", old), 404) == f"dataset {old} not found"
    assert message(api.delete(f"/v1/datasets/{old}"), 404) == f"dataset {old} not found"
    assert not (sb.data_dir / "cohere" / "datasets" / old).exists()  # its files went too
    assert dataset(api, young)["validation_status"] == "validated"


# --- fine-tuned models: create and validate ---------------------------------------------


def test_create_answers_the_model_queued_with_defaults_filled_in(
    api: httpx.Client, clock: ManualClock
) -> None:
    ds = validated(api, clock)
    found = created(api, "support-bot", ds)
    assert uuid.UUID(found["id"]).version == 4
    assert found["name"] == "support-bot"
    assert found["status"] == "STATUS_QUEUED"
    uuid.UUID(found["creator_id"]), uuid.UUID(found["organization_id"])
    assert TIMESTAMP.fullmatch(found["created_at"]) and found["updated_at"] == found["created_at"]
    assert "completed_at" not in found
    assert found["settings"] == {
        "base_model": {"base_type": "BASE_TYPE_CHAT"},
        "dataset_id": ds,
        "hyperparameters": {
            "train_epochs": 1,
            "learning_rate": 0.01,
            "train_batch_size": 16,
            "early_stopping_threshold": 0.001,
            "early_stopping_patience": 10,
        },
    }
    assert model(api, found["id"]) == found


@pytest.mark.parametrize(
    ("hyper", "expected"),
    [
        ({"train_epochs": 0}, "train_epochs must be between 1 and 10, got 0"),
        ({"train_epochs": 11}, "train_epochs must be between 1 and 10, got 11"),
        ({"train_epochs": 1.5}, "train_epochs must be an integer"),
        ({"learning_rate": 0.00004}, "learning_rate must be between 5e-05 and 0.1"),
        ({"learning_rate": 0.11}, "learning_rate must be between 5e-05 and 0.1, got 0.11"),
        ({"learning_rate": "0.01"}, "learning_rate must be a number"),
        ({"train_batch_size": 1}, "train_batch_size must be between 2 and 16, got 1"),
        ({"train_batch_size": 17}, "train_batch_size must be between 2 and 16, got 17"),
        ({"early_stopping_threshold": 0.0009}, "early_stopping_threshold must be between"),
        ({"early_stopping_threshold": 0.2}, "early_stopping_threshold must be between"),
        ({"early_stopping_patience": -1}, "early_stopping_patience must be between 0 and 10"),
        ({"early_stopping_patience": 11}, "early_stopping_patience must be between 0 and 10"),
        ({"early_stopping_patience": True}, "early_stopping_patience must be a number"),
        ({"lora_rank": 0}, "lora_rank must be at least 1"),
        ({"lora_target_modules": "ALL"}, "invalid settings.hyperparameters.lora_target_modules"),
        ({"epochs": 2}, "unknown field settings.hyperparameters.epochs"),
    ],
)
def test_hyperparameters_outside_the_published_ranges_are_400(
    api: httpx.Client, clock: ManualClock, hyper: dict[str, Any], expected: str
) -> None:
    ds = validated(api, clock)
    text = message(create(api, "m", ds, **hyper), 400)
    assert text.startswith("invalid request: ") and expected in text


def test_hyperparameters_at_the_bounds_are_accepted(api: httpx.Client, clock: ManualClock) -> None:
    ds = validated(api, clock)
    low = {"train_epochs": 1, "learning_rate": 0.00005, "train_batch_size": 2,
           "early_stopping_threshold": 0.001, "early_stopping_patience": 0}  # fmt: skip
    high = {"train_epochs": 10, "learning_rate": 0.1, "train_batch_size": 16,
            "early_stopping_threshold": 0.1, "early_stopping_patience": 10}  # fmt: skip
    for bounds in (low, high):
        assert created(api, "m", ds, **bounds)["settings"]["hyperparameters"] == bounds


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"settings": {}}, "name is required"),
        ({"name": "m"}, "settings is required"),
        ({"name": "m", "settings": {"dataset_id": "d"}}, "settings.base_model is required"),
        (
            {"name": "m", "settings": {"base_model": {}, "dataset_id": "d"}},
            "settings.base_model.base_type is required",
        ),
        (
            {"name": "m", "settings": {"base_model": {"base_type": "BASE_TYPE_GENERATIVE"}}},
            "BASE_TYPE_GENERATIVE is deprecated",
        ),
        (
            {"name": "m", "settings": {"base_model": {"base_type": "BASE_TYPE_IMAGE"}}},
            "invalid settings.base_model.base_type 'BASE_TYPE_IMAGE'",
        ),
        (
            {"name": "m", "settings": {"base_model": {"base_type": "BASE_TYPE_CHAT"}}},
            "settings.dataset_id must be a non-empty string",
        ),
    ],
)
def test_create_refuses_missing_or_invalid_fields(
    api: httpx.Client, payload: dict[str, Any], expected: str
) -> None:
    assert expected in message(api.post(MODELS, json=payload), 400)


@pytest.mark.parametrize("raw", [b"{", b"[]", b"\xff"])
def test_create_refuses_a_body_that_is_not_a_json_object(api: httpx.Client, raw: bytes) -> None:
    assert "invalid request: body" in message(api.post(MODELS, content=raw), 400)


def test_create_needs_an_existing_validated_dataset_of_the_right_type(
    api: httpx.Client, clock: ManualClock
) -> None:
    assert message(create(api, "m", "no-such-ds"), 404) == "dataset no-such-ds not found"
    pending = body(upload(api, chat_data()), 200)["id"]
    assert "its validation_status is queued" in message(create(api, "m", pending), 400)
    broken = failed_with(api, clock, chat_data(1))
    broken_id = body(api.get("/v1/datasets", params={"validationStatus": "failed"}), 200)[
        "datasets"
    ][0]["id"]
    assert message(create(api, "m", broken_id), 400).endswith(f"failed: {broken}")
    rerank = validated(
        api, clock, jsonl([rerank_line(i) for i in range(256)]), kind="reranker-finetune-input"
    )
    assert message(create(api, "m", rerank), 400) == (
        f"invalid request: dataset {rerank} has type reranker-finetune-input,"
        " but BASE_TYPE_CHAT needs chat-finetune-input"
    )
    response = api.post(
        MODELS,
        json={
            "name": "r",
            "settings": {**settings(rerank), "base_model": {"base_type": "BASE_TYPE_RERANK"}},
        },
    )
    assert body(response, 200)["finetuned_model"]["status"] == "STATUS_QUEUED"


def test_classification_model_reports_multi_label_from_its_dataset(
    api: httpx.Client, clock: ManualClock
) -> None:
    multi = validated(
        api,
        clock,
        jsonl(classify_lines({"a": 25, "b": 25}, multi=True)),
        kind="multi-label-classification-finetune-input",
    )
    chosen = {"base_model": {"base_type": "BASE_TYPE_CLASSIFICATION"}, "dataset_id": multi}
    found = body(api.post(MODELS, json={"name": "c", "settings": chosen}), 200)["finetuned_model"]
    assert found["settings"]["multi_label"] is True


# --- training on the clock --------------------------------------------------------------


def test_status_moves_queued_finetuning_ready_with_events_and_metrics(
    api: httpx.Client, clock: ManualClock
) -> None:
    ds = validated(api, clock)
    ident = created(api, "bot", ds)["id"]
    assert model(api, ident)["status"] == "STATUS_QUEUED"
    assert metrics(api, ident) == {"step_metrics": [], "next_page_token": ""}
    clock.advance(QUEUED_SECONDS)
    assert model(api, ident)["status"] == "STATUS_FINETUNING"
    clock.advance(3 * STEP_SECONDS)
    partial = metrics(api, ident)["step_metrics"]
    assert [m["step_number"] for m in partial] == [0, 1, 2]
    clock.advance(TRAINING_SECONDS)
    done = model(api, ident)
    assert done["status"] == "STATUS_READY"
    assert TIMESTAMP.fullmatch(done["completed_at"])
    assert done["updated_at"] == done["completed_at"] > done["created_at"]
    history = events(api, ident)
    assert [e["status"] for e in history] == ["STATUS_QUEUED", "STATUS_FINETUNING", "STATUS_READY"]
    assert uuid.UUID(history[0]["user_id"]) and "user_id" not in history[2]  # system-made
    assert history[-1]["created_at"] == done["completed_at"]
    assert [e["created_at"] for e in history] == sorted(e["created_at"] for e in history)
    steps = metrics(api, ident)["step_metrics"]
    assert [m["step_number"] for m in steps] == list(range(10))
    assert steps[:3] == partial  # already-reported steps never change
    losses = [m["metrics"]["cross_entropy"] for m in steps]
    assert losses[-1] < losses[0] / 3  # loss falls...
    gaps = [b - a for a, b in itertools.pairwise(losses)]
    assert len({round(g, 6) for g in gaps}) == len(gaps)  # ...with noise, not a formula
    assert set(steps[0]["metrics"]) == {
        "accuracy",
        "cross_entropy",
        "generation_accuracy",
        "generation_cross_entropy",
        "step",
    }


def test_metrics_are_deterministic_from_the_model_id(tmp_path: Path) -> None:
    clock = ManualClock(start=START)
    with SandboxServer(tmp_path / "d", clock=clock) as sb, client_for(sb) as api:
        ident = created(api, "bot", validated(api, clock))["id"]
        clock.advance(TRAINING_SECONDS)
        first = metrics(api, ident)
        second = metrics(api, ident)
        other = created(api, "other", validated(api, clock, name="second"))["id"]
        clock.advance(TRAINING_SECONDS)
        different = metrics(api, other)
    assert first == second
    values = [m["metrics"]["cross_entropy"] for m in first["step_metrics"]]
    assert values != [m["metrics"]["cross_entropy"] for m in different["step_metrics"]]


def test_a_dataset_named_fail_training_makes_the_run_fail_half_way(
    api: httpx.Client, clock: ManualClock
) -> None:
    ds = validated(api, clock, name="demo fail-training set")
    ident = created(api, "doomed", ds)["id"]
    clock.advance(QUEUED_SECONDS + 3 * STEP_SECONDS)
    assert model(api, ident)["status"] == "STATUS_FINETUNING"
    clock.advance(TRAINING_SECONDS)
    found = model(api, ident)
    assert found["status"] == "STATUS_FAILED"
    assert "completed_at" in found
    assert [e["status"] for e in events(api, ident)][-1] == "STATUS_FAILED"
    assert [m["step_number"] for m in metrics(api, ident)["step_metrics"]] == [0, 1, 2, 3, 4]


def test_events_and_metrics_of_an_unknown_model_are_404(api: httpx.Client) -> None:
    for suffix in ("", "/events", "/training-step-metrics"):
        assert message(api.get(f"{MODELS}/nope{suffix}"), 404) == "finetuned model nope not found"


# --- PATCH ------------------------------------------------------------------------------


def test_patch_with_only_a_new_name_renames_without_retraining(
    api: httpx.Client, clock: ManualClock
) -> None:
    ds = validated(api, clock)
    before = created(api, "old-name", ds)
    ident = before["id"]
    clock.advance(TRAINING_SECONDS)
    ready = model(api, ident)
    clock.advance(1)
    # Echo the settings as GET shows them (defaults filled in): that is no change either.
    patched = body(
        api.patch(f"{MODELS}/{ident}", json={"name": "new-name", "settings": ready["settings"]}),
        200,
    )["finetuned_model"]
    assert patched["name"] == "new-name"
    assert patched["status"] == "STATUS_READY"
    assert patched["completed_at"] == ready["completed_at"]
    assert patched["updated_at"] > ready["updated_at"]
    # ...and so is the settings form that create was given (defaults left out).
    again = api.patch(f"{MODELS}/{ident}", json={"name": "newer", "settings": settings(ds)})
    assert body(again, 200)["finetuned_model"]["status"] == "STATUS_READY"
    assert len(events(api, ident)) == 3
    assert len(metrics(api, ident)["step_metrics"]) == 10


def test_patch_with_changed_settings_retrains(api: httpx.Client, clock: ManualClock) -> None:
    ds = validated(api, clock)
    ident = created(api, "bot", ds)["id"]
    clock.advance(TRAINING_SECONDS)
    old_page = metrics(api, ident, page_size=4)
    assert old_page["next_page_token"]
    clock.advance(1)
    response = api.patch(
        f"{MODELS}/{ident}", json={"name": "bot", "settings": settings(ds, train_epochs=3)}
    )
    patched = body(response, 200)["finetuned_model"]
    assert patched["status"] == "STATUS_QUEUED"
    assert patched["settings"]["hyperparameters"]["train_epochs"] == 3
    assert "completed_at" not in patched
    assert [e["status"] for e in events(api, ident)] == [
        "STATUS_QUEUED", "STATUS_FINETUNING", "STATUS_READY", "STATUS_QUEUED",
    ]  # fmt: skip
    assert metrics(api, ident)["step_metrics"] == []  # a new run starts from step 0
    stale = api.get(
        f"{MODELS}/{ident}/training-step-metrics",
        params={"page_token": old_page["next_page_token"]},
    )
    assert message(stale, 400) == "invalid request: page_token does not belong to this request"
    clock.advance(TRAINING_SECONDS)
    assert model(api, ident)["status"] == "STATUS_READY"
    assert [e["status"] for e in events(api, ident)][-2:] == ["STATUS_FINETUNING", "STATUS_READY"]


def test_patch_can_retrain_a_failed_model_on_a_new_dataset(
    api: httpx.Client, clock: ManualClock
) -> None:
    ident = created(api, "m", validated(api, clock, name="fail-training"))["id"]
    clock.advance(TRAINING_SECONDS)
    assert model(api, ident)["status"] == "STATUS_FAILED"
    good = validated(api, clock, name="good data")
    body(api.patch(f"{MODELS}/{ident}", json={"name": "m", "settings": settings(good)}), 200)
    clock.advance(TRAINING_SECONDS)
    assert model(api, ident)["status"] == "STATUS_READY"


def test_patch_errors(api: httpx.Client, clock: ManualClock) -> None:
    ds = validated(api, clock)
    ident = created(api, "m", ds)["id"]
    payload = {"name": "m", "settings": settings(ds)}
    assert message(api.patch(f"{MODELS}/nope", json=payload), 404) == (
        "finetuned model nope not found"
    )
    assert "settings is required" in message(
        api.patch(f"{MODELS}/{ident}", json={"name": "m"}), 400
    )
    changed = {"name": "m", "settings": settings(ds, train_batch_size=99)}
    assert "train_batch_size" in message(api.patch(f"{MODELS}/{ident}", json=changed), 400)
    # A rename still works once the training dataset is gone; a retrain on it does not.
    body(api.delete(f"/v1/datasets/{ds}"), 200)
    body(api.patch(f"{MODELS}/{ident}", json={**payload, "name": "renamed"}), 200)
    retrain = {"name": "m", "settings": settings(ds, train_epochs=2)}
    assert message(api.patch(f"{MODELS}/{ident}", json=retrain), 404) == f"dataset {ds} not found"


# --- DELETE -----------------------------------------------------------------------------


def test_delete_answers_empty_json_and_the_model_is_gone(
    api: httpx.Client, clock: ManualClock
) -> None:
    ident = created(api, "m", validated(api, clock))["id"]
    response = api.delete(f"{MODELS}/{ident}")
    assert body(response, 200) == {}
    assert message(api.get(f"{MODELS}/{ident}"), 404) == f"finetuned model {ident} not found"
    assert message(api.delete(f"{MODELS}/{ident}"), 404) == f"finetuned model {ident} not found"
    assert body(api.get(MODELS), 200)["total_size"] == 0


# --- paging -----------------------------------------------------------------------------


def test_list_pages_with_opaque_tokens_in_either_order(
    api: httpx.Client, clock: ManualClock
) -> None:
    ds = validated(api, clock)
    ids = []
    for i in range(7):
        ids.append(created(api, f"m{i}", ds)["id"])
        clock.advance(1)
    pages = all_pages(api, MODELS, "finetuned_models", page_size=3)
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [m["id"] for p in pages for m in p] == ids
    first = body(api.get(MODELS, params={"page_size": 3}), 200)
    assert first["total_size"] == 7
    token = first["next_page_token"]
    assert not token.isdigit() and token != "3" and len(token) > 10
    newest = all_pages(api, MODELS, "finetuned_models", page_size=3, order_by="created_at desc")
    assert [m["id"] for p in newest for m in p] == ids[::-1]
    upper = all_pages(api, MODELS, "finetuned_models", page_size=4, order_by="CREATED_AT ASC")
    assert [m["id"] for p in upper for m in p] == ids


def test_page_size_zero_means_fifty(api: httpx.Client, clock: ManualClock) -> None:
    ds = validated(api, clock)
    for i in range(3):
        created(api, f"m{i}", ds)
    page = body(api.get(MODELS, params={"page_size": 0}), 200)
    assert len(page["finetuned_models"]) == 3 and page["next_page_token"] == ""


def test_a_model_created_between_pages_is_neither_repeated_nor_skipped(
    api: httpx.Client, clock: ManualClock
) -> None:
    ds = validated(api, clock)
    ids = [created(api, f"m{i}", ds)["id"] for i in range(3)]
    first = body(api.get(MODELS, params={"page_size": 2}), 200)
    api.delete(f"{MODELS}/{ids[0]}")
    ids.append(created(api, "late", ds)["id"])
    rest = body(
        api.get(MODELS, params={"page_size": 2, "page_token": first["next_page_token"]}), 200
    )
    assert [m["id"] for m in first["finetuned_models"] + rest["finetuned_models"]] == ids


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"page_size": -1}, "invalid page_size '-1'"),
        ({"page_size": "ten"}, "invalid page_size 'ten'"),
        ({"page_token": "3"}, "invalid page_token"),
        ({"page_token": "not a token at all"}, "invalid page_token"),
        ({"order_by": "name"}, "the only sorting field is created_at"),
        ({"order_by": "created_at,name"}, "the only sorting field is created_at"),
        ({"order_by": "created_at sideways"}, "the only sorting field is created_at"),
    ],
)
def test_bad_paging_parameters_are_400(
    api: httpx.Client, params: dict[str, Any], expected: str
) -> None:
    assert expected in message(api.get(MODELS, params=params), 400)


def test_tampered_or_foreign_tokens_are_refused(api: httpx.Client, clock: ManualClock) -> None:
    ds = validated(api, clock)
    for i in range(3):
        created(api, f"m{i}", ds)
    token = body(api.get(MODELS, params={"page_size": 1}), 200)["next_page_token"]
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert message(api.get(MODELS, params={"page_token": tampered}), 400) == (
        "invalid request: invalid page_token"
    )
    desc = {"page_token": token, "order_by": "created_at desc"}
    assert "does not belong" in message(api.get(MODELS, params=desc), 400)


def test_events_and_metrics_page_across_several_pages(
    api: httpx.Client, clock: ManualClock
) -> None:
    ds = validated(api, clock)
    ident = created(api, "m", ds)["id"]
    clock.advance(TRAINING_SECONDS)
    api.patch(f"{MODELS}/{ident}", json={"name": "m", "settings": settings(ds, train_epochs=2)})
    clock.advance(TRAINING_SECONDS)
    path = f"{MODELS}/{ident}/events"
    pages = all_pages(api, path, "events", page_size=2)
    assert [len(p) for p in pages] == [2, 2, 2]
    assert [e["status"] for p in pages for e in p] == [
        "STATUS_QUEUED", "STATUS_FINETUNING", "STATUS_READY",
    ] * 2  # fmt: skip
    assert body(api.get(path, params={"page_size": 2}), 200)["total_size"] == 6
    newest = all_pages(api, path, "events", page_size=4, order_by="created_at desc")
    assert [e["created_at"] for p in newest for e in p] == sorted(
        (e["created_at"] for p in pages for e in p), reverse=True
    )
    steps = all_pages(api, f"{MODELS}/{ident}/training-step-metrics", "step_metrics", page_size=4)
    assert [len(p) for p in steps] == [4, 4, 2]
    assert [m["step_number"] for p in steps for m in p] == list(range(10))


# --- the server -------------------------------------------------------------------------


def test_state_and_page_tokens_survive_a_restart(tmp_path: Path) -> None:
    clock = ManualClock(start=START)
    data_dir = tmp_path / "data"
    with SandboxServer(data_dir, clock=clock) as sb, client_for(sb) as api:
        ds = validated(api, clock)
        ids = [created(api, f"m{i}", ds)["id"] for i in range(3)]
        clock.advance(QUEUED_SECONDS)
        before = model(api, ids[0])
        token = body(api.get(MODELS, params={"page_size": 2}), 200)["next_page_token"]
    assert before["status"] == "STATUS_FINETUNING"
    clock.advance(TRAINING_SECONDS)  # time passes while the sandbox is down
    with SandboxServer(data_dir, clock=clock) as sb, client_for(sb) as api:
        after = model(api, ids[0])
        assert after["status"] == "STATUS_READY"
        assert {k: after[k] for k in ("id", "name", "settings", "created_at")} == {
            k: before[k] for k in ("id", "name", "settings", "created_at")
        }
        rest = body(api.get(MODELS, params={"page_size": 2, "page_token": token}), 200)
        assert [m["id"] for m in rest["finetuned_models"]] == ids[2:]
        assert dataset(api, ds)["validation_status"] == "validated"
        assert [e["status"] for e in events(api, ids[0])][-1] == "STATUS_READY"


def test_clock_speed_runs_training_fast_on_the_real_clock(tmp_path: Path) -> None:
    # 10,000 simulated seconds per real one: the whole lifecycle takes milliseconds.
    with SandboxServer(tmp_path / "d", clock_speed=10_000) as sb, client_for(sb) as api:
        ident = body(upload(api, chat_data()), 200)["id"]
        deadline = 200
        while dataset(api, ident)["validation_status"] != "validated":
            deadline -= 1
            assert deadline, "validation never finished"
        found = created(api, "fast", ident)
        while model(api, found["id"])["status"] != "STATUS_READY":
            deadline -= 1
            assert deadline, "training never finished"
        assert len(metrics(api, found["id"])["step_metrics"]) == 10
    with pytest.raises(ValueError, match="clock speed must be a positive number"):
        SandboxServer(tmp_path / "d", clock_speed=0)
    with pytest.raises(ValueError, match="give the clock its speed"):
        SandboxServer(tmp_path / "d", clock=ManualClock(), clock_speed=5)


def test_serve_prints_both_apis_on_one_line(tmp_path: Path) -> None:
    with serve_process(tmp_path / "data", ", clock_speed=60") as served:
        match = re.search(r"Cohere API at (http://127\.0\.0\.1:\d+)", served.line)
        assert match, served.line
        assert "clock x60" in served.line
        with httpx.Client(base_url=match.group(1), verify=False) as api:
            response = api.get(MODELS, headers={"Authorization": "Bearer serve-token"})
        assert body(response, 200)["total_size"] == 0
    assert served.returncode == 0, served.err
    assert served.out == ""
