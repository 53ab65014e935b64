"""The official `cohere` SDK, unchanged, against the sandbox: what a new user would write."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.sandbox import DEFAULT_TOKEN
from reconciler.sandbox.cohere.training import QUEUED_SECONDS, STEP_SECONDS, VALIDATION_SECONDS
from reconciler.sandbox.common.clock import ManualClock
from reconciler.sandbox.server import SandboxServer

cohere = pytest.importorskip("cohere")
finetuning = pytest.importorskip("cohere.finetuning")

TRAINING_SECONDS = QUEUED_SECONDS + 10 * STEP_SECONDS


def chat_jsonl(n: int) -> bytes:
    lines = [
        json.dumps(
            {
                "messages": [
                    {"role": "System", "content": "You are a support agent."},
                    {"role": "User", "content": f"Where is order {i}?"},
                    {"role": "Chatbot", "content": f"Order {i} ships tomorrow."},
                ]
            }
        )
        for i in range(n)
    ]
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sb(tmp_path: Path, clock: ManualClock) -> Iterator[SandboxServer]:
    with SandboxServer(tmp_path / "data", clock=clock) as server:
        yield server


def client(sb: SandboxServer, cls: Any = None, key: str = DEFAULT_TOKEN) -> Any:
    # As documented for users: base_url is the host root, the SDK adds /v1/... itself.
    # verify=False only skips loading CA certificates (plain HTTP on loopback).
    return (cls or cohere.Client)(
        api_key=key, base_url=sb.cohere_base_url, httpx_client=httpx.Client(verify=False)
    )


def chat_settings(dataset_id: str, **hyper: Any) -> Any:
    return finetuning.Settings(
        base_model=finetuning.BaseModel(base_type="BASE_TYPE_CHAT"),
        dataset_id=dataset_id,
        hyperparameters=finetuning.Hyperparameters(**hyper) if hyper else None,
    )


@pytest.mark.parametrize("client_class", ["Client", "ClientV2"])
def test_the_sdk_runs_the_whole_fine_tuning_flow(
    sb: SandboxServer, clock: ManualClock, client_class: str
) -> None:
    co = client(sb, getattr(cohere, client_class))
    # Datasets: a file object for `data`, a (name, bytes) tuple for `eval_data`.
    created = co.datasets.create(
        name="support chats",
        type="chat-finetune-input",
        data=io.BytesIO(chat_jsonl(4)),
        eval_data=("eval.jsonl", chat_jsonl(1)),
    )
    assert created.id.startswith("support-chats-")
    assert co.datasets.get(created.id).dataset.validation_status == "queued"
    clock.advance(VALIDATION_SECONDS)
    waited = co.wait(created)  # the SDK's own poller, done at once: already validated
    assert waited.dataset.validation_status == "validated"
    assert [p.num_rows for p in waited.dataset.dataset_parts] == [4, 1]
    assert waited.dataset.metrics.finetune_dataset_metrics.train_examples == 4

    # Fine-tuned models: create three, then page through them two at a time.
    made = [
        co.finetuning.create_finetuned_model(
            request=finetuning.FinetunedModel(name=f"bot-{i}", settings=chat_settings(created.id))
        ).finetuned_model
        for i in range(3)
    ]
    assert [m.status for m in made] == ["STATUS_QUEUED"] * 3
    assert made[0].settings.hyperparameters.train_batch_size == 16  # defaults filled in
    seen, token = [], None
    while True:
        page = co.finetuning.list_finetuned_models(page_size=2, page_token=token)
        assert page.total_size == 3
        seen.append([m.name for m in page.finetuned_models])
        if not page.next_page_token:
            break
        token = page.next_page_token
    assert seen == [["bot-0", "bot-1"], ["bot-2"]]
    newest = co.finetuning.list_finetuned_models(order_by="created_at desc")
    assert [m.id for m in newest.finetuned_models] == [m.id for m in reversed(made)]

    ident = made[0].id
    clock.advance(TRAINING_SECONDS)
    ready = co.finetuning.get_finetuned_model(ident).finetuned_model
    assert ready.status == "STATUS_READY" and ready.completed_at is not None
    events = co.finetuning.list_events(ident)
    assert [e.status for e in events.events] == [
        "STATUS_QUEUED",
        "STATUS_FINETUNING",
        "STATUS_READY",
    ]
    assert events.total_size == 3
    first = co.finetuning.list_training_step_metrics(ident, page_size=6)
    rest = co.finetuning.list_training_step_metrics(ident, page_token=first.next_page_token)
    steps = first.step_metrics + rest.step_metrics
    assert [s.step_number for s in steps] == list(range(10))
    assert steps[-1].metrics["cross_entropy"] < steps[0].metrics["cross_entropy"]

    # Update: a rename keeps the trained model; new hyperparameters retrain it.
    renamed = co.finetuning.update_finetuned_model(
        ident, name="support-bot", settings=ready.settings
    ).finetuned_model
    assert (renamed.name, renamed.status) == ("support-bot", "STATUS_READY")
    retrained = co.finetuning.update_finetuned_model(
        ident, name="support-bot", settings=chat_settings(created.id, train_epochs=2)
    ).finetuned_model
    assert retrained.status == "STATUS_QUEUED"
    assert retrained.settings.hyperparameters.train_epochs == 2

    # Delete: the SDK gets {} back; afterwards the model is a typed 404.
    assert co.finetuning.delete_finetuned_model(ident) == {}
    with pytest.raises(cohere.NotFoundError) as gone:
        co.finetuning.get_finetuned_model(ident)
    assert gone.value.body == {"message": f"finetuned model {ident} not found"}
    co.datasets.delete(created.id)
    assert [d.id for d in co.datasets.list().datasets] == []


def test_sdk_wait_raises_the_validation_error_of_a_failed_dataset(
    sb: SandboxServer, clock: ManualClock
) -> None:
    co = client(sb)
    created = co.datasets.create(
        name="too small", type="chat-finetune-input", data=io.BytesIO(chat_jsonl(1))
    )
    clock.advance(VALIDATION_SECONDS)
    with pytest.raises(Exception, match="needs at least 2 valid conversations, found 1"):
        co.wait(created)


def test_sdk_raises_typed_errors_from_json_bodies(sb: SandboxServer, clock: ManualClock) -> None:
    with pytest.raises(cohere.UnauthorizedError) as unauthorized:
        client(sb, key="wrong-key").finetuning.list_finetuned_models()
    assert unauthorized.value.body == {"message": "invalid api token"}
    co = client(sb)
    dataset = co.datasets.create(name="d", type="chat-finetune-input", data=chat_jsonl(3))
    clock.advance(VALIDATION_SECONDS)
    with pytest.raises(cohere.BadRequestError) as bad:
        co.finetuning.create_finetuned_model(
            request=finetuning.FinetunedModel(
                name="m", settings=chat_settings(dataset.id, learning_rate=0.5)
            )
        )
    assert "learning_rate must be between 5e-05 and 0.1, got 0.5" in bad.value.body["message"]
    with pytest.raises(cohere.NotFoundError):
        co.datasets.get("no-such-dataset")
    with pytest.raises(cohere.NotFoundError):
        co.finetuning.list_events("no-such-model")


def test_the_sdk_finds_the_sandbox_through_co_api_url_and_co_api_key(sb: SandboxServer) -> None:
    # The SDK reads CO_API_URL once, when `cohere` is imported (it is a default argument), so
    # it must be in the environment before the import: a fresh process shows the real use.
    code = (
        "import cohere; co = cohere.Client(); page = co.finetuning.list_finetuned_models();"
        " print(page.total_size, repr(page.next_page_token))"
    )
    env = {**os.environ, "CO_API_URL": sb.cohere_base_url, "CO_API_KEY": DEFAULT_TOKEN}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0 ''"
    assert ("GET", "/v1/finetuning/finetuned-models") in sb.request_log
