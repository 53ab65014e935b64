"""`GET /accounts/{account_id}/ai/models/search` in the sandbox, over real HTTP on 127.0.0.1:
the catalogue's records, its paging and filters, and the file that extends or replaces it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomllib
from conftest import ACCOUNT, Cli
from sandbox_clients import client_for, clock_on

from reconciler.base.errors import ReconcilerError
from reconciler.sandbox import DEFAULT_TOKEN
from reconciler.sandbox.cloudflare.catalogue import (
    ENV_VAR,
    Catalogue,
    CatalogueError,
    months_after,
)
from reconciler.sandbox.server import SandboxServer

ROOT = Path(__file__).resolve().parent.parent
SEARCH = f"/accounts/{ACCOUNT}/ai/models/search"
LORA = {"property_id": "lora", "value": "true"}
# api-notes.md: the models whose records carry lora = "true" (2026).
LORA_MODELS = [
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
]
# The one model of the bundled catalogue whose planned_deprecation_date (2026-05-30) is past.
RETIRED = "@hf/mistral/mistral-7b-instruct-v0.2"
# A day before any model's deprecation date: the catalogue as 2026's records show it. The
# sandboxes here run on it, so what the search lists does not change with the day tests run.
BEFORE = "2026-05-01"
# Named by the LoRA page, but their records carry no `lora` property.
NOT_LORA = [
    "@cf/meta/llama-3.3-70b-instruct-fp8-fast",
    "@cf/meta/llama-guard-3-8b",
    "@cf/deepseek-ai/deepseek-r1-distill-qwen-32b",
    "@cf/meta/llama-3.1-8b-instruct-fast",
]


@pytest.fixture
def sb(tmp_path: Path) -> Iterator[SandboxServer]:
    """The sandbox on BEFORE (conftest's `api` is a client of it)."""
    with SandboxServer(tmp_path / "data", clock=clock_on(BEFORE)) as server:
        yield server


def search(api: httpx.Client, **query: Any) -> dict[str, Any]:
    response = api.get(SEARCH, params=query)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["success"] is True and body["errors"] == []
    return body


def everything(api: httpx.Client, **query: Any) -> list[dict[str, Any]]:
    """Every page, as wrangler reads them: per_page=50, page=1, 2, ... until a short page."""
    found: list[dict[str, Any]] = []
    page = 1
    while True:
        result = search(api, per_page=50, page=page, **query)["result"]
        found += result
        if len(result) < 50:
            return found
        page += 1


def prop(record: dict[str, Any], property_id: str) -> Any:
    return next((p["value"] for p in record["properties"] if p["property_id"] == property_id), None)


def refused(response: httpx.Response, status: int = 400, code: int = 3010) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and [e["code"] for e in body["errors"]] == [code]
    return str(body["errors"][0]["message"])


# --- the records ---------------------------------------------------------------------------


def test_the_twelve_lora_models_and_the_ordinary_ones(api: httpx.Client) -> None:
    records = {r["name"]: r for r in everything(api)}
    assert sorted(n for n, r in records.items() if LORA in r["properties"]) == sorted(LORA_MODELS)
    for name in NOT_LORA:
        assert prop(records[name], "lora") is None, name
    assert records["@cf/baai/bge-base-en-v1.5"]["task"]["name"] == "Text Embeddings"
    # -fp8 in a LoRA-capable name is not what the catalogue looks at.
    assert "@cf/meta/llama-3.3-70b-instruct-fp8-fast" in records


def test_records_are_shaped_like_cloudflare_s(api: httpx.Client) -> None:
    for record in everything(api):
        assert list(record) == ["id", "source", "name", "description", "task", "tags", "properties"]
        assert isinstance(record["source"], int) and not isinstance(record["source"], bool)
        assert record["source"] == (2 if record["name"].startswith("@hf/") else 1)
        assert list(record["task"]) == ["id", "name", "description"]
        assert record["tags"] == []
        for item in record["properties"]:
            assert list(item) == ["property_id", "value"]
            assert isinstance(item["value"], (str, list, dict))


def test_deprecation_dates_past_and_future(api: httpx.Client) -> None:
    records = {r["name"]: r for r in everything(api)}
    assert prop(records[RETIRED], "planned_deprecation_date") == "2026-05-30"
    dates = [prop(r, "planned_deprecation_date") for r in records.values()]
    assert any(d is not None and d > "2026-12-01" for d in dates)  # one still to come


# --- deprecation: the search, create and run by the sandbox's clock ------------------------


@pytest.mark.parametrize(
    ("day", "listed", "listed_if_asked"),
    [
        ("2026-05-29", True, True),  # the day before its date
        ("2026-05-30", False, True),  # its date: deprecated, listed only if asked
        ("2026-08-30", False, True),  # three months on: the last day it is listed
        ("2026-08-31", False, False),  # then gone, asked or not
    ],
)
def test_a_deprecated_model_leaves_the_search_on_its_date_and_for_good_three_months_on(
    tmp_path: Path, day: str, listed: bool, listed_if_asked: bool
) -> None:
    with SandboxServer(tmp_path / "data", clock=clock_on(day)) as sb, client_for(sb) as api:

        def names(**query: Any) -> set[str]:
            return {r["name"] for r in everything(api, **query)}

        every = names(include_deprecated="true")
        assert (RETIRED in names()) is listed
        assert names(include_deprecated="false") == names()
        assert (RETIRED in every) is listed_if_asked
        assert every - names() == ({RETIRED} if listed_if_asked and not listed else set())
        # the paging counts what is listed
        total = search(api, per_page=5)["result_info"]["total_count"]
        assert total == len(names())


def test_three_months_end_on_the_same_day_or_the_month_s_last() -> None:
    assert months_after(date(2026, 5, 30), 3) == date(2026, 8, 30)
    assert months_after(date(2026, 11, 30), 3) == date(2027, 2, 28)
    assert months_after(date(2027, 11, 30), 3) == date(2028, 2, 29)
    assert months_after(date(2026, 10, 31), 3) == date(2027, 1, 31)


def test_create_and_run_refuse_a_model_from_its_deprecation_date(tmp_path: Path) -> None:
    clock = clock_on("2026-05-29")
    finetunes = f"/accounts/{ACCOUNT}/ai/finetunes"
    run = f"/accounts/{ACCOUNT}/ai/run/{RETIRED}"
    with SandboxServer(tmp_path / "data", clock=clock) as sb, client_for(sb) as api:
        made = api.post(finetunes, json={"model": RETIRED, "name": "made-in-time"})
        assert made.status_code == 200, made.text
        assert api.post(run, json={"prompt": "hi"}).status_code == 200
        clock.advance(24 * 3600)  # 2026-05-30
        message = "This model was deprecated on 2026-05-30. Please use an alternative model"
        late = api.post(finetunes, json={"model": RETIRED, "name": "too-late"})
        assert refused(late, 400, 5028) == message
        assert late.json()["result"] is None
        ran = api.post(run, json={"prompt": "hi"})
        assert refused(ran, 400, 5028) == f"AiError: AiError: {message}"
        assert ran.json()["result"] == {}
        # the adapter made in time runs no more than its base, nor do the public ones
        for lora in ("made-in-time", "cf-public-cnn-summarization"):
            refused(api.post(run, json={"prompt": "hi", "lora": lora}), 400, 5028)
        # the finetune made in time is still listed: a retired base removes nothing
        assert [f["name"] for f in api.get(finetunes).json()["result"]] == ["made-in-time"]
        # other models are not touched
        other = api.post(finetunes, json={"model": LORA_MODELS[0], "name": "elsewhere"})
        assert other.status_code == 200, other.text


# --- paging --------------------------------------------------------------------------------


def test_wrangler_paging_ends_at_a_short_page(sb: SandboxServer, api: httpx.Client) -> None:
    first = search(api, per_page=50, page=1)
    total = len(first["result"])
    assert 20 < total < 50
    assert first["result_info"] == {"page": 1, "per_page": 50, "count": total, "total_count": total}
    past = search(api, per_page=50, page=2)
    assert past["result"] == []
    assert past["result_info"] == {"page": 2, "per_page": 50, "count": 0, "total_count": total}


def test_default_page_is_20_and_pages_neither_overlap_nor_skip(api: httpx.Client) -> None:
    first = search(api)
    assert len(first["result"]) == 20
    assert first["result_info"]["page"] == 1 and first["result_info"]["per_page"] == 20
    small = [search(api, per_page=7, page=n)["result"] for n in range(1, 6)]
    names = [r["name"] for page in small for r in page]
    assert names == [r["name"] for r in everything(api)]
    assert [len(p) for p in small][-1] == 0


def test_a_page_larger_than_100_is_served_100_and_says_so(api: httpx.Client) -> None:
    body = search(api, per_page=1000)
    assert body["result_info"]["per_page"] == 100
    # The SDKs type these as numbers: 2.0 is 2.
    assert search(api, per_page="2.0", page="2.0")["result_info"]["page"] == 2


@pytest.mark.parametrize(
    "query",
    [
        {"page": "0"},
        {"page": "-1"},
        {"per_page": "0"},
        {"per_page": "ten"},
        {"page": "1.5"},
        {"page": "9223372036854775808"},
        {"per_page": "99999999999999999999999"},
        {"page": "nan"},
        {"source": "one"},
        {"source": "1e40"},
        {"hide_experimental": "maybe"},
        {"include_deprecated": "perhaps"},
        {"format": "openrouter"},
    ],
)
def test_bad_query_parameters_are_400(api: httpx.Client, query: dict[str, str]) -> None:
    refused(api.get(SEARCH, params=query))


def test_the_last_64_bit_page_is_empty_not_an_error(api: httpx.Client) -> None:
    assert search(api, page=str(2**63 - 1), per_page=100)["result"] == []


# --- filters -------------------------------------------------------------------------------


def test_search_is_a_case_insensitive_substring_of_name_or_description(
    api: httpx.Client,
) -> None:
    names = {r["name"] for r in everything(api, search="QWQ")}
    assert names == {"@cf/qwen/qwq-32b"}
    # "LoRA adapters" appears only in the -lora models' descriptions.
    described = {r["name"] for r in everything(api, search="lora adapters")}
    assert described == {n for n in LORA_MODELS if n.endswith("-lora")}
    assert everything(api, search="no-such-model-anywhere") == []


def test_task_author_source_and_experimental_filters(api: httpx.Client) -> None:
    every = everything(api)
    text = everything(api, task="text generation")
    assert text == everything(api, task="Text Generation")
    assert {r["task"]["name"] for r in text} == {"Text Generation"}
    assert 0 < len(text) < len(every)
    google = everything(api, author="Google")
    assert {r["name"] for r in google} == {
        "@cf/google/gemma-2b-it-lora",
        "@cf/google/gemma-7b-it-lora",
        "@hf/google/gemma-7b-it",
        "@cf/google/gemma-3-12b-it",
    }
    assert {r["name"] for r in everything(api, source=2)} == {
        "@hf/mistral/mistral-7b-instruct-v0.2",
        "@hf/google/gemma-7b-it",
    }
    stable = everything(api, hide_experimental="true")
    assert all(prop(r, "beta") != "true" for r in stable)
    assert len(stable) < len(every) == len(everything(api, hide_experimental="false"))
    assert everything(api, task="Text Generation", author="qwen", search="coder") == [
        r for r in every if r["name"] == "@cf/qwen/qwen2.5-coder-32b-instruct"
    ]


def test_search_needs_a_token_and_a_get(sb: SandboxServer) -> None:
    with client_for(sb, token=None) as anonymous:
        refused(anonymous.get(SEARCH), 400, 9106)
    with client_for(sb, token="wrong-token") as wrong:
        refused(wrong.get(SEARCH), 401, 10000)
    with client_for(sb) as api:
        refused(api.post(SEARCH, json={}), 405, 7001)


# --- extending and replacing the catalogue -------------------------------------------------


def write(path: Path, content: Any) -> Path:
    path.write_text(json.dumps(content))
    return path


def test_a_file_extends_the_catalogue_and_overrides_by_name(tmp_path: Path) -> None:
    extra = write(
        tmp_path / "more.json",
        [
            {"name": "@cf/acme/rocket-8b-instruct", "properties": {"lora": True}},
            {
                "name": "@cf/google/gemma-2b-it-lora",
                "properties": [{"property_id": "planned_deprecation_date", "value": "2027-01-31"}],
            },
        ],
    )
    with (
        SandboxServer(tmp_path / "data", catalogue=extra, clock=clock_on(BEFORE)) as sb,
        client_for(sb) as api,
    ):
        records = {r["name"]: r for r in everything(api)}
        rocket = records["@cf/acme/rocket-8b-instruct"]
        assert rocket["properties"] == [LORA]  # a JSON true is spelled "true", as Cloudflare does
        assert rocket["task"]["name"] == "Text Generation" and rocket["source"] == 1
        assert prop(records["@cf/google/gemma-2b-it-lora"], "lora") is None
        assert len(records) == len(Catalogue.bundled().models) + 1
        # create follows the catalogue too
        create = api.post(
            f"/accounts/{ACCOUNT}/ai/finetunes",
            json={"model": "@cf/acme/rocket-8b-instruct", "name": "rocket-bot"},
        )
        assert create.status_code == 200, create.text
        gone = api.post(
            f"/accounts/{ACCOUNT}/ai/finetunes",
            json={"model": "@cf/google/gemma-2b-it-lora", "name": "gemma-bot"},
        )
        assert refused(gone, 400, 5005)


def test_a_file_may_replace_the_catalogue(tmp_path: Path) -> None:
    only = write(
        tmp_path / "only.json",
        {"mode": "replace", "models": [{"name": "@cf/acme/solo", "task": "Text Generation"}]},
    )
    with SandboxServer(tmp_path / "data", catalogue=only) as sb, client_for(sb) as api:
        assert [r["name"] for r in everything(api)] == ["@cf/acme/solo"]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "is not valid JSON"),
        ({"models": "x"}, "'models' must be a list"),
        ({"mode": "merge", "models": []}, "'mode' must be"),
        ([{"name": "llama"}], "'name' must be a model name"),
        ([{"name": "@cf/a/b", "source": "one"}], "'source' must be an integer"),
        ([{"name": "@cf/a/b", "properties": [{"value": 1}]}], "{property_id, value}"),
        ([{"name": "@cf/a/b"}, {"name": "@cf/a/b"}], "listed twice"),
    ],
)
def test_a_bad_catalogue_file_is_refused_naming_the_file(
    tmp_path: Path, content: Any, problem: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(CatalogueError) as excinfo:
        SandboxServer(tmp_path / "data", catalogue=path)
    assert problem in str(excinfo.value) and str(path) in str(excinfo.value)


def test_the_environment_variable_reaches_a_server_and_the_embedded_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.workflow.embedded import sandbox_env

    extra = write(tmp_path / "env.json", [{"name": "@cf/acme/env-model", "properties": {}}])
    monkeypatch.setenv(ENV_VAR, str(extra))
    with SandboxServer(tmp_path / "data") as sb, client_for(sb) as api:
        assert search(api, search="env-model")["result"]
    config = tmp_path / "project" / "finetunes.yaml"
    config.parent.mkdir()
    with sandbox_env(config, {ENV_VAR: str(extra)}) as env:
        base = env["CLOUDFLARE_API_BASE_URL"]
        headers = {"Authorization": f"Bearer {env['CLOUDFLARE_API_TOKEN']}"}
        response = httpx.get(base + SEARCH, params={"search": "env-model"}, headers=headers)
        assert [r["name"] for r in response.json()["result"]] == ["@cf/acme/env-model"]
    with (
        pytest.raises(ReconcilerError, match=f"{ENV_VAR}: cannot read catalogue"),
        sandbox_env(config, {ENV_VAR: str(tmp_path / "missing.json")}),
    ):
        pass


def test_reconciler_sandbox_serves_the_catalogue_file_it_is_given(tmp_path: Path) -> None:
    extra = write(tmp_path / "cli.json", [{"name": "@cf/acme/cli-model"}])
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "sandbox", "--port", "0", "--data",
         str(tmp_path / "d"), "--catalogue", str(extra)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        line = ""
        while "/client/v4" not in line:
            line = proc.stdout.readline()
            assert line and time.monotonic() < deadline, "the sandbox did not start"
        base = line.split("Cloudflare API at ")[1].split(",")[0]
        response = httpx.get(
            base + SEARCH,
            params={"search": "cli-model"},
            headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"},
        )
        assert [r["name"] for r in response.json()["result"]] == ["@cf/acme/cli-model"]
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.communicate(timeout=30)


def test_reconciler_sandbox_refuses_a_bad_catalogue_file(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[1]")
    result = cli("sandbox", "--catalogue", bad, "--data", tmp_path / "d")
    assert result.exit_code == 1  # a usage error: 2 means changes or drift
    assert "Invalid value for --catalogue" in result.stderr
    assert "models[0] must be an object" in result.stderr


def test_the_catalogue_ships_with_the_package() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    shipped = pyproject["tool"]["setuptools"]["package-data"]["reconciler"]
    assert "sandbox/*/*.json" in shipped
    assert (ROOT / "reconciler" / "sandbox" / "cloudflare" / "catalogue.json").is_file()
