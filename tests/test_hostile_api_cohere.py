"""What a provider is told to act on is one resource: an id from a lockfile (edited in a pull
request) or from an answer goes into a request's path as one segment, whatever it holds."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import CANARY_TOKEN, Cli
from test_cohere import applied, cohere, config  # noqa: F401 (fixtures)
from test_hostile_api import Honest, Lie, Lying, lying
from werkzeug.wrappers import Request

from reconciler.sandbox.server import SandboxServer

MODELS = "/v1/finetuning/finetuned-models"


def status(server: SandboxServer, ident: str) -> str:
    answer = httpx.get(
        f"{server.url}{MODELS}/{ident}", headers={"Authorization": f"Bearer {CANARY_TOKEN}"}
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["finetuned_model"]["status"])


def test_an_id_with_dot_segments_deletes_nothing_else(
    cli: Cli,
    cohere: SandboxServer,  # noqa: F811
    config: Path,  # noqa: F811
) -> None:
    applied(cli, config)
    lock_path = config.with_suffix(".lock")
    lock = json.loads(lock_path.read_text())
    guarded = lock["finetunes"]["legal-rerank"]["id"]  # prevent_destroy: true
    # an edit a review can miss: support-chat's id now walks to legal-rerank's
    lock["finetunes"]["support-chat"]["id"] = f"x/../{guarded}"
    lock_path.write_text(json.dumps(lock, indent=2))
    text = config.read_text()
    config.write_text(
        text[: text.index("  - name: support-chat")] + text[text.index("  - name: legal-rerank") :]
    )
    cli("apply", "-c", config, "--prune", "--auto-approve")
    assert [m for m, _ in cohere.request_log].count("DELETE") == 1  # it was sent, to no one
    assert status(cohere, guarded) != "STATUS_DELETED"


@pytest.fixture
def hostile_cohere(
    cohere: SandboxServer,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Lying]:
    with lying(cohere.url) as (double, url):
        monkeypatch.setenv("CO_API_URL", url)
        monkeypatch.setenv("RECONCILER_HTTP_BACKOFF", "0")
        yield double


def edited(key: str, edit: Callable[[Any], None]) -> Lie:
    def lie(request: Request, honest: Honest) -> tuple[int, Any]:
        status, body = honest()
        edit(body[key])
        return status, body

    return lie


@pytest.mark.parametrize(
    ("method", "path", "lie", "expected"),
    [
        (
            "POST",
            "/v1/datasets",
            lambda request, honest: (200, {"id": "ds\nfake"}),
            'upload dataset support-chat.jsonl: the answer names the dataset id "ds\\nfake"',
        ),
        (
            "POST",
            MODELS,
            edited(
                "finetuned_model",
                lambda m: m["settings"]["hyperparameters"].update(train_epochs={"n": 1}),
            ),
            'create finetuned model support-chat: the answer\'s finetune "support-chat" has '
            "fields.hyperparameters.train_epochs of a shape the lockfile does not take",
        ),
        (
            "POST",
            MODELS,
            edited("finetuned_model", lambda m: m["settings"].update(dataset_id="x\ty")),
            'create finetuned model support-chat: the answer names the dataset id "x\\ty"',
        ),
    ],
    ids=["dataset-id", "hyperparameters", "model-dataset-id"],
)
def test_a_cohere_answer_the_lockfile_would_refuse_records_nothing(
    cli: Cli,
    hostile_cohere: Lying,
    config: Path,  # noqa: F811
    method: str,
    path: str,
    lie: Lie,
    expected: str,
) -> None:
    hostile_cohere.lie(method, path, lie)
    result = cli("apply", "-c", config, "--auto-approve")
    assert result.exit_code == 1, result.output
    assert expected in result.output
    lock = config.with_suffix(".lock")
    recorded = json.loads(lock.read_text()) if lock.exists() else {"finetunes": {}}
    assert recorded["finetunes"] == {}, recorded
    hostile_cohere.truth()
    assert cli("apply", "-c", config, "--auto-approve").exit_code == 0
    assert cli("plan", "-c", config, "--detailed-exitcode").exit_code == 0
