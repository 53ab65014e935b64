"""The official `fireworks-ai` SDK, unchanged, against the sandbox's Fireworks mount."""

from __future__ import annotations

import hashlib
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
    QWEN,
    Served,
    adapter_files,
    lora_body,
    put,
    ready_lora,
    serve,
)

fireworks = pytest.importorskip("fireworks")

DEPLOY_SECONDS = 30  # the mount's defaults (service.Settings)
LOAD_SECONDS = 10
SERVERLESS_SECONDS = 120
REFUND = "How do I get a refund for a damaged order?"


@pytest.fixture
def sb(tmp_path: Path) -> Iterator[Served]:
    with serve(tmp_path / "data") as served:
        yield served


@pytest.fixture
def fw(sb: Served) -> Iterator[Any]:
    with sb.sdk() as client:
        yield client


def error_body(exc: pytest.ExceptionInfo[Any]) -> dict[str, Any]:
    body = exc.value.body
    assert set(body) == {"code", "message", "details"}, body
    return dict(body)


def test_the_sdk_uploads_validates_downloads_and_deletes_an_adapter(fw: Any) -> None:
    body = lora_body("support-lora", description="reconciler sha256:9f2c", displayName="Support")
    created = fw.models.create(model_id="support-lora", model=body["model"])
    assert created.name == f"accounts/{ACCOUNT}/models/support-lora"
    assert created.state == "UPLOADING" and created.kind == "HF_PEFT_ADDON"
    assert created.peft_details.base_model == LLAMA and created.peft_details.r == 16
    assert created.description == "reconciler sha256:9f2c" and created.status.code == "OK"

    files = adapter_files()
    sizes = {name: str(len(data)) for name, data in files.items()}
    urls = fw.models.get_upload_endpoint("support-lora", filename_to_size=sizes)
    assert set(urls.filename_to_signed_urls) == set(files)
    # Nothing has landed yet: FAILED_PRECONDITION, which the docs say to poll through.
    with pytest.raises(fireworks.BadRequestError) as waiting:
        fw.models.validate_upload("support-lora")
    assert error_body(waiting)["code"] == 9
    assert "adapter_config.json" in waiting.value.body["message"]
    for name, data in files.items():
        assert put(urls.filename_to_signed_urls[name], data).status_code == 200
    assert fw.models.validate_upload("support-lora").warnings is None
    got = fw.models.get("support-lora")
    assert got.state == "READY" and got.deployed_model_refs == []
    assert [m.name for m in fw.models.list()] == [got.name]

    links = fw.models.get_download_endpoint("support-lora").filename_to_signed_urls
    for name, data in files.items():
        fetched = httpx.get(links[name])
        assert fetched.status_code == 200 and fetched.content == data
        assert fetched.headers["etag"] == f'"{hashlib.md5(data).hexdigest()}"'

    assert fw.models.delete("support-lora") == {}
    with pytest.raises(fireworks.NotFoundError) as gone:
        fw.models.get("support-lora")
    assert error_body(gone)["code"] == 5
    assert httpx.get(links["adapter_config.json"]).status_code == 404


def test_the_sdk_deploys_an_adapter_and_chats_with_it(sb: Served, fw: Any) -> None:
    ready_lora(fw, "support-lora")
    deployment = fw.deployments.create(
        base_model=LLAMA, enable_addons=True, deployment_id="llama-addons", display_name="L"
    )
    assert deployment.state == "CREATING" and deployment.enable_addons is True
    # Loading onto a deployment still CREATING is accepted; it deploys once that is READY.
    loaded = fw.lora.load(
        model=f"accounts/{ACCOUNT}/models/support-lora", deployment=deployment.name
    )
    assert loaded.state == "DEPLOYING" and loaded.default is True and loaded.serverless is False
    deployed_id = loaded.name.rsplit("/", 1)[1]
    sb.clock.advance(DEPLOY_SECONDS)
    assert fw.deployments.get("llama-addons").state == "READY"
    assert fw.lora.get(deployed_id).state == "DEPLOYING"
    sb.clock.advance(LOAD_SECONDS)
    assert fw.lora.get(deployed_id).state == "DEPLOYED"
    assert [d.name for d in fw.lora.list()] == [loaded.name]
    refs = fw.models.get("support-lora").deployed_model_refs
    assert [(r.name, r.deployment, r.state, r.default) for r in refs] == [
        (loaded.name, deployment.name, "DEPLOYED", True)
    ]

    messages = [{"role": "user", "content": REFUND}]
    chat = fw.chat.completions.create(
        model=f"accounts/{ACCOUNT}/models/support-lora", messages=messages
    )
    text = chat.choices[0].message.content
    assert text.startswith("[support-lora] Thanks for asking about refund, damaged and order.")
    assert chat.choices[0].finish_reason == "stop"
    again = fw.chat.completions.create(
        model=f"accounts/{ACCOUNT}/models/support-lora#{deployment.name}", messages=messages
    )
    assert again.choices[0].message.content == text  # deterministic, same copy either way

    assert fw.lora.unload(deployed_id) == {}
    assert list(fw.lora.list()) == []
    with pytest.raises(fireworks.NotFoundError):
        fw.chat.completions.create(
            model=f"accounts/{ACCOUNT}/models/support-lora", messages=messages
        )
    fw.models.delete("support-lora")


def test_a_loaded_adapter_cannot_be_deleted_until_unloaded(sb: Served, fw: Any) -> None:
    ready_lora(fw, "busy")
    fw.deployments.create(base_model=LLAMA, enable_addons=True, deployment_id="dep")
    loaded = fw.lora.load(
        model=f"accounts/{ACCOUNT}/models/busy", deployment=f"accounts/{ACCOUNT}/deployments/dep"
    )
    with pytest.raises(fireworks.BadRequestError) as refused:
        fw.models.delete("busy")
    assert error_body(refused)["code"] == 9 and loaded.name in refused.value.body["message"]
    with pytest.raises(fireworks.BadRequestError):
        fw.deployments.delete("dep")  # adapters still loaded on it
    fw.lora.unload(loaded.name.rsplit("/", 1)[1])
    fw.models.delete("busy")


def test_loads_the_api_refuses(sb: Served, fw: Any) -> None:
    ready_lora(fw, "on-llama")
    fw.models.create(model_id="still-uploading", model=lora_body("x")["model"])
    fw.deployments.create(base_model=QWEN, enable_addons=True, deployment_id="qwen-addons")
    fw.deployments.create(base_model=LLAMA, deployment_id="llama-plain")
    llama_model = f"accounts/{ACCOUNT}/models/on-llama"
    cases = [
        # an adapter of another base than the deployment's
        (dict(model=llama_model, deployment=f"accounts/{ACCOUNT}/deployments/qwen-addons"), 3),
        # a deployment without addons
        (dict(model=llama_model, deployment=f"accounts/{ACCOUNT}/deployments/llama-plain"), 9),
        # a model whose upload was never validated
        (dict(model=f"accounts/{ACCOUNT}/models/still-uploading", serverless=True), 9),
        # serverless LoRA on a base that does not offer it
        (dict(model=llama_model, serverless=True), 3),
        # neither a deployment nor serverless
        (dict(model=llama_model), 3),
    ]
    for kwargs, code in cases:
        with pytest.raises(fireworks.BadRequestError) as refused:
            fw.lora.load(**kwargs)
        assert error_body(refused)["code"] == code, (kwargs, refused.value.body)
    with pytest.raises(fireworks.NotFoundError):
        fw.lora.load(model=llama_model, deployment=f"accounts/{ACCOUNT}/deployments/nope")
    assert list(fw.lora.list()) == []


def test_serverless_lora_takes_three_adapters_per_base_and_refuses_the_fourth(
    sb: Served, fw: Any
) -> None:
    for index in range(4):
        ready_lora(fw, f"glm-{index}", base=GLM)
    loaded = [
        fw.lora.load(model=f"accounts/{ACCOUNT}/models/glm-{i}", serverless=True) for i in range(3)
    ]
    assert all(d.serverless and d.state == "DEPLOYING" and d.deployment is None for d in loaded)
    with pytest.raises(fireworks.RateLimitError) as exhausted:
        fw.lora.load(model=f"accounts/{ACCOUNT}/models/glm-3", serverless=True)
    assert exhausted.value.status_code == 429 and error_body(exhausted)["code"] == 8
    sb.clock.advance(SERVERLESS_SECONDS)
    assert {d.state for d in fw.lora.list()} == {"DEPLOYED"}
    reply = fw.chat.completions.create(
        model=f"accounts/{ACCOUNT}/models/glm-0", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content.startswith("[glm-0] Thanks for your message.")
    fw.lora.unload(loaded[0].name.rsplit("/", 1)[1])
    assert fw.lora.load(model=f"accounts/{ACCOUNT}/models/glm-3", serverless=True).serverless


def test_the_base_catalogue_says_which_bases_take_lora(fw: Any) -> None:
    bases = {m.name: m for m in fw.models.list(account_id="fireworks")}
    assert {LLAMA, QWEN, GLM, DEEPSEEK} <= set(bases)
    assert bases[LLAMA].supports_lora and bases[QWEN].supports_lora
    assert bases[GLM].supports_lora and bases[GLM].supports_serverless
    assert bases[DEEPSEEK].supports_lora is False
    assert fw.models.get("llama-v3p1-8b-instruct", account_id="fireworks").kind == "HF_BASE_MODEL"
    with pytest.raises(fireworks.BadRequestError) as refused:
        fw.models.create(model_id="on-deepseek", model=lora_body("x", base=DEEPSEEK)["model"])
    assert "does not support LoRA" in error_body(refused)["message"]
    with pytest.raises(fireworks.PermissionDeniedError):
        fw.models.delete("llama-v3p1-8b-instruct", account_id="fireworks")


def test_credentials_and_accounts(sb: Served) -> None:
    with (
        sb.sdk(token="not-a-sandbox-token") as stranger,
        pytest.raises(fireworks.AuthenticationError) as refused,
    ):
        stranger.models.list()
    assert error_body(refused)["code"] == 16
    with sb.sdk() as fw, pytest.raises(fireworks.PermissionDeniedError) as denied:
        fw.models.list(account_id="someone-else")
    assert error_body(denied)["code"] == 7


def test_create_twice_update_and_what_ready_fixes(fw: Any) -> None:
    ready_lora(fw, "twice")
    with pytest.raises(fireworks.ConflictError) as conflict:
        fw.models.create(model_id="twice", model=lora_body("twice")["model"])
    assert error_body(conflict)["code"] == 6
    updated = fw.models.update("twice", display_name="Twice", description="v2")
    assert (updated.display_name, updated.description, updated.state) == ("Twice", "v2", "READY")
    with pytest.raises(fireworks.BadRequestError) as fixed:
        fw.models.update(
            "twice", peft_details={"base_model": QWEN, "r": 8, "target_modules": ["q_proj"]}
        )
    assert error_body(fixed)["code"] == 9
    # getUploadEndpoint on a validated model: ALREADY_EXISTS (the docs: re-running is safe)
    with pytest.raises(fireworks.ConflictError):
        fw.models.get_upload_endpoint("twice", filename_to_size={"adapter_config.json": "2"})


def test_state_and_signing_key_survive_a_restart(tmp_path: Path) -> None:
    files = adapter_files()
    with serve(tmp_path / "data") as first, first.sdk() as fw:
        fw.models.create(model_id="kept", model=lora_body("kept")["model"])
        sizes = {name: str(len(data)) for name, data in files.items()}
        urls = fw.models.get_upload_endpoint("kept", filename_to_size=sizes).filename_to_signed_urls
        put(urls["adapter_config.json"], files["adapter_config.json"]).raise_for_status()
        port = first.url
    with serve(tmp_path / "data") as second, second.sdk() as fw:
        assert fw.models.get("kept").state == "UPLOADING"
        # The URL names the old port; the same path and query on the new server still verify
        # only if the key was kept on disk (the host is signed, so keep the old Host header).
        rest = urls["adapter_model.safetensors"][len(port) :]
        answer = put(second.url + rest, files["adapter_model.safetensors"], Host=port.split("/")[2])
        assert answer.status_code == 200, answer.text
        fw.models.validate_upload("kept")
        assert fw.models.get("kept").state == "READY"


def test_the_sdk_reads_paged_lists_to_the_end(fw: Any) -> None:
    for index in range(7):
        fw.models.create(model_id=f"m{index}", model=lora_body("x")["model"])
    names = [m.name for m in fw.models.list(page_size=3)]  # the SDK follows nextPageToken
    assert names == [f"accounts/{ACCOUNT}/models/m{i}" for i in range(7)]
    first = fw.models.list(page_size=3, order_by="name desc")
    assert [m.name.rsplit("/", 1)[1] for m in first.models] == ["m6", "m5", "m4"]
