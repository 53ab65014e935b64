"""What a provider is told to act on is one resource: an id from a lockfile (edited in a pull
request) or from an answer goes into a request's path as one segment, whatever it holds."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from conftest import CANARY_TOKEN, Cli
from test_cohere import applied, cohere, config  # noqa: F401 (fixtures)

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
