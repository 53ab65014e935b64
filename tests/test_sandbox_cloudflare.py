"""The Cloudflare sandbox over real HTTP on 127.0.0.1: every route and every error it answers."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sandbox_clients import client_for, clock_on, serve_process

from reconciler.sandbox import DEFAULT_ACCOUNT_ID, DEFAULT_TOKEN
from reconciler.sandbox.cloudflare.store import SandboxLimits
from reconciler.sandbox.common.defaults import RESERVED_NAME_PREFIX
from reconciler.sandbox.server import SandboxServer

ACCOUNT = DEFAULT_ACCOUNT_ID
OTHER_ACCOUNT = "fedcba9876543210fedcba9876543210"
MODEL = "@cf/mistral/mistral-7b-instruct-v0.2-lora"
FINETUNES = f"/accounts/{ACCOUNT}/ai/finetunes"
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def envelope(response: httpx.Response, status: int) -> dict[str, Any]:
    """The body, checked to be Cloudflare's envelope with the expected status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert isinstance(body["success"], bool)
    assert body["success"] is (status < 400)
    assert isinstance(body["errors"], list)
    assert isinstance(body["messages"], list)
    if not body["success"]:
        assert body["errors"], body
        assert body["result"] is None
        for error in body["errors"]:
            assert isinstance(error["code"], int)
            assert isinstance(error["message"], str)
    return body


def codes(body: dict[str, Any]) -> list[int]:
    return [e["code"] for e in body["errors"]]


def create(api: httpx.Client, name: str, account: str = ACCOUNT, **extra: Any) -> httpx.Response:
    return api.post(
        f"/accounts/{account}/ai/finetunes", json={"model": MODEL, "name": name, **extra}
    )


def created(api: httpx.Client, name: str, account: str = ACCOUNT) -> dict[str, Any]:
    result: dict[str, Any] = envelope(create(api, name, account), 200)["result"]
    return result


def upload(
    api: httpx.Client,
    finetune_id: str,
    file_name: str,
    data: bytes,
    *,
    part: str = "file",
    account: str = ACCOUNT,
) -> httpx.Response:
    return api.post(
        f"/accounts/{account}/ai/finetunes/{finetune_id}/finetune-assets",
        data={"file_name": file_name},
        files={part: ("upload.bin", data, "application/octet-stream")},
    )


# --- create and list ---------------------------------------------------------------------


def test_create_returns_the_finetune_with_uuid_and_millisecond_timestamps(
    api: httpx.Client,
) -> None:
    body = envelope(create(api, "support-bot", description="first try"), 200)
    result = body["result"]
    assert uuid.UUID(result["id"]).version == 4
    assert result["name"] == "support-bot"
    assert result["model"] == MODEL
    assert result["description"] == "first try"
    assert result["public"] is False
    assert TIMESTAMP.fullmatch(result["created_at"])
    assert result["modified_at"] == result["created_at"]


def test_create_keeps_public_flag_and_leaves_description_null_when_absent(
    api: httpx.Client,
) -> None:
    result = envelope(create(api, "shared", public=True), 200)["result"]
    assert result["public"] is True
    assert result["description"] is None


def listed(finetune: dict[str, Any]) -> dict[str, Any]:
    """What the account's list shows of a finetune as create returned it: all but `public`."""
    return {k: v for k, v in finetune.items() if k != "public"}


def test_list_returns_the_accounts_finetunes_in_creation_order(api: httpx.Client) -> None:
    first = created(api, "alpha")
    second = created(api, "beta")
    created(api, "elsewhere", account=OTHER_ACCOUNT)
    body = envelope(api.get(FINETUNES), 200)
    assert body["result"] == [listed(first), listed(second)]
    assert "result_info" not in body  # no paging on this list
    other = envelope(api.get(f"/accounts/{OTHER_ACCOUNT}/ai/finetunes"), 200)["result"]
    assert [f["name"] for f in other] == ["elsewhere"]


def test_list_leaves_out_public_which_only_create_and_the_public_list_carry(
    api: httpx.Client,
) -> None:
    # The SDKs' FinetuneListResponse is {id, created_at, model, modified_at, name,
    # description?}; only the create response (and the public list) has `public`.
    made = envelope(create(api, "shared", public=True, description="for all"), 200)["result"]
    assert made["public"] is True
    [item] = envelope(api.get(FINETUNES), 200)["result"]
    assert "public" not in item
    assert set(item) == {"id", "name", "model", "description", "created_at", "modified_at"}
    assert item == listed(made)
    for finetune in envelope(public(api), 200)["result"]:
        assert finetune["public"] is True


@pytest.mark.parametrize(
    "model", ["@cf/meta/llama-9-1t-instruct", "@cf/mistral/mistral-7b-instruct-v0.3-lora"]
)
def test_create_on_a_model_the_catalogue_does_not_have_is_5007(
    api: httpx.Client, model: str
) -> None:
    body = envelope(api.post(FINETUNES, json={"model": model, "name": "x"}), 400)
    assert body["errors"] == [{"code": 5007, "message": f"No such model {model}"}]
    assert envelope(api.get(FINETUNES), 200)["result"] == []


@pytest.mark.parametrize(
    "model",
    [
        "@cf/meta/llama-3.3-70b-instruct-fp8-fast",  # named by the LoRA page, no `lora` property
        "@cf/meta/llama-3.1-8b-instruct-fast",
        "@cf/baai/bge-base-en-v1.5",
    ],
)
def test_create_on_a_model_without_lora_is_400_5005(api: httpx.Client, model: str) -> None:
    body = envelope(api.post(FINETUNES, json={"model": model, "name": "x"}), 400)
    assert body["errors"] == [{"code": 5005, "message": f"The model {model} does not support LoRA"}]
    assert envelope(api.get(FINETUNES), 200)["result"] == []


@pytest.mark.parametrize(
    "model",
    [
        "@cf/mistralai/mistral-small-3.1-24b-instruct",
        "@cf/meta/llama-3.2-11b-vision-instruct",
        "@cf/qwen/qwq-32b",
        "@hf/mistral/mistral-7b-instruct-v0.2",
    ],
)
def test_create_on_any_lora_model_of_the_catalogue(tmp_path: Path, model: str) -> None:
    # on a day before any of their deprecation dates (test_sandbox_catalogue.py: after)
    clock = clock_on("2026-05-01")
    with SandboxServer(tmp_path / "data", clock=clock) as sb, client_for(sb) as api:
        result = envelope(api.post(FINETUNES, json={"model": model, "name": "x"}), 200)["result"]
    assert result["model"] == model


def test_list_of_a_fresh_account_is_empty(api: httpx.Client) -> None:
    assert envelope(api.get(FINETUNES), 200)["result"] == []


def test_create_parses_json_whatever_the_content_type(api: httpx.Client) -> None:
    # wrangler labels its JSON body text/plain;charset=UTF-8.
    response = api.post(
        FINETUNES,
        content=json.dumps({"model": MODEL, "name": "from-wrangler", "description": ""}),
        headers={"Content-Type": "text/plain;charset=UTF-8"},
    )
    result = envelope(response, 200)["result"]
    assert (result["name"], result["description"]) == ("from-wrangler", "")


@pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe", b'{"model": '])
def test_create_with_malformed_json_is_6007(api: httpx.Client, raw: bytes) -> None:
    body = envelope(api.post(FINETUNES, content=raw), 400)
    assert codes(body) == [6007]
    assert body["errors"][0]["message"] == "Malformed JSON in request body"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "x"}, "model"),
        ({"model": MODEL}, "name"),
        ({"model": MODEL, "name": ""}, "name"),
        ({"model": 7, "name": "x"}, "model"),
        ({"model": MODEL, "name": ["x"]}, "name"),
        ({"model": MODEL, "name": "x", "description": 3}, "description"),
        ({"model": MODEL, "name": "x", "public": "yes"}, "public"),
    ],
)
def test_create_with_missing_or_mistyped_fields_names_the_field(
    api: httpx.Client, payload: dict[str, Any], field: str
) -> None:
    body = envelope(api.post(FINETUNES, json=payload), 400)
    assert codes(body) == [3010]
    assert f"'{field}'" in body["errors"][0]["message"]
    assert envelope(api.get(FINETUNES), 200)["result"] == []


@pytest.mark.parametrize("payload", [[1, 2], "name", 42, None])
def test_create_with_a_json_body_that_is_not_an_object_is_refused(
    api: httpx.Client, payload: object
) -> None:
    body = envelope(api.post(FINETUNES, content=json.dumps(payload)), 400)
    assert codes(body) == [3010]
    assert "JSON object" in body["errors"][0]["message"]


@pytest.mark.parametrize("model", ["mistral-7b", "@cf/mistral", "@cf/a/b/c", "@cf/a b/c"])
def test_create_with_a_malformed_model_name_is_5007(api: httpx.Client, model: str) -> None:
    body = envelope(api.post(FINETUNES, json={"model": model, "name": "x"}), 400)
    assert body["errors"] == [{"code": 5007, "message": f"No such model {model}"}]


def test_duplicate_name_in_one_account_is_refused_but_allowed_in_another(
    api: httpx.Client,
) -> None:
    created(api, "twin")
    body = envelope(create(api, "twin"), 400)
    assert codes(body) == [3010]
    assert "already exists" in body["errors"][0]["message"]
    assert [f["name"] for f in envelope(api.get(FINETUNES), 200)["result"]] == ["twin"]
    assert created(api, "twin", account=OTHER_ACCOUNT)["name"] == "twin"


@pytest.mark.parametrize("name", ["cf-public-mine", "CF-Public-mine"])
def test_reserved_name_prefix_is_refused(api: httpx.Client, name: str) -> None:
    body = envelope(create(api, name), 400)
    assert codes(body) == [3010]
    assert RESERVED_NAME_PREFIX in body["errors"][0]["message"]
    assert envelope(api.get(FINETUNES), 200)["result"] == []


def test_per_account_finetune_limit(tmp_path: Path) -> None:
    limits = SandboxLimits(max_finetunes_per_account=2)
    accounts = (ACCOUNT, OTHER_ACCOUNT)
    with (
        SandboxServer(tmp_path / "data", limits=limits, accounts=accounts) as sb,
        client_for(sb) as api,
    ):
        created(api, "one")
        created(api, "two")
        body = envelope(create(api, "three"), 400)
        assert codes(body) == [3010]
        assert "at most 2" in body["errors"][0]["message"]
        assert len(envelope(api.get(FINETUNES), 200)["result"]) == 2
        assert created(api, "three", account=OTHER_ACCOUNT)["name"] == "three"


def test_limit_holds_under_concurrent_creates(tmp_path: Path) -> None:
    limits = SandboxLimits(max_finetunes_per_account=5)
    statuses: list[int] = []
    with SandboxServer(tmp_path / "data", limits=limits) as sb:

        def attempt(i: int) -> None:
            with client_for(sb) as api:
                statuses.append(create(api, f"ft-{i % 12}").status_code)

        threads = [threading.Thread(target=attempt, args=(i,)) for i in range(24)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with client_for(sb) as api:
            names = [f["name"] for f in envelope(api.get(FINETUNES), 200)["result"]]
    assert statuses.count(200) == 5
    assert statuses.count(400) == 19
    assert len(set(names)) == len(names) == 5


def test_default_limits_are_the_published_ones() -> None:
    limits = SandboxLimits()
    limits_file = Path(__file__).parents[1] / "reconciler/providers/cloudflare/limits.json"
    data = json.loads(limits_file.read_text())
    assert limits.max_asset_bytes == data["max_asset_bytes"]
    assert limits.max_finetunes_per_account == data["max_finetunes_per_account"]


@pytest.mark.parametrize(
    "accounts", [["not-an-account"], [ACCOUNT.upper()], [], "0123456789abcdef0123456789abcdef"]
)
def test_the_server_refuses_malformed_accounts(tmp_path: Path, accounts: Any) -> None:
    with pytest.raises((ValueError, TypeError), match=r"32 lowercase hex|at least one|one string"):
        SandboxServer(tmp_path / "data", accounts=accounts)


# --- assets -----------------------------------------------------------------------------


def test_upload_both_assets_records_name_size_and_sha256(
    sb: SandboxServer, api: httpx.Client
) -> None:
    finetune = created(api, "with-assets")
    config = b'{"model_type": "mistral", "r": 8}'
    weights = os.urandom(70_000)
    for file_name, data in (
        ("adapter_config.json", config),
        ("adapter_model.safetensors", weights),
    ):
        body = envelope(upload(api, finetune["id"], file_name, data), 200)
        assert body == {"success": True, "errors": [], "messages": []}  # no result key at all
    assets = {a.file_name: a for a in sb.store.list_assets(finetune["id"])}
    assert sorted(assets) == ["adapter_config.json", "adapter_model.safetensors"]
    for name, data in (("adapter_config.json", config), ("adapter_model.safetensors", weights)):
        assert assets[name].size == len(data)
        assert assets[name].sha256 == hashlib.sha256(data).hexdigest()
        assert assets[name].path.read_bytes() == data
        assert assets[name].path.is_relative_to(sb.data_dir / "assets")
    assert list((sb.data_dir / "tmp").iterdir()) == []  # no spool files left behind


def test_upload_takes_the_name_from_file_name_not_from_the_part_s_filename(
    sb: SandboxServer, api: httpx.Client
) -> None:
    # wrangler sends the part `file` with the filename `blob` (packages/wrangler/src/ai).
    finetune = created(api, "from-blob")
    response = api.post(
        f"{FINETUNES}/{finetune['id']}/finetune-assets",
        data={"file_name": "adapter_config.json"},
        files={"file": ("blob", b"{}", "application/octet-stream")},
    )
    envelope(response, 200)
    [asset] = sb.store.list_assets(finetune["id"])
    assert (asset.file_name, asset.sha256) == (
        "adapter_config.json",
        hashlib.sha256(b"{}").hexdigest(),
    )


@pytest.mark.parametrize(
    "file_name", ["adapter_model.bin", "config.json", "../adapter_config.json"]
)
def test_upload_with_an_unknown_file_name_is_refused(
    sb: SandboxServer, api: httpx.Client, file_name: str
) -> None:
    finetune = created(api, "bad-name")
    body = envelope(upload(api, finetune["id"], file_name, b"{}"), 400)
    assert codes(body) == [3010]
    assert "adapter_config.json" in body["errors"][0]["message"]
    assert sb.store.list_assets(finetune["id"]) == []
    assert list((sb.data_dir / "tmp").iterdir()) == []


def test_upload_without_file_name_or_file_is_refused(api: httpx.Client) -> None:
    finetune_id = created(api, "incomplete")["id"]
    path = f"{FINETUNES}/{finetune_id}/finetune-assets"
    no_name = api.post(path, files={"file": ("a", b"{}")})
    assert "file_name" in envelope(no_name, 400)["errors"][0]["message"]
    no_file = api.post(
        path,
        content=b'--b\r\nContent-Disposition: form-data; name="file_name"\r\n\r\n'
        b"adapter_config.json\r\n--b--\r\n",
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert "'file'" in envelope(no_file, 400)["errors"][0]["message"]


@pytest.mark.parametrize("part", ["blob", "upload", "File"])
def test_upload_needs_the_file_part_named_file(
    sb: SandboxServer, api: httpx.Client, part: str
) -> None:
    # The API reference and the SDKs: `file` and `file_name` are both required.
    finetune_id = created(api, "odd-part")["id"]
    body = envelope(upload(api, finetune_id, "adapter_config.json", b'{"r": 4}', part=part), 400)
    assert body["errors"][0]["message"] == "Missing file part 'file'"
    assert sb.store.list_assets(finetune_id) == []
    assert list((sb.data_dir / "tmp").iterdir()) == []


def test_upload_that_is_not_multipart_is_refused(api: httpx.Client) -> None:
    finetune_id = created(api, "json-upload")["id"]
    response = api.post(f"{FINETUNES}/{finetune_id}/finetune-assets", json={"file_name": "x"})
    assert "multipart/form-data" in envelope(response, 400)["errors"][0]["message"]


def test_upload_to_an_unknown_finetune_is_404_5033(api: httpx.Client) -> None:
    missing = str(uuid.uuid4())
    body = envelope(upload(api, missing, "adapter_config.json", b"{}"), 404)
    assert body["errors"] == [
        {
            "code": 5033,
            "message": f"Finetune not found: {missing} does not exist or is not accessible",
        }
    ]


def test_upload_to_another_accounts_finetune_is_404(api: httpx.Client) -> None:
    theirs = created(api, "theirs", account=OTHER_ACCOUNT)["id"]
    assert codes(envelope(upload(api, theirs, "adapter_config.json", b"{}"), 404)) == [5033]


def test_second_upload_with_other_bytes_is_refused_and_keeps_the_first(
    sb: SandboxServer, api: httpx.Client
) -> None:
    finetune_id = created(api, "write-once")["id"]
    envelope(upload(api, finetune_id, "adapter_config.json", b'{"r": 8}'), 200)
    body = envelope(upload(api, finetune_id, "adapter_config.json", b'{"r": 16}'), 400)
    assert codes(body) == [3010]
    assert "cannot be replaced" in body["errors"][0]["message"]
    [asset] = sb.store.list_assets(finetune_id)
    assert asset.path.read_bytes() == b'{"r": 8}'
    assert list((sb.data_dir / "tmp").iterdir()) == []


def test_second_upload_with_the_same_bytes_is_an_idempotent_success(
    sb: SandboxServer, api: httpx.Client
) -> None:
    finetune_id = created(api, "retried")["id"]
    envelope(upload(api, finetune_id, "adapter_config.json", b'{"r": 8}'), 200)
    [first] = sb.store.list_assets(finetune_id)
    envelope(upload(api, finetune_id, "adapter_config.json", b'{"r": 8}'), 200)
    assert sb.store.list_assets(finetune_id) == [first]  # same record, same timestamp
    assert list((sb.data_dir / "tmp").iterdir()) == []


def test_oversize_asset_is_413_3006_and_the_limit_itself_is_allowed(tmp_path: Path) -> None:
    limits = SandboxLimits(max_asset_bytes=1000)
    with SandboxServer(tmp_path / "data", limits=limits) as sb, client_for(sb) as api:
        finetune_id = created(api, "small-limit")["id"]
        # Just over: the body is read and the spool trips on byte 1001.
        body = envelope(upload(api, finetune_id, "adapter_model.safetensors", b"x" * 1001), 413)
        assert codes(body) == [3006]
        assert "1000 bytes" in body["errors"][0]["message"]
        # Far over: refused on Content-Length alone; the client still gets the envelope.
        big = envelope(upload(api, finetune_id, "adapter_model.safetensors", b"x" * 300_000), 413)
        assert codes(big) == [3006]
        assert sb.store.list_assets(finetune_id) == []
        assert list((sb.data_dir / "tmp").iterdir()) == []
        envelope(upload(api, finetune_id, "adapter_model.safetensors", b"x" * 1000), 200)
        assert [a.size for a in sb.store.list_assets(finetune_id)] == [1000]


def test_oversize_chunked_upload_without_content_length_is_413(tmp_path: Path) -> None:
    limits = SandboxLimits(max_asset_bytes=1000)
    with SandboxServer(tmp_path / "data", limits=limits) as sb, client_for(sb) as api:
        finetune_id = created(api, "chunked")["id"]

        def body() -> Iterator[bytes]:
            yield b'--b\r\nContent-Disposition: form-data; name="file_name"\r\n\r\n'
            yield b"adapter_model.safetensors\r\n--b\r\n"
            yield b'Content-Disposition: form-data; name="file"; filename="w"\r\n\r\n'
            for _ in range(10):
                yield b"y" * 500
            yield b"\r\n--b--\r\n"

        response = api.post(
            f"{FINETUNES}/{finetune_id}/finetune-assets",
            content=body(),
            headers={"Content-Type": "multipart/form-data; boundary=b"},
        )
        assert "content-length" not in response.request.headers
        assert codes(envelope(response, 413)) == [3006]
        assert sb.store.list_assets(finetune_id) == []


# --- public finetunes -------------------------------------------------------------------


def public(api: httpx.Client, **query: Any) -> httpx.Response:
    return api.get(f"{FINETUNES}/public", params=query)


def test_public_list_is_seeded_with_cf_public_finetunes(api: httpx.Client) -> None:
    result = envelope(public(api), 200)["result"]
    # Exactly the three the docs name, on a base the docs name for them.
    assert sorted(f["name"] for f in result) == [
        "cf-public-cnn-summarization",
        "cf-public-jigsaw-classification",
        "cf-public-magicoder",
    ]
    for finetune in result:
        assert finetune["model"] in (
            "@cf/mistral/mistral-7b-instruct-v0.1",
            "@hf/mistral/mistral-7b-instruct-v0.2",
        )
        assert finetune["name"].startswith("cf-public-")
        assert finetune["public"] is True
        assert uuid.UUID(finetune["id"])
        assert TIMESTAMP.fullmatch(finetune["created_at"])
    assert [f["created_at"] for f in result] == sorted(f["created_at"] for f in result)
    # Public finetunes are Cloudflare's, not the account's.
    assert envelope(api.get(FINETUNES), 200)["result"] == []


def test_public_list_pages_by_limit_and_offset_in_the_chosen_order(api: httpx.Client) -> None:
    everything = envelope(public(api, orderBy="name"), 200)["result"]
    names = [f["name"] for f in everything]
    assert names == sorted(names)
    pages = [
        envelope(public(api, limit=2, offset=offset, orderBy="name"), 200)["result"]
        for offset in range(0, len(names) + 2, 2)
    ]
    assert [len(p) for p in pages] == [2, 1, 0]
    assert [f["name"] for page in pages for f in page] == names
    descending = envelope(public(api, orderBy="name DESC", limit=3), 200)["result"]
    assert [f["name"] for f in descending] == sorted(names, reverse=True)[:3]
    # The official SDK types limit and offset as floats.
    assert (
        envelope(public(api, limit="2.0", offset="1.0", orderBy="name"), 200)["result"]
        == (everything[1:3])
    )


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "-1"},
        {"limit": "ten"},
        {"offset": "1.5"},
        {"orderBy": "name; DROP TABLE"},
        # Past SQLite's 64-bit integers: these used to come back as a 500.
        {"limit": "9223372036854775808"},
        {"offset": "9223372036854775808"},
        {"offset": "99999999999999999999999999"},
        {"limit": "1e30"},
        {"offset": "nan"},
        {"limit": "inf"},
    ],
)
def test_public_list_refuses_bad_paging(api: httpx.Client, query: dict[str, str]) -> None:
    assert codes(envelope(public(api, **query), 400)) == [3010]


def test_public_list_takes_the_largest_64_bit_paging(api: httpx.Client) -> None:
    top = str(2**63 - 1)
    assert envelope(public(api, limit=top), 200)["result"]
    assert envelope(public(api, offset=top), 200)["result"] == []


def test_a_data_dir_seeded_by_an_older_sandbox_lists_only_the_documented_adapters(
    tmp_path: Path,
) -> None:
    import sqlite3

    data = tmp_path / "data"
    with SandboxServer(data):
        pass
    # What the sandbox seeded before: two invented adapters, the real ones on other bases.
    with sqlite3.connect(data / "sandbox.sqlite3") as db:
        db.execute(
            "INSERT INTO finetunes (id, account_id, name, model, description, public,"
            " created_at, modified_at) VALUES (?, NULL, 'cf-public-sql-generation',"
            " '@cf/google/gemma-7b-it-lora', 'Text to SQL', 1, '2024-04-04T17:00:00.000Z',"
            " '2024-04-04T17:00:00.000Z')",
            (str(uuid.uuid4()),),
        )
        db.execute(
            "UPDATE finetunes SET model = '@cf/google/gemma-2b-it-lora' WHERE account_id IS NULL"
        )
    with SandboxServer(data) as sb, client_for(sb) as api:
        result = envelope(public(api), 200)["result"]
    assert sorted(f["name"] for f in result) == [
        "cf-public-cnn-summarization",
        "cf-public-jigsaw-classification",
        "cf-public-magicoder",
    ]
    assert {f["model"] for f in result} == {"@cf/mistral/mistral-7b-instruct-v0.1"}


def test_public_list_with_an_unknown_column_lists_the_allowed_ones(api: httpx.Client) -> None:
    body = envelope(public(api, orderBy="popularity"), 400)
    assert "created_at" in body["errors"][0]["message"]


# --- authentication ---------------------------------------------------------------------


def test_wrong_token_is_401_10000_and_never_echoed(sb: SandboxServer) -> None:
    with client_for(sb, token="wrong-token-value-1234") as api:
        response = api.get(FINETUNES)
    body = envelope(response, 401)
    assert body["errors"] == [{"code": 10000, "message": "Authentication error"}]
    assert "wrong-token-value-1234" not in response.text


@pytest.mark.parametrize(
    "header",
    [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer  two-spaces",
        "Bearer a b",
        'Bearer "q"',
        "token-only",
    ],
)
def test_malformed_authorization_header_is_6003_with_6111(sb: SandboxServer, header: str) -> None:
    with httpx.Client(base_url=sb.cloudflare_base_url) as api:
        body = envelope(api.get(FINETUNES, headers={"Authorization": header}), 400)
    assert body["errors"] == [
        {
            "code": 6003,
            "message": "Invalid request headers",
            "error_chain": [{"code": 6111, "message": "Invalid format for Authorization header"}],
        }
    ]


def test_missing_credentials_is_9106(sb: SandboxServer) -> None:
    with client_for(sb, token=None) as api:
        body = envelope(api.post(FINETUNES, json={"model": MODEL, "name": "x"}), 400)
    assert codes(body) == [9106]
    assert "Authorization" in body["errors"][0]["message"]


def test_bearer_scheme_is_case_insensitive(sb: SandboxServer) -> None:
    with httpx.Client(base_url=sb.cloudflare_base_url) as api:
        response = api.get(FINETUNES, headers={"Authorization": f"bearer {DEFAULT_TOKEN}"})
    envelope(response, 200)


def test_legacy_email_and_key_headers(sb: SandboxServer) -> None:
    with httpx.Client(base_url=sb.cloudflare_base_url) as api:
        good = {"X-Auth-Email": "me@example.com", "X-Auth-Key": DEFAULT_TOKEN}
        envelope(api.get(FINETUNES, headers=good), 200)
        bad_key = envelope(api.get(FINETUNES, headers={**good, "X-Auth-Key": "nope"}), 403)
        assert codes(bad_key) == [9103]
        no_email = envelope(api.get(FINETUNES, headers={"X-Auth-Key": DEFAULT_TOKEN}), 400)
        assert codes(no_email) == [6003]
        assert no_email["errors"][0]["error_chain"][0]["code"] == 6102


def test_several_tokens_are_accepted(tmp_path: Path) -> None:
    with SandboxServer(tmp_path / "data", tokens=("token-a", "token-b")) as sb:
        for token, status in (("token-a", 200), ("token-b", 200), (DEFAULT_TOKEN, 401)):
            with client_for(sb, token) as api:
                envelope(api.get(FINETUNES), status)


def test_tokens_must_be_well_formed_and_the_error_does_not_repeat_them(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as excinfo:
        SandboxServer(tmp_path / "data", tokens=("has space secret",))
    assert "secret" not in str(excinfo.value)
    with pytest.raises(ValueError):
        SandboxServer(tmp_path / "data", tokens=())


def test_verify_token_answers_like_the_real_api(sb: SandboxServer, api: httpx.Client) -> None:
    body = envelope(api.get("/user/tokens/verify"), 200)
    assert body["result"]["status"] == "active"
    assert re.fullmatch(r"[0-9a-f]{32}", body["result"]["id"])
    assert DEFAULT_TOKEN not in json.dumps(body)
    with client_for(sb, token="not-a-known-token") as bad:
        invalid = envelope(bad.get("/user/tokens/verify"), 401)
    assert invalid["errors"] == [{"code": 1000, "message": "Invalid API Token"}]


def test_user_route_needs_a_valid_token(sb: SandboxServer, api: httpx.Client) -> None:
    assert "email" in envelope(api.get("/user"), 200)["result"]
    with client_for(sb, token="not-a-known-token") as bad:
        assert codes(envelope(bad.get("/user"), 401)) == [10000]


# --- routing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "account",
    ["xyz", "0123456789ABCDEF0123456789ABCDEF", "0123456789abcdef0123456789abcde", "48546000"],
)
def test_malformed_account_id_is_7003_then_7000(api: httpx.Client, account: str) -> None:
    body = envelope(api.get(f"/accounts/{account}/ai/finetunes"), 400)
    assert codes(body) == [7003, 7000]
    assert body["errors"][0]["message"] == (
        f"Could not route to /accounts/{account}/ai/finetunes, perhaps your object identifier"
        " is invalid?"
    )


def test_an_account_the_sandbox_does_not_serve_is_403_on_every_route(tmp_path: Path) -> None:
    with SandboxServer(tmp_path / "data") as sb, client_for(sb) as api:  # the default account
        envelope(api.get(FINETUNES), 200)
        other = f"/accounts/{OTHER_ACCOUNT}"
        for method, path in (
            ("GET", "/ai/finetunes"),
            ("POST", "/ai/finetunes"),
            ("GET", "/ai/finetunes/public"),
            ("GET", "/ai/models/search"),
            ("POST", "/ai/finetunes/x/finetune-assets"),
            ("POST", "/ai/run/@cf/mistral/mistral-7b-instruct-v0.2-lora"),
        ):
            body = envelope(api.request(method, other + path, json={}), 403)
            assert body["errors"] == [{"code": 10000, "message": "Authentication error"}]
        # served later (as --sandbox serves the config's accounts once it has read it)
        sb.accounts.add([OTHER_ACCOUNT])
        assert envelope(api.get(other + "/ai/finetunes"), 200)["result"] == []


# Paths outside /client/v4 belong to no API here: test_sandbox_mounts.py checks their 404.
@pytest.mark.parametrize(
    "path",
    ["/client/v4", "/client/v4/", "/client/v4/zones", f"/client/v4{FINETUNES}/x/y"],
)
def test_unknown_route_is_7000_envelope(sb: SandboxServer, path: str) -> None:
    with httpx.Client(base_url=sb.url) as raw:
        body = envelope(raw.get(path, headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"}), 400)
    assert body["errors"] == [{"code": 7000, "message": "No route for that URI"}]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", FINETUNES),
        ("PATCH", FINETUNES),
        ("POST", f"{FINETUNES}/public"),
        ("GET", f"{FINETUNES}/abc/finetune-assets"),
    ],
)
def test_wrong_method_is_405_7001_envelope(api: httpx.Client, method: str, path: str) -> None:
    body = envelope(api.request(method, path), 405)
    assert body["errors"] == [
        {"code": 7001, "message": f"Method {method} not available for that URI."}
    ]


def test_unexpected_failure_is_a_500_envelope_without_traceback(
    sb: SandboxServer, api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(account_id: str) -> list[object]:
        raise RuntimeError("database on fire")

    monkeypatch.setattr(sb.store, "list_finetunes", explode)
    response = api.get(FINETUNES)
    body = envelope(response, 500)
    assert codes(body) == [10001]
    assert "fire" not in response.text and "Traceback" not in response.text


# --- the server itself ------------------------------------------------------------------


def test_state_survives_a_restart_with_the_same_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "nested" / "data"  # created on demand
    weights = os.urandom(4096)
    with SandboxServer(data_dir) as sb, client_for(sb) as api:
        finetune = created(api, "durable")
        envelope(upload(api, finetune["id"], "adapter_model.safetensors", weights), 200)
        first_port = sb.port
    with SandboxServer(data_dir) as sb, client_for(sb) as api:
        assert envelope(api.get(FINETUNES), 200)["result"] == [listed(finetune)]
        assert codes(envelope(create(api, "durable"), 400)) == [3010]
        [asset] = sb.store.list_assets(finetune["id"])
        assert asset.sha256 == hashlib.sha256(weights).hexdigest()
        assert asset.path.read_bytes() == weights
        public_after = envelope(public(api), 200)["result"]
    assert first_port > 0
    with SandboxServer(tmp_path / "fresh") as sb, client_for(sb) as api:
        assert envelope(public(api), 200)["result"] == public_after  # same seeded ids


def test_request_log_records_method_and_path_of_every_call(
    sb: SandboxServer, api: httpx.Client
) -> None:
    api.get(FINETUNES)
    api.get(FINETUNES, params={"ignored": "query"})
    api.post(FINETUNES, json={"model": MODEL, "name": "logged"})
    with client_for(sb, token="bad-token") as bad:
        bad.get(f"/accounts/{OTHER_ACCOUNT}/ai/finetunes")
    assert sb.request_log == [
        ("GET", f"/client/v4{FINETUNES}"),
        ("GET", f"/client/v4{FINETUNES}"),
        ("POST", f"/client/v4{FINETUNES}"),
        ("GET", f"/client/v4/accounts/{OTHER_ACCOUNT}/ai/finetunes"),
    ]


def test_explicit_start_and_stop_bind_loopback_and_release_the_port(tmp_path: Path) -> None:
    sb = SandboxServer(tmp_path / "data")
    with pytest.raises(RuntimeError):
        _ = sb.url
    sb.start()
    try:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", sb.url)
        assert sb.cloudflare_base_url == sb.url + "/client/v4"
        with pytest.raises(RuntimeError):
            sb.start()
        with client_for(sb) as api:
            envelope(api.get(FINETUNES), 200)
        url = sb.url
    finally:
        sb.stop()
    sb.stop()  # idempotent
    with pytest.raises(httpx.ConnectError), httpx.Client() as raw:
        raw.get(url + "/client/v4/user/tokens/verify")


def test_package_import_does_not_pull_in_werkzeug() -> None:
    code = (
        "import sys, reconciler.sandbox, reconciler.sandbox.cloudflare.store;"
        " print('werkzeug' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_serve_prints_one_line_and_stops_on_sigterm(tmp_path: Path) -> None:
    with serve_process(tmp_path / "data") as served:
        match = re.search(r"(http://127\.0\.0\.1:\d+/client/v4)", served.line)
        assert match, served.line
        with httpx.Client(base_url=match.group(1)) as api:
            response = api.get(FINETUNES, headers={"Authorization": "Bearer serve-token"})
        assert envelope(response, 200)["result"] == []
    assert served.returncode == 0, served.err
    assert served.out == ""  # exactly one line was printed
    assert "serve-token" not in served.line + served.out + served.err
