"""The official `cloudflare` Python SDK, unchanged, against the sandbox: the wire reference."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Cli
from sandbox_clients import clock_on

from reconciler.sandbox import DEFAULT_ACCOUNT_ID, DEFAULT_TOKEN
from reconciler.sandbox.cloudflare.store import SandboxLimits
from reconciler.sandbox.server import SandboxServer

cloudflare = pytest.importorskip("cloudflare")

ACCOUNT = DEFAULT_ACCOUNT_ID
OTHER_ACCOUNT = "fedcba9876543210fedcba9876543210"
MODEL = "@cf/mistral/mistral-7b-instruct-v0.2-lora"
# The bundled catalogue's model with a past planned_deprecation_date (2026-05-30).
RETIRED = "@hf/mistral/mistral-7b-instruct-v0.2"
# The sandboxes here run on a day before any model's deprecation date, so what they serve does
# not change with the day the tests run; the deprecation tests move their own clocks.
BEFORE = "2026-05-01"
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
    with SandboxServer(tmp_path / "data", limits=limits, clock=clock_on(BEFORE)) as server:
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
    assert everything == sorted(everything) and len(everything) == 3
    page = client.ai.finetunes.public.list(account_id=ACCOUNT, limit=2, offset=1, order_by="name")
    assert [f.name for f in page] == everything[1:3]
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


# --- ai.run ------------------------------------------------------------------------------


@pytest.fixture
def wire(sb: SandboxServer) -> Iterator[tuple[Any, list[bytes]]]:
    """A client whose requests' raw paths (as sent, before any decoding) are recorded."""
    sent: list[bytes] = []
    hooks = {"request": [lambda r: sent.append(r.url.raw_path)]}
    with (
        httpx.Client(event_hooks=hooks) as http,
        cloudflare.Cloudflare(
            api_token=DEFAULT_TOKEN, base_url=sb.cloudflare_base_url, http_client=http
        ) as c,
    ):
        yield c, sent


def test_run_sends_the_model_as_one_encoded_segment_and_gets_the_answer(
    wire: tuple[Any, list[bytes]], sb: SandboxServer
) -> None:
    client, sent = wire
    result = client.ai.run(MODEL, account_id=ACCOUNT, prompt="Where is my parcel?")
    # SDK 5.9.0 percent-encodes the slashes (path_template quotes `/` in a segment).
    segment = "@cf%2Fmistral%2Fmistral-7b-instruct-v0.2-lora"
    assert sent == [f"/client/v4/accounts/{ACCOUNT}/ai/run/{segment}".encode()]
    # The SDK hands the text-generation result back as a plain dict.
    assert result["response"].startswith(
        "[mistral-7b-instruct-v0.2-lora] Thanks for asking about parcel. "
    )
    assert result["usage"]["prompt_tokens"] == 4
    assert sb.request_log == [("POST", f"/client/v4/accounts/{ACCOUNT}/ai/run/{MODEL}")]


def test_run_with_lora_by_name_and_id_through_the_sdk(client: Any) -> None:
    finetune = client.ai.finetunes.create(account_id=ACCOUNT, model=MODEL, name="sdk-support")
    for file_name, data in (
        ("adapter_config.json", b'{"model_type": "mistral", "r": 8}'),
        ("adapter_model.safetensors", os.urandom(256)),
    ):
        client.ai.finetunes.assets.create(
            finetune.id, account_id=ACCOUNT, file=(file_name, data), file_name=file_name
        )
    by_name = client.ai.run(MODEL, account_id=ACCOUNT, prompt="Cancel my order", lora="sdk-support")
    by_id = client.ai.run(MODEL, account_id=ACCOUNT, prompt="Cancel my order", lora=finetune.id)
    assert by_name == by_id
    assert by_name["response"].startswith("[sdk-support] Thanks for asking about Cancel and order.")
    public = client.ai.run(
        "@cf/mistral/mistral-7b-instruct-v0.1",
        account_id=ACCOUNT,
        prompt="Cancel my order",
        lora="cf-public-magicoder",
    )
    assert public["response"].startswith("[cf-public-magicoder] ")
    chat = client.ai.run(
        MODEL,
        account_id=ACCOUNT,
        messages=[{"role": "user", "content": "Cancel my order"}],
        lora="sdk-support",
        max_tokens=4,
    )
    assert chat["response"] == "[sdk-support] Thanks for asking"


def test_run_refusals_map_to_the_sdks_exceptions_without_retries(
    client: Any, sb: SandboxServer
) -> None:
    with pytest.raises(cloudflare.NotFoundError, match="5033"):
        client.ai.run(MODEL, account_id=ACCOUNT, prompt="hi", lora="no-such-adapter")
    with pytest.raises(cloudflare.APIStatusError, match="5005") as excinfo:
        client.ai.run(
            "@cf/meta/llama-3.1-8b-instruct-fast",
            account_id=ACCOUNT,
            prompt="hi",
            lora="cf-public-magicoder",
        )
    assert excinfo.value.status_code == 405
    with pytest.raises(cloudflare.BadRequestError, match="3030"):
        client.ai.run(MODEL, account_id=ACCOUNT, prompt="hi", lora="cf-public-magicoder")
    with pytest.raises(cloudflare.BadRequestError, match="5007"):
        client.ai.run("@cf/meta/llama-9-1t-instruct", account_id=ACCOUNT, prompt="hi")
    assert len(sb.request_log) == 4


def test_public_list_pages_through_the_whole_catalogue(client: Any) -> None:
    pages: list[list[str]] = []
    offset = 0
    while True:
        page = client.ai.finetunes.public.list(
            account_id=ACCOUNT, limit=2, offset=offset, order_by="name"
        )
        names = [f.name for f in page]
        if not names:
            break
        pages.append(names)
        offset += len(names)
        assert len(pages) < 10, "paging does not end"
    assert [len(p) for p in pages] == [2, 1]
    flat = [name for page in pages for name in page]
    assert flat == sorted(flat) and len(set(flat)) == len(flat)
    assert set(flat) == {
        "cf-public-magicoder",
        "cf-public-cnn-summarization",
        "cf-public-jigsaw-classification",
    }
    newest_first = client.ai.finetunes.public.list(
        account_id=ACCOUNT, limit=2, offset=0, order_by="created_at DESC"
    )
    assert [f.name for f in newest_first] == [
        "cf-public-cnn-summarization",
        "cf-public-jigsaw-classification",
    ]


# --- ai.models.list (the catalogue) ------------------------------------------------------

MODELS_PATH = f"/client/v4/accounts/{ACCOUNT}/ai/models/search"
LORA_MODELS = {
    "@cf/mistral/mistral-7b-instruct-v0.2-lora",
    "@cf/google/gemma-2b-it-lora",
    "@cf/google/gemma-7b-it-lora",
    "@cf/meta-llama/llama-2-7b-chat-hf-lora",
    "@cf/mistral/mistral-7b-instruct-v0.1",
    "@hf/mistral/mistral-7b-instruct-v0.2",
    "@hf/google/gemma-7b-it",
    "@cf/meta/llama-3.2-11b-vision-instruct",
    "@cf/google/gemma-3-12b-it",
    "@cf/mistralai/mistral-small-3.1-24b-instruct",
    "@cf/qwen/qwen2.5-coder-32b-instruct",
    "@cf/qwen/qwq-32b",
}


def lora(record: dict[str, Any]) -> bool:
    return {"property_id": "lora", "value": "true"} in record["properties"]


def test_models_list_with_search_through_the_sdk(client: Any, sb: SandboxServer) -> None:
    page = client.ai.models.list(account_id=ACCOUNT, search="mistral")
    records = list(page)  # the SDK follows `page` until an empty one
    names = {r["name"] for r in records}
    assert "@cf/mistral/mistral-7b-instruct-v0.2-lora" in names
    assert "@cf/mistralai/mistral-small-3.1-24b-instruct" in names
    assert all("mistral" in (r["name"] + r["description"]).lower() for r in records)
    assert "@cf/qwen/qwq-32b" not in names
    assert page.result_info is not None and page.result_info.page == 1
    assert sb.request_log == [("GET", MODELS_PATH)] * 2  # one page, then an empty one


def test_models_list_pages_through_the_whole_catalogue(client: Any, sb: SandboxServer) -> None:
    records = list(client.ai.models.list(account_id=ACCOUNT))
    names = [r["name"] for r in records]
    assert len(names) == len(set(names)) > 20  # more than one default page
    assert {n for n, r in zip(names, records, strict=True) if lora(r)} == LORA_MODELS
    # A page of 20 by default, then the rest, then an empty page that stops the SDK.
    assert len(sb.request_log) == 3
    for record in records:
        assert set(record) == {"id", "source", "name", "description", "task", "tags", "properties"}
        assert uuid.UUID(record["id"])
        assert isinstance(record["source"], int)
        assert set(record["task"]) == {"id", "name", "description"}
        for item in record["properties"]:
            assert set(item) == {"property_id", "value"}


def test_models_list_filters_through_the_sdk(client: Any) -> None:
    embeddings = list(client.ai.models.list(account_id=ACCOUNT, task="Text Embeddings"))
    assert "@cf/baai/bge-base-en-v1.5" in {r["name"] for r in embeddings}
    assert {r["task"]["name"] for r in embeddings} == {"Text Embeddings"}
    meta = list(client.ai.models.list(account_id=ACCOUNT, author="meta", per_page=2))
    assert meta and all(r["name"].split("/")[1] == "meta" for r in meta)
    hf = list(client.ai.models.list(account_id=ACCOUNT, source=2))
    assert {r["name"] for r in hf} == {
        "@hf/mistral/mistral-7b-instruct-v0.2",
        "@hf/google/gemma-7b-it",
    }
    stable = list(client.ai.models.list(account_id=ACCOUNT, hide_experimental=True))
    assert all({"property_id": "beta", "value": "true"} not in r["properties"] for r in stable)
    assert len(stable) < len(list(client.ai.models.list(account_id=ACCOUNT)))


# --- accounts: only those the sandbox serves ----------------------------------------------


def error_codes(exc: Any) -> list[int]:
    """The codes of the envelope an SDK exception carries as its body (the `errors` list)."""
    body = exc.body
    errors = body.get("errors") if isinstance(body, dict) else body
    return [e["code"] for e in errors]


def test_an_account_the_sandbox_does_not_serve_is_permission_denied(
    client: Any, sb: SandboxServer
) -> None:
    client.ai.finetunes.create(account_id=ACCOUNT, model=MODEL, name="mine")
    calls = (
        lambda: client.ai.finetunes.list(account_id=OTHER_ACCOUNT),
        lambda: client.ai.finetunes.create(account_id=OTHER_ACCOUNT, model=MODEL, name="theirs"),
        lambda: list(client.ai.models.list(account_id=OTHER_ACCOUNT)),
        lambda: client.ai.run(MODEL, account_id=OTHER_ACCOUNT, prompt="hi"),
        lambda: client.ai.finetunes.public.list(account_id=OTHER_ACCOUNT),
    )
    for call in calls:
        with pytest.raises(cloudflare.PermissionDeniedError) as excinfo:
            call()
        assert excinfo.value.status_code == 403
        assert error_codes(excinfo.value) == [10000]
        assert "Authentication error" in str(excinfo.value)
    # 403 is not retried: one request each, after the create on the served account
    assert len(sb.request_log) == 1 + len(calls)
    assert [f.name for f in client.ai.finetunes.list(account_id=ACCOUNT)] == ["mine"]


def test_a_sandbox_serving_two_accounts_keeps_them_apart(tmp_path: Path) -> None:
    with (
        SandboxServer(tmp_path / "data", accounts=[ACCOUNT, OTHER_ACCOUNT]) as sb,
        cloudflare.Cloudflare(api_token=DEFAULT_TOKEN, base_url=sb.cloudflare_base_url) as c,
    ):
        c.ai.finetunes.create(account_id=ACCOUNT, model=MODEL, name="bot")
        c.ai.finetunes.create(account_id=OTHER_ACCOUNT, model=MODEL, name="bot")
        for account in (ACCOUNT, OTHER_ACCOUNT):
            assert [f.name for f in c.ai.finetunes.list(account_id=account)] == ["bot"]
        with pytest.raises(cloudflare.PermissionDeniedError):
            c.ai.finetunes.list(account_id="0" * 32)


def start_sandbox_command(data: Path, *arguments: str) -> tuple[subprocess.Popen[str], list[str]]:
    """`reconciler sandbox --port 0 --data DATA ARGUMENTS...` in a new process; returns it and
    the lines it printed up to the one saying where it listens."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "sandbox", "--port", "0", "--data", str(data),
         *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 30
    while not lines or "Cloudflare API at " not in lines[-1]:
        line = proc.stdout.readline()
        if not line or time.monotonic() > deadline:
            proc.kill()
            proc.communicate()
            raise AssertionError(f"the sandbox did not start: {lines}")
        lines.append(line)
    return proc, lines


def test_the_sandbox_command_serves_the_accounts_given_with_account(tmp_path: Path) -> None:
    proc, lines = start_sandbox_command(
        tmp_path / "d", "--account", OTHER_ACCOUNT, "--account", "a" * 32
    )
    try:
        assert (
            f"Serving Cloudflare accounts {OTHER_ACCOUNT}, {'a' * 32} (any other gets 403): "
            f"export CLOUDFLARE_ACCOUNT_ID={OTHER_ACCOUNT}\n"
        ) in lines
        base = lines[-1].split("Cloudflare API at ")[1].split(",")[0]
        with cloudflare.Cloudflare(api_token=DEFAULT_TOKEN, base_url=base) as c:
            for account in (OTHER_ACCOUNT, "a" * 32):
                assert c.ai.finetunes.list(account_id=account) == []
            # the documented default is not served when --account names others
            with pytest.raises(cloudflare.PermissionDeniedError) as excinfo:
                c.ai.finetunes.list(account_id=ACCOUNT)
            assert error_codes(excinfo.value) == [10000]
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.communicate(timeout=30)


def test_the_sandbox_command_serves_the_documented_account_by_default(tmp_path: Path) -> None:
    proc, lines = start_sandbox_command(tmp_path / "d")
    try:
        assert f"export CLOUDFLARE_ACCOUNT_ID={ACCOUNT}\n" in lines[-2]
        base = lines[-1].split("Cloudflare API at ")[1].split(",")[0]
        with cloudflare.Cloudflare(api_token=DEFAULT_TOKEN, base_url=base) as c:
            assert c.ai.finetunes.list(account_id=ACCOUNT) == []
            with pytest.raises(cloudflare.PermissionDeniedError):
                c.ai.finetunes.list(account_id=OTHER_ACCOUNT)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.communicate(timeout=30)


@pytest.mark.parametrize("account", ["0123", ACCOUNT.upper(), "g" * 32])
def test_the_sandbox_command_refuses_a_malformed_account(
    cli: Cli, tmp_path: Path, account: str
) -> None:
    result = cli("sandbox", "--account", account, "--data", tmp_path / "d")
    assert result.exit_code == 1
    assert "Invalid value for --account" in result.stderr
    assert "32 lowercase hex characters" in result.stderr
    assert not (tmp_path / "d").exists()  # refused before anything is made


# --- deprecated models, by the sandbox's clock --------------------------------------------


def test_a_deprecated_model_in_models_list_with_and_without_include_deprecated(
    tmp_path: Path,
) -> None:
    clock = clock_on("2026-05-29")
    day = 24 * 3600
    with (
        SandboxServer(tmp_path / "data", clock=clock) as sb,
        cloudflare.Cloudflare(api_token=DEFAULT_TOKEN, base_url=sb.cloudflare_base_url) as c,
    ):

        def names(**query: Any) -> set[str]:
            return {r["name"] for r in c.ai.models.list(account_id=ACCOUNT, **query)}

        every_day = names()
        assert RETIRED in every_day  # the day before its date
        clock.advance(day)  # 2026-05-30, its date
        assert names() == every_day - {RETIRED}
        assert names(include_deprecated=False) == every_day - {RETIRED}
        assert names(include_deprecated=True) == every_day
        clock.advance(92 * day)  # 2026-08-30: three months on, the last day it is listed
        assert names(include_deprecated=True) == every_day
        clock.advance(day)  # 2026-08-31
        assert names(include_deprecated=True) == every_day - {RETIRED}
        assert names() == every_day - {RETIRED}


def test_create_and_run_on_a_retired_model_raise(tmp_path: Path) -> None:
    clock = clock_on("2026-05-29")
    with (
        SandboxServer(tmp_path / "data", clock=clock) as sb,
        cloudflare.Cloudflare(api_token=DEFAULT_TOKEN, base_url=sb.cloudflare_base_url) as c,
    ):
        made = c.ai.finetunes.create(account_id=ACCOUNT, model=RETIRED, name="in-time")
        assert made.model == RETIRED
        assert c.ai.run(RETIRED, account_id=ACCOUNT, prompt="hi")["response"]
        clock.advance(24 * 3600)  # 2026-05-30
        sb.request_log.clear()
        with pytest.raises(cloudflare.BadRequestError) as created:
            c.ai.finetunes.create(account_id=ACCOUNT, model=RETIRED, name="too-late")
        assert error_codes(created.value) == [5028]
        assert "This model was deprecated on 2026-05-30" in str(created.value)
        with pytest.raises(cloudflare.BadRequestError) as ran:
            c.ai.run(RETIRED, account_id=ACCOUNT, prompt="hi")
        assert error_codes(ran.value) == [5028]
        assert "Please use an alternative model" in str(ran.value)
        with pytest.raises(cloudflare.BadRequestError, match="5028"):
            c.ai.run(RETIRED, account_id=ACCOUNT, prompt="hi", lora="cf-public-magicoder")
        assert len(sb.request_log) == 3  # a 400: no retries
        # other bases are untouched
        assert c.ai.finetunes.create(account_id=ACCOUNT, model=MODEL, name="elsewhere")
