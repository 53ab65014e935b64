"""The official `cloudflare` Python SDK, unchanged, against the sandbox: the wire reference."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.sandbox import DEFAULT_ACCOUNT_ID, DEFAULT_TOKEN
from reconciler.sandbox.server import SandboxServer
from reconciler.sandbox.store import SandboxLimits

cloudflare = pytest.importorskip("cloudflare")

ACCOUNT = DEFAULT_ACCOUNT_ID
MODEL = "@cf/mistral/mistral-7b-instruct-v0.2-lora"
FINETUNES_PATH = f"/client/v4/accounts/{ACCOUNT}/ai/finetunes"


@pytest.fixture(autouse=True)
def _no_ambient_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK reads these when an argument is absent; a developer's real ones must not leak in."""
    for name in (
        "CLOUDFLARE_API_TOKEN",
        "CLOUDFLARE_API_KEY",
        "CLOUDFLARE_EMAIL",
        "CLOUDFLARE_API_USER_SERVICE_KEY",
        "CLOUDFLARE_BASE_URL",
        "CLOUDFLARE_CUSTOM_HEADERS",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def sb(tmp_path: Path) -> Iterator[SandboxServer]:
    limits = SandboxLimits(max_asset_bytes=10_000)
    with SandboxServer(tmp_path / "data", limits=limits) as server:
        yield server


@pytest.fixture
def client(sb: SandboxServer) -> Iterator[Any]:
    with cloudflare.Cloudflare(api_token=DEFAULT_TOKEN, base_url=sb.cloudflare_base_url) as c:
        yield c


def test_create_then_list(client: Any, sb: SandboxServer) -> None:
    finetune = client.ai.finetunes.create(
        account_id=ACCOUNT, model=MODEL, name="sdk-bot", description="via the SDK"
    )
    assert finetune.name == "sdk-bot"
    assert finetune.model == MODEL
    assert finetune.public is False
    assert finetune.description == "via the SDK"
    assert finetune.created_at.tzinfo is not None  # the SDK parsed our timestamp
    listed = client.ai.finetunes.list(account_id=ACCOUNT)
    # The SDK types this result as one object; the API (and the sandbox) send an array,
    # which the SDK passes through as a list of parsed models.
    assert [(f.id, f.name) for f in listed] == [(finetune.id, "sdk-bot")]
    assert sb.request_log == [("POST", FINETUNES_PATH), ("GET", FINETUNES_PATH)]


def test_asset_uploads_from_a_path_and_from_bytes(
    client: Any, sb: SandboxServer, tmp_path: Path
) -> None:
    finetune = client.ai.finetunes.create(account_id=ACCOUNT, model=MODEL, name="sdk-assets")
    config = tmp_path / "adapter_config.json"
    config.write_bytes(b'{"model_type": "mistral", "r": 8}')
    weights = os.urandom(5000)
    first = client.ai.finetunes.assets.create(
        finetune.id, account_id=ACCOUNT, file=config, file_name="adapter_config.json"
    )
    second = client.ai.finetunes.assets.create(
        finetune.id,
        account_id=ACCOUNT,
        file=("adapter_model.safetensors", weights),
        file_name="adapter_model.safetensors",
    )
    assert first.success is True and second.success is True
    digests = {a.file_name: a.sha256 for a in sb.store.list_assets(finetune.id)}
    assert digests == {
        "adapter_config.json": hashlib.sha256(config.read_bytes()).hexdigest(),
        "adapter_model.safetensors": hashlib.sha256(weights).hexdigest(),
    }


def test_public_list_with_paging(client: Any) -> None:
    everything = [
        f.name for f in client.ai.finetunes.public.list(account_id=ACCOUNT, order_by="name")
    ]
    assert everything == sorted(everything) and len(everything) >= 4
    page = client.ai.finetunes.public.list(account_id=ACCOUNT, limit=2, offset=2, order_by="name")
    assert [f.name for f in page] == everything[2:4]
    assert all(f.public is True for f in page)


def test_bad_token_raises_authentication_error(sb: SandboxServer) -> None:
    bad = cloudflare.Cloudflare(api_token="not-the-token", base_url=sb.cloudflare_base_url)
    with bad, pytest.raises(cloudflare.AuthenticationError) as excinfo:
        bad.ai.finetunes.list(account_id=ACCOUNT)
    assert excinfo.value.status_code == 401
    assert "10000" in str(excinfo.value)
    assert "not-the-token" not in str(excinfo.value)
    assert sb.request_log == [("GET", FINETUNES_PATH)]  # 401 is not retried


def test_refusals_map_to_the_sdks_exceptions_without_retries(
    client: Any, sb: SandboxServer
) -> None:
    client.ai.finetunes.create(account_id=ACCOUNT, model=MODEL, name="once")
    with pytest.raises(cloudflare.BadRequestError, match="already exists"):
        client.ai.finetunes.create(account_id=ACCOUNT, model=MODEL, name="once")
    with pytest.raises(cloudflare.NotFoundError, match="not found"):
        client.ai.finetunes.assets.create(
            "no-such-finetune", account_id=ACCOUNT, file=b"{}", file_name="adapter_config.json"
        )
    assert [method for method, _ in sb.request_log] == ["POST", "POST", "POST"]


def test_oversize_asset_is_a_413_status_error(client: Any) -> None:
    finetune = client.ai.finetunes.create(account_id=ACCOUNT, model=MODEL, name="too-big")
    with pytest.raises(cloudflare.APIStatusError) as excinfo:
        client.ai.finetunes.assets.create(
            finetune.id,
            account_id=ACCOUNT,
            file=("adapter_model.safetensors", b"0" * 10_001),
            file_name="adapter_model.safetensors",
        )
    assert excinfo.value.status_code == 413
    assert "3006" in str(excinfo.value)


def test_legacy_email_and_key_credentials(sb: SandboxServer) -> None:
    with cloudflare.Cloudflare(
        api_email="me@example.com", api_key=DEFAULT_TOKEN, base_url=sb.cloudflare_base_url
    ) as legacy:
        created = legacy.ai.finetunes.create(account_id=ACCOUNT, model=MODEL, name="legacy")
        assert [f.name for f in legacy.ai.finetunes.list(account_id=ACCOUNT)] == [created.name]
