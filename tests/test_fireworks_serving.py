"""Serving a Fireworks adapter (serving.py) over real HTTP: loaded copies on the emulator,
serverless and on a deployment, and what a double says that the emulator never does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_fireworks_api import (
    ACCOUNT,
    TOKEN,
    Double,
    adapter,
    client,
    double,
    reply,
    serve,
)
from werkzeug.wrappers import Request, Response

from reconciler.base.errors import ProviderError
from reconciler.providers.fireworks.api import FireworksApi
from reconciler.sandbox.common.auth import Tokens
from reconciler.sandbox.common.clock import SystemClock
from reconciler.sandbox.common.mount import MountContext
from reconciler.sandbox.fireworks.mount import mount

SERVERLESS_BASE = "accounts/fireworks/models/glm-5p3-flash"
DEDICATED_BASE = "accounts/fireworks/models/llama-v3p1-8b-instruct"


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[str]:
    """The emulator with loading and deployments that take no time."""
    options = {
        "fireworks_accounts": [ACCOUNT],
        "fireworks_serverless_seconds": 0.0,
        "fireworks_load_seconds": 0.0,
        "fireworks_deployment_seconds": 0.0,
    }
    context = MountContext(tmp_path / "data", Tokens([TOKEN]), SystemClock(), options)
    with serve(mount(context)) as origin:
        yield origin + "/fireworks"


@pytest.fixture
def fw(emulator: str) -> Iterator[FireworksApi]:
    api = client(emulator)
    yield api
    api.close()


def ready_model(fw: FireworksApi, model_id: str, base: str, folder: Path) -> None:
    files = adapter(folder)
    fw.create_model(
        ACCOUNT,
        model_id,
        base_model=base,
        rank=8,
        target_modules=("q_proj", "v_proj"),
        description=None,
        digest="sha256:" + "cd" * 32,
    )
    fw.upload_files(ACCOUNT, model_id, files)
    fw.validate_upload(ACCOUNT, model_id)


def test_a_serverless_copy_loads_blocks_the_delete_and_unloads(
    fw: FireworksApi, tmp_path: Path
) -> None:
    ready_model(fw, "glm-bot", SERVERLESS_BASE, tmp_path / "a")
    copy = fw.serving.load(ACCOUNT, "glm-bot", None)
    assert (copy.model, copy.serverless, copy.deployment) == ("glm-bot", True, None)
    assert fw.serving.wait_deployed(ACCOUNT, copy.id).state == "DEPLOYED"
    assert [c.id for c in fw.serving.list_deployed(ACCOUNT)] == [copy.id]
    model = fw.get_model(ACCOUNT, "glm-bot")
    assert model is not None
    assert [(r.name, r.state) for r in model.deployed] == [
        (f"accounts/{ACCOUNT}/deployedModels/{copy.id}", "DEPLOYED")
    ]
    with pytest.raises(ProviderError, match="FAILED_PRECONDITION"):
        fw.delete_model(ACCOUNT, "glm-bot")  # unload first
    assert fw.serving.unload(ACCOUNT, copy.id) is True
    assert fw.serving.unload(ACCOUNT, copy.id) is False
    assert fw.serving.get_deployed(ACCOUNT, copy.id) is None
    assert fw.delete_model(ACCOUNT, "glm-bot") is True


def test_a_copy_on_a_deployment_names_it(fw: FireworksApi, emulator: str, tmp_path: Path) -> None:
    ready_model(fw, "llama-bot", DEDICATED_BASE, tmp_path / "a")
    made = httpx.post(
        f"{emulator}/v1/accounts/{ACCOUNT}/deployments?deploymentId=multi",
        headers={"Authorization": f"Bearer {TOKEN}"},
        json={"baseModel": DEDICATED_BASE, "enableAddons": True},
    )
    assert made.status_code == 200, made.text
    deployment = f"accounts/{ACCOUNT}/deployments/multi"
    copy = fw.serving.load(ACCOUNT, "llama-bot", deployment)
    assert (copy.deployment, copy.serverless) == (deployment, False)
    assert fw.serving.wait_deployed(ACCOUNT, copy.id).deployment == deployment


def test_a_model_not_ready_cannot_load(fw: FireworksApi) -> None:
    fw.create_model(
        ACCOUNT,
        "half",
        base_model=SERVERLESS_BASE,
        rank=8,
        target_modules=["q_proj"],
        description=None,
        digest="sha256:" + "cd" * 32,
    )
    with pytest.raises(ProviderError, match="not READY"):
        fw.serving.load(ACCOUNT, "half", None)


def test_the_fourth_serverless_adapter_of_a_base_is_refused(
    emulator: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # RESOURCE_EXHAUSTED is HTTP 429, which the HTTP layer takes for a rate limit and tries
    # again: one attempt here, so the test does not wait out the backoff
    monkeypatch.setenv("RECONCILER_HTTP_ATTEMPTS", "1")
    fw = client(emulator)
    for i in range(4):
        ready_model(fw, f"glm-{i}", SERVERLESS_BASE, tmp_path / str(i))
    for i in range(3):
        fw.serving.load(ACCOUNT, f"glm-{i}", None)
    with pytest.raises(ProviderError, match="RESOURCE_EXHAUSTED"):
        fw.serving.load(ACCOUNT, "glm-3", None)
    fw.close()


# --- a double ------------------------------------------------------------------------------


def copy_of(deployed_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": f"accounts/{ACCOUNT}/deployedModels/{deployed_id}",
        "model": f"accounts/{ACCOUNT}/models/bot",
        "serverless": True,
        "state": "DEPLOYING",
        "createTime": "2099-01-01T00:00:00Z",
        **fields,
    }


def test_a_lost_load_is_settled_by_the_copy_made_since() -> None:
    def answer(request: Request) -> Response:
        if request.method == "POST":
            return reply({"code": 14, "message": "reset"}, 503)
        old = copy_of("bot-old", createTime="2020-01-01T00:00:00Z", serverless=False)
        old["deployment"] = f"accounts/{ACCOUNT}/deployments/d1"
        return reply({"deployedModels": [old, copy_of("bot-new")]})

    with double(answer) as (api, app):
        copy = api.serving.load(ACCOUNT, "bot", None)
    assert copy.id == "bot-new"
    assert [r["method"] for r in app.requests] == ["POST", "GET"]


def test_a_copy_that_fails_to_load_ends_the_wait_with_its_status() -> None:
    failed = copy_of("bot-1", status={"code": "INTERNAL", "message": "no capacity\x1b[1m"})
    with double(lambda _r: reply(failed)) as (api, _app), pytest.raises(ProviderError) as caught:
        api.serving.wait_deployed(ACCOUNT, "bot-1")
    assert "DEPLOYING, INTERNAL: no capacity\\x1b[1m" in str(caught.value)


def test_the_wait_is_bounded() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    app_answer = reply(copy_of("bot-1"))
    with double(lambda _r: app_answer) as (_api, app):
        api = client(origin_of(app), sleep=sleep, clock=lambda: now[0])
        with pytest.raises(ProviderError, match="still DEPLOYING after 900s"):
            api.serving.wait_deployed(ACCOUNT, "bot-1")
        api.close()
    assert now[0] == 900.0


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        (copy_of("bot-1", model="accounts/other/models/bot"), "not a model of account acme"),
        (copy_of("bot-1", state="LOADED"), "state is LOADED"),
        (copy_of("bot-1", deployment="d1"), "not a deployment name"),
        (copy_of("bot-1", serverless="yes"), "serverless is yes, not true or false"),
        ({**copy_of("x"), "name": "accounts/acme/deployedModels/a/b"}, "not a deployed model"),
    ],
)
def test_a_copy_that_is_not_one_is_refused(item: dict[str, Any], expected: str) -> None:
    answer = reply({"deployedModels": [item]})
    with double(lambda _r: answer) as (api, _app), pytest.raises(ProviderError, match=expected):
        api.serving.list_deployed(ACCOUNT)


def origin_of(app: Double) -> str:
    return app.origin


def test_a_fourth_serverless_load_refused_at_apply_says_the_model_is_left_ready(
    emulator: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plan counts the quota; should the account fill up between plan and apply, the load
    is refused, and the SERVE step says what is left (serving_plan.py)."""
    from reconciler.base.model import DesiredFinetune
    from reconciler.providers.fireworks.serving_plan import ServingPlan

    monkeypatch.setenv("RECONCILER_HTTP_ATTEMPTS", "1")
    fw = client(emulator)
    for i in range(4):
        ready_model(fw, f"glm-{i}", SERVERLESS_BASE, tmp_path / str(i))
    for i in range(3):
        fw.serving.load(ACCOUNT, f"glm-{i}", None)
    desired = DesiredFinetune(
        name="glm-3",
        provider="fireworks",
        account=ACCOUNT,
        model=SERVERLESS_BASE,
        description=None,
        public=False,
        assets=(),
        fields={"serve": "serverless"},
    )
    with pytest.raises(ProviderError) as caught:
        ServingPlan(fw).ensure(desired, "glm-3")
    said = str(caught.value)
    assert "RESOURCE_EXHAUSTED" in said and "at most 3 serverless adapters" in said
    assert "model glm-3 is READY, not loaded" in said
    fw.close()
