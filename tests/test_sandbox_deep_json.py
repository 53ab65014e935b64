"""The vLLM and Fireworks emulators read request bodies through the sandbox's one bounded JSON
reader: a body nested past its depth, or holding a lone surrogate, is the API's 400, not a 500."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reconciler.sandbox import DEFAULT_TOKEN
from reconciler.sandbox.server import SandboxServer

DEEP = b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}"
SURROGATE = b'{"lora_name": "\\ud800", "lora_path": "/x"}'


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SandboxServer]:
    with SandboxServer(tmp_path / "data") as served:
        yield served


@pytest.mark.parametrize("body", [DEEP, SURROGATE], ids=["deep", "lone surrogate"])
def test_vllm_answers_a_hostile_body_with_its_400(server: SandboxServer, body: bytes) -> None:
    answer = httpx.post(
        f"{server.url}/vllm/0/v1/load_lora_adapter",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 400, answer.text


@pytest.mark.parametrize("body", [DEEP, SURROGATE], ids=["deep", "lone surrogate"])
def test_fireworks_answers_a_hostile_body_with_its_400(server: SandboxServer, body: bytes) -> None:
    answer = httpx.post(
        f"{server.url}/fireworks/v1/accounts/reconciler-sandbox/models",
        content=body,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {DEFAULT_TOKEN}"},
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == 3  # INVALID_ARGUMENT
