"""The wire truth: each call of our Fireworks client sends what the official SDK (fireworks-ai
1.2.30, in the test extra) sends for the same operation: method, path, query and JSON body,
both recorded by the same double over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from test_fireworks_api import ACCOUNT, BASE, TOKEN, Double, client, reply, serve
from werkzeug.wrappers import Request, Response

fireworks = pytest.importorskip("fireworks")

DIGEST = "sha256:" + "ef" * 32
DESCRIPTION = f"Answers tickets\nreconciler:sha256={'ef' * 32}"
SIZES = {"adapter_config.json": 120, "adapter_model.safetensors": 4096}


def answer(request: Request) -> Response:
    """Plausible answers, enough for both clients to parse."""
    path, method = request.path, request.method
    model = {
        "name": f"accounts/{ACCOUNT}/models/bot",
        "kind": "HF_PEFT_ADDON",
        "state": "UPLOADING",
        "createTime": "2099-01-01T00:00:00Z",
        "description": DESCRIPTION,
        "peftDetails": {"baseModel": BASE, "r": 8, "targetModules": ["q_proj", "v_proj"]},
    }
    copy = {
        "name": f"accounts/{ACCOUNT}/deployedModels/bot-1",
        "model": f"accounts/{ACCOUNT}/models/bot",
        "serverless": True,
        "state": "DEPLOYING",
    }
    if path.endswith(":getUploadEndpoint"):
        urls = {n: f"https://storage.example.com/{n}" for n in SIZES}
        return reply({"filenameToSignedUrls": urls})
    if path.endswith((":getDownloadEndpoint", ":validateUpload")) or method == "DELETE":
        return reply({})
    if path.endswith("/deployedModels"):
        return reply({"deployedModels": []} if method == "GET" else copy)
    if "/deployedModels/" in path:
        return reply(copy)
    if path.endswith("/models") and method == "GET":
        return reply({"models": []})
    return reply(model)


@pytest.fixture
def recorded() -> Iterator[tuple[str, Double]]:
    app = Double(answer)
    with serve(app) as origin:
        app.origin = origin
        yield origin, app


def sent(app: Double) -> list[tuple[str, str, dict[str, str], Any]]:
    """What each recorded request said, as the wire carries it; then forget them."""
    said = [
        (r["method"], r["path"], r["args"], json.loads(r["body"]) if r["body"] else None)
        for r in app.requests
    ]
    app.requests.clear()
    return said


def same_on_the_wire(
    recorded: tuple[str, Double],
    sdk_call: Callable[[Any], object],
    our_call: Callable[[Any], object],
) -> list[tuple[str, str, dict[str, str], Any]]:
    origin, app = recorded
    sdk = fireworks.Fireworks(api_key=TOKEN, account_id=ACCOUNT, base_url=origin, max_retries=0)
    sdk_call(sdk)
    theirs = sent(app)
    ours_client = client(origin)
    our_call(ours_client)
    ours = sent(app)
    sdk.close()
    ours_client.close()
    assert ours == theirs
    return ours


def test_create_sends_what_the_sdk_sends(recorded: tuple[str, Double]) -> None:
    said = same_on_the_wire(
        recorded,
        lambda sdk: sdk.models.create(
            model_id="bot",
            model={
                "kind": "HF_PEFT_ADDON",
                "display_name": "bot",
                "description": DESCRIPTION,
                "peft_details": {
                    "base_model": BASE,
                    "r": 8,
                    "target_modules": ["q_proj", "v_proj"],
                },
            },
        ),
        lambda ours: ours.create_model(
            ACCOUNT,
            "bot",
            base_model=BASE,
            rank=8,
            target_modules=("q_proj", "v_proj"),
            description="Answers tickets",
            digest=DIGEST,
        ),
    )
    assert said[0][:2] == ("POST", f"/v1/accounts/{ACCOUNT}/models")


def test_list_get_and_delete_send_what_the_sdk_sends(recorded: tuple[str, Double]) -> None:
    same_on_the_wire(
        recorded,
        lambda sdk: list(sdk.models.list(page_size=200)),
        lambda ours: ours.list_models(ACCOUNT),
    )
    same_on_the_wire(
        recorded,
        lambda sdk: sdk.models.get("bot"),
        lambda ours: ours.get_model(ACCOUNT, "bot"),
    )
    same_on_the_wire(
        recorded,
        lambda sdk: sdk.models.delete("bot"),
        lambda ours: ours.delete_model(ACCOUNT, "bot"),
    )


def test_the_upload_calls_send_what_the_sdk_sends(recorded: tuple[str, Double]) -> None:
    same_on_the_wire(
        recorded,
        lambda sdk: sdk.models.get_upload_endpoint(
            "bot", filename_to_size={n: str(s) for n, s in SIZES.items()}
        ),
        lambda ours: ours.upload_endpoint(ACCOUNT, "bot", SIZES),
    )
    same_on_the_wire(
        recorded,
        lambda sdk: sdk.models.validate_upload("bot"),
        lambda ours: ours.validate_upload(ACCOUNT, "bot"),
    )
    same_on_the_wire(
        recorded,
        lambda sdk: sdk.models.get_download_endpoint("bot"),
        lambda ours: ours.download_endpoint(ACCOUNT, "bot"),
    )


def test_the_serving_calls_send_what_the_sdk_sends(recorded: tuple[str, Double]) -> None:
    model = f"accounts/{ACCOUNT}/models/bot"
    same_on_the_wire(
        recorded,
        lambda sdk: sdk.lora.load(model=model, serverless=True),
        lambda ours: ours.serving.load(ACCOUNT, "bot", None),
    )
    deployment = f"accounts/{ACCOUNT}/deployments/multi"
    same_on_the_wire(
        recorded,
        lambda sdk: sdk.lora.load(model=model, deployment=deployment),
        lambda ours: ours.serving.load(ACCOUNT, "bot", deployment),
    )
    same_on_the_wire(
        recorded,
        lambda sdk: sdk.lora.get("bot-1"),
        lambda ours: ours.serving.get_deployed(ACCOUNT, "bot-1"),
    )
    same_on_the_wire(
        recorded,
        lambda sdk: sdk.lora.unload("bot-1"),
        lambda ours: ours.serving.unload(ACCOUNT, "bot-1"),
    )
    same_on_the_wire(
        recorded,
        lambda sdk: list(sdk.lora.list(page_size=200)),
        lambda ours: ours.serving.list_deployed(ACCOUNT),
    )
