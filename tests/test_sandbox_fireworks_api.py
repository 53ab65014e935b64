"""The Fireworks mount over raw HTTP: paging, filters, request checks and error bodies."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fireworks_sandbox import (
    ACCOUNT,
    DEEPSEEK,
    GLM,
    LLAMA,
    TOKEN,
    Served,
    adapter_files,
    lora_body,
    put,
    safetensors,
    serve,
)

from reconciler.sandbox.fireworks.errors import Code, FireworksError, fault_body
from reconciler.sandbox.fireworks.records import DeployedRecord


@pytest.fixture
def sb(tmp_path: Path) -> Iterator[Served]:
    with serve(tmp_path / "data") as served:
        yield served


@pytest.fixture
def http(sb: Served) -> Iterator[httpx.Client]:
    with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client


def grpc(answer: httpx.Response, status: int, code: int) -> str:
    """The message of a gRPC-gateway error body, after checking its status and shape."""
    body = answer.json()
    assert answer.status_code == status and set(body) == {"code", "message", "details"}, body
    assert body["code"] == code and body["details"] == [], body
    return str(body["message"])


def make(sb: Served, http: httpx.Client, count: int, prefix: str = "m") -> None:
    for index in range(count):
        http.post(sb.api("models"), json=lora_body(f"{prefix}{index:03d}")).raise_for_status()


def upload_all(sb: Served, http: httpx.Client, model_id: str, files: dict[str, bytes]) -> None:
    sizes = {name: str(len(data)) for name, data in files.items()}
    urls = http.post(
        sb.api(f"models/{model_id}:getUploadEndpoint"), json={"filenameToSize": sizes}
    ).json()["filenameToSignedUrls"]
    for name, data in files.items():
        put(urls[name], data).raise_for_status()


# --- paging --------------------------------------------------------------------------------


def test_pages_follow_their_token_to_the_end(sb: Served, http: httpx.Client) -> None:
    make(sb, http, 7)
    seen, token, pages = [], "", 0
    while True:
        page = http.get(sb.api("models"), params={"pageSize": 3, "pageToken": token}).json()
        assert page["totalSize"] == 7 and len(page["models"]) <= 3
        seen += [m["name"].rsplit("/", 1)[1] for m in page["models"]]
        pages += 1
        token = page.get("nextPageToken", "")
        if not token:
            break
    assert (seen, pages) == ([f"m{i:03d}" for i in range(7)], 3)


def test_a_page_token_is_keyset_not_offset(sb: Served, http: httpx.Client) -> None:
    make(sb, http, 6)
    first = http.get(sb.api("models"), params={"pageSize": 3}).json()
    http.delete(sb.api("models/m000")).raise_for_status()  # one already served goes away
    rest = http.get(sb.api("models"), params={"pageSize": 3, "pageToken": first["nextPageToken"]})
    assert [m["name"][-4:] for m in rest.json()["models"]] == ["m003", "m004", "m005"]


def test_page_size_default_maximum_and_refusals(sb: Served, http: httpx.Client) -> None:
    # 201 models straight into the store (the create route is tested elsewhere): quicker.
    fields = {**lora_body("x")["model"], "kind": "HF_PEFT_ADDON"}
    for index in range(201):
        sb.app.store.create_model(ACCOUNT, f"m{index:03d}", fields, sb.clock.now())
    assert len(http.get(sb.api("models")).json()["models"]) == 50
    assert len(http.get(sb.api("models"), params={"pageSize": 0}).json()["models"]) == 50
    coerced = http.get(sb.api("models"), params={"pageSize": 500}).json()
    assert (len(coerced["models"]), coerced["totalSize"]) == (200, 201)
    for bad in ("-1", "ten", "1.5"):
        grpc(http.get(sb.api("models"), params={"pageSize": bad}), 400, 3)


def test_a_page_token_belongs_to_its_call(sb: Served, http: httpx.Client) -> None:
    make(sb, http, 4)
    token = http.get(sb.api("models"), params={"pageSize": 2}).json()["nextPageToken"]
    other = {"pageSize": 2, "pageToken": token, "orderBy": "createTime desc"}
    assert "must be those" in grpc(http.get(sb.api("models"), params=other), 400, 3)
    # pageSize may change between pages (AIP-158)
    assert (
        len(http.get(sb.api("models"), params={"pageSize": 1, "pageToken": token}).json()["models"])
        == 1
    )
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    grpc(http.get(sb.api("models"), params={"pageToken": forged}), 400, 3)
    # a token of the models list is no token of the deployed-models list
    grpc(http.get(sb.api("deployedModels"), params={"pageToken": token}), 400, 3)


# --- filter, orderBy, readMask ----------------------------------------------------------------


def test_filters_the_sandbox_evaluates(sb: Served, http: httpx.Client) -> None:
    make(sb, http, 3)
    upload_all(sb, http, "m001", adapter_files())
    http.get(sb.api("models/m001:validateUpload")).raise_for_status()
    http.patch(sb.api("models/m002"), json={"displayName": "Second"}).raise_for_status()

    def names(expression: str) -> list[str]:
        answer = http.get(sb.api("models"), params={"filter": expression})
        assert answer.status_code == 200, answer.text
        return [m["name"][-4:] for m in answer.json()["models"]]

    assert names('kind="HF_PEFT_ADDON"') == ["m000", "m001", "m002"]
    assert names('kind="HF_PEFT_ADDON" AND state=READY') == ["m001"]
    assert names("state != READY") == ["m000", "m002"]
    assert names('display_name = "Second"') == ["m002"]  # proto spelling works too
    assert names(f'peftDetails.baseModel="{LLAMA}" AND public=false') == ["m000", "m001", "m002"]
    for unsupported in (
        "state=READY OR state=UPLOADING",
        "NOT state=READY",
        "(state=READY)",
        "displayName:Sec",
        "createTime > 2020",
        'name="accounts/*"',
    ):
        grpc(http.get(sb.api("models"), params={"filter": unsupported}), 400, 3)
    message = grpc(http.get(sb.api("models"), params={"filter": "colour=red"}), 400, 3)
    assert "unknown field 'colour'" in message


def test_order_by_and_read_mask(sb: Served, http: httpx.Client) -> None:
    make(sb, http, 3)
    for index, label in enumerate(("b", "c", "a")):
        http.patch(sb.api(f"models/m{index:03d}"), json={"displayName": label}).raise_for_status()
    listed = http.get(
        sb.api("models"), params={"orderBy": "displayName", "readMask": "name,displayName"}
    )
    assert [m for m in listed.json()["models"]] == [
        {"name": f"accounts/{ACCOUNT}/models/m002", "displayName": "a"},
        {"name": f"accounts/{ACCOUNT}/models/m000", "displayName": "b"},
        {"name": f"accounts/{ACCOUNT}/models/m001", "displayName": "c"},
    ]
    newest = http.get(sb.api("models"), params={"orderBy": "name desc"}).json()["models"]
    assert [m["name"][-4:] for m in newest] == ["m002", "m001", "m000"]
    grpc(http.get(sb.api("models"), params={"orderBy": "name sideways"}), 400, 3)
    grpc(http.get(sb.api("models/m000"), params={"readMask": "weights"}), 400, 3)
    assert http.get(sb.api("models/m000"), params={"readMask": "state"}).json() == {
        "state": "UPLOADING"
    }


# --- request checks and error bodies --------------------------------------------------------


def test_routing_and_credentials_errors(sb: Served, http: httpx.Client) -> None:
    assert grpc(httpx.get(sb.url + "/v1/nothing/here"), 404, 5) == "Not Found"
    # routing before authentication, as grpc-gateway does
    assert grpc(httpx.put(sb.api("models")), 501, 12) == "Method Not Allowed"
    assert "missing API key" in grpc(httpx.get(sb.api("models")), 401, 16)
    for header in ("Bearer wrong-token", "Basic abc", TOKEN, "Bearer"):
        grpc(httpx.get(sb.api("models"), headers={"Authorization": header}), 401, 16)
    grpc(http.get(sb.url + "/v1/accounts/another-account/models"), 403, 7)
    grpc(http.post(sb.url + "/v1/accounts/fireworks/models", json=lora_body("x")), 403, 7)


def test_create_checks_what_the_api_documents(sb: Served, http: httpx.Client) -> None:
    def refused(body: Any) -> str:
        return grpc(http.post(sb.api("models"), json=body), 400, 3)

    for bad_id in ("Bad_Id", "1abc", "-abc", "abc-", "a" * 64, ""):
        refused(lora_body(bad_id))
    assert "modelId is required" in refused({"model": lora_body("x")["model"]})
    for rank in (3, 65, "sixteen", True):
        refused(lora_body("x", r=rank))
    assert "unsupported modules lm_head" in refused(
        {
            "modelId": "x",
            "model": {"peftDetails": {"baseModel": LLAMA, "r": 8, "targetModules": ["lm_head"]}},
        }
    )
    assert "unknown field 'weights'" in refused({**lora_body("x"), "weights": 1})
    assert "unknown field 'colour'" in refused(lora_body("x", colour="red"))
    refused(lora_body("x", displayName="d" * 64))
    refused(lora_body("x", description="d" * 1000))
    refused(lora_body("x", base="accounts/fireworks/models/no-such-base"))
    assert "not valid JSON" in grpc(http.post(sb.api("models"), content=b"{"), 400, 3)
    grpc(http.post(sb.api("models"), json=[1]), 400, 3)
    other_kind = {"modelId": "x", "model": {"kind": "HF_BASE_MODEL"}}
    grpc(http.post(sb.api("models"), json=other_kind), 501, 12)
    # proto names, output-only fields and int64-as-string are accepted, as protojson does
    body = {
        "model_id": "ok",
        "model": {
            "peft_details": {"base_model": LLAMA, "r": "8", "target_modules": ["q_proj"]},
            "state": "READY",
            "create_time": "2020-01-01T00:00:00Z",
        },
    }
    created = http.post(sb.api("models"), json=body).json()
    assert (created["state"], created["peftDetails"]["r"]) == ("UPLOADING", 8)


def test_validate_upload_checks_the_adapter(sb: Served, http: httpx.Client) -> None:
    make(sb, http, 1, prefix="nocfg")
    upload_all(sb, http, "nocfg000", {"adapter_model.safetensors": safetensors()})
    message = grpc(http.get(sb.api("models/nocfg000:validateUpload")), 400, 3)
    assert "adapter_config.json" in message
    status = http.get(sb.api("models/nocfg000")).json()["status"]
    assert status == {"code": "INVALID_ARGUMENT", "message": message}

    bad_rank = {
        **adapter_files(),
        "adapter_config.json": json.dumps({"r": 2, "target_modules": ["q_proj"]}).encode(),
    }
    make(sb, http, 1, prefix="rank")
    upload_all(sb, http, "rank000", bad_rank)
    assert "r must be an integer between 4 and 64" in grpc(
        http.get(sb.api("models/rank000:validateUpload")), 400, 3
    )
    assert (
        http.get(sb.api("models/rank000:validateUpload?skipHfConfigValidation=true")).status_code
        == 200
    )

    no_lora = {**adapter_files(), "adapter_model.safetensors": safetensors(("q_proj.weight",))}
    make(sb, http, 1, prefix="plain")
    upload_all(sb, http, "plain000", no_lora)
    assert "no LoRA weights" in grpc(http.get(sb.api("models/plain000:validateUpload")), 400, 3)
    assert http.get(sb.api("models/plain000:validateUpload?configOnly=true")).status_code == 200

    make(sb, http, 1, prefix="warn")
    upload_all(sb, http, "warn000", adapter_files(r=32))
    warned = http.get(sb.api("models/warn000:validateUpload")).json()
    assert warned == {
        "warnings": ["adapter_config.json has r=32 but the model's peftDetails.r is 16"]
    }
    grpc(http.get(sb.api("models/warn000:validateUpload?configOnly=maybe")), 400, 3)


def test_upload_endpoint_checks(sb: Served, http: httpx.Client) -> None:
    make(sb, http, 1)
    endpoint = sb.api("models/m000:getUploadEndpoint")
    grpc(http.post(endpoint, json={}), 400, 3)
    for name in ("../x", "a/b", ".hidden", ""):
        grpc(http.post(endpoint, json={"filenameToSize": {name: "1"}}), 400, 3)
    grpc(http.post(endpoint, json={"filenameToSize": {"a.json": "-1"}}), 400, 3)
    grpc(http.post(endpoint, json={"filenameToSize": {"a.json": "x"}}), 400, 3)
    resumable = {"filenameToSize": {"a.json": "1"}, "enableResumableUpload": True}
    grpc(http.post(endpoint, json=resumable), 501, 12)
    grpc(
        http.post(sb.api("models/nope:getUploadEndpoint"), json={"filenameToSize": {"a": "1"}}),
        404,
        5,
    )
    grpc(http.get(sb.api("models/m000:getDownloadEndpoint")), 400, 9)  # not READY yet


# --- inference ----------------------------------------------------------------------------


def chat(sb: Served, model: str, **extra: Any) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "Explain invoices"}], **extra}
    # the OpenAI-style inference base URL (…/inference/v1)
    return httpx.post(
        sb.url + "/inference/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {TOKEN}"},
    )


def not_found(answer: httpx.Response) -> None:
    assert answer.status_code == 404
    assert answer.json() == {
        "message": "Model not found, inaccessible, and/or not deployed",
        "param": "model",
        "code": "NOT_FOUND",
        "type": "error",
    }


def test_inference_answers_only_what_is_deployed(sb: Served, http: httpx.Client) -> None:
    served = chat(sb, DEEPSEEK)  # a serverless base
    assert served.status_code == 200
    assert served.json()["choices"][0]["message"]["content"].startswith(
        "[deepseek-v3p1] Thanks for asking about invoices."
    )
    not_found(chat(sb, LLAMA))  # not served serverless
    not_found(chat(sb, "accounts/fireworks/models/nope"))
    not_found(chat(sb, f"accounts/{ACCOUNT}/models/nope"))
    not_found(chat(sb, "accounts/another-account/models/x"))
    http.post(sb.api("deployments?deploymentId=d1"), json={"baseModel": LLAMA}).raise_for_status()
    not_found(chat(sb, f"{LLAMA}#accounts/{ACCOUNT}/deployments/d1"))  # still CREATING
    sb.clock.advance(30)
    assert chat(sb, f"{LLAMA}#accounts/{ACCOUNT}/deployments/d1").status_code == 200
    cut = chat(sb, DEEPSEEK, max_tokens=3).json()["choices"][0]
    assert (cut["message"]["content"], cut["finish_reason"]) == (
        "[deepseek-v3p1] Thanks for",
        "length",
    )
    assert chat(sb, DEEPSEEK, stream=True).json()["code"] == "INVALID_ARGUMENT"
    assert chat(sb, DEEPSEEK, max_tokens=0).status_code == 400
    unauthenticated = httpx.post(
        sb.url + "/inference/v1/chat/completions", json={"model": DEEPSEEK}
    )
    assert (unauthenticated.status_code, unauthenticated.json()["code"]) == (401, "UNAUTHENTICATED")


def test_each_adapter_answers_in_its_own_words(sb: Served, http: httpx.Client) -> None:
    for model_id in ("alpha", "beta"):
        http.post(sb.api("models"), json=lora_body(model_id, base=GLM)).raise_for_status()
        upload_all(sb, http, model_id, adapter_files())
        http.get(sb.api(f"models/{model_id}:validateUpload")).raise_for_status()
        http.post(
            sb.api("deployedModels"),
            json={"model": f"accounts/{ACCOUNT}/models/{model_id}", "serverless": True},
        ).raise_for_status()
    not_found(chat(sb, f"accounts/{ACCOUNT}/models/alpha"))  # DEPLOYING
    sb.clock.advance(120)
    alpha = chat(sb, f"accounts/{ACCOUNT}/models/alpha").json()["choices"][0]["message"]["content"]
    beta = chat(sb, f"accounts/{ACCOUNT}/models/beta").json()["choices"][0]["message"]["content"]
    assert alpha.startswith("[alpha] ") and beta.startswith("[beta] ")
    assert alpha.split("[ref ")[1] != beta.split("[ref ")[1]
    assert (
        chat(sb, f"accounts/{ACCOUNT}/models/alpha").json()["choices"][0]["message"]["content"]
        == alpha
    )


# --- concurrency, faults ------------------------------------------------------------------


def test_concurrent_serverless_loads_respect_the_limit(sb: Served, http: httpx.Client) -> None:
    for index in range(8):
        model_id = f"g{index}"
        http.post(sb.api("models"), json=lora_body(model_id, base=GLM)).raise_for_status()
        upload_all(sb, http, model_id, adapter_files())
        http.get(sb.api(f"models/{model_id}:validateUpload")).raise_for_status()
    statuses: list[int] = []

    def load(model_id: str) -> None:
        body = {"model": f"accounts/{ACCOUNT}/models/{model_id}", "serverless": True}
        with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}) as own:
            statuses.append(own.post(sb.api("deployedModels"), json=body).status_code)

    threads = [threading.Thread(target=load, args=(f"g{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] * 3 + [429] * 5
    assert http.get(sb.api("deployedModels")).json()["totalSize"] == 3
    listed = http.get(
        sb.api("deployedModels"), params={"filter": "serverless=true AND state=DEPLOYING"}
    )
    assert listed.json()["totalSize"] == 3
    one = listed.json()["deployedModels"][0]["model"]
    by_model = http.get(sb.api("deployedModels"), params={"filter": f'model="{one}"'}).json()
    assert [d["model"] for d in by_model["deployedModels"]] == [one]


def test_injected_faults_take_the_gateway_shape(sb: Served) -> None:
    assert sb.app.fault_body(503) == {"code": 14, "message": "unavailable", "details": []}
    assert sb.app.fault_body(429)["code"] == 8
    assert sb.app.fault_body(500)["code"] == 13
    assert fault_body(418)["code"] == 2


def test_writes_recheck_what_a_concurrent_request_may_have_changed(
    sb: Served, http: httpx.Client
) -> None:
    # A load checked its model before a delete came in: its transaction finds the model gone.
    now = sb.clock.now()
    orphan = DeployedRecord(ACCOUNT, "gone-x", "gone", None, GLM, {}, now, now, now)
    with pytest.raises(FireworksError) as gone:
        sb.app.service.serving.load(orphan, make_default=False)
    assert gone.value.code == Code.NOT_FOUND
    # A validation checked files that were uploaded again meanwhile: it does not seal them.
    make(sb, http, 1)
    upload_all(sb, http, "m000", adapter_files())
    model = sb.app.store.get_model(ACCOUNT, "m000")
    assert model is not None
    checked = sb.app.store.files(model.uid)
    declared = {n: str(len(d)) for n, d in adapter_files(r=8).items()}
    urls = http.post(sb.api("models/m000:getUploadEndpoint"), json={"filenameToSize": declared})
    put(
        urls.json()["filenameToSignedUrls"]["adapter_config.json"],
        adapter_files(r=8)["adapter_config.json"],
    )
    with pytest.raises(FireworksError) as changed:
        sb.app.store.update_model(model, now, validated=checked)
    assert changed.value.code == Code.FAILED_PRECONDITION
    assert http.get(sb.api("models/m000")).json()["state"] == "UPLOADING"
