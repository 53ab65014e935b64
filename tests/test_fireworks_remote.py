"""A Fireworks model as the plan's RemoteFinetune (remote.py): its fields compare with those
items.py builds, and a model whose validation refused its files reads as failed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_fireworks_api import ACCOUNT, BASE, TOKEN, adapter, client, create, serve

from reconciler.base.errors import ProviderError
from reconciler.providers.fireworks.api import FireworksApi
from reconciler.providers.fireworks.records import DeployedModel, FireworksModel
from reconciler.providers.fireworks.remote import remote_finetune, serve_of
from reconciler.sandbox.common.auth import Tokens
from reconciler.sandbox.common.clock import SystemClock
from reconciler.sandbox.common.mount import MountContext
from reconciler.sandbox.fireworks.mount import mount


def a_model(**changes: Any) -> FireworksModel:
    fields: dict[str, Any] = {
        "account": ACCOUNT,
        "id": "bot",
        "kind": "HF_PEFT_ADDON",
        "state": "READY",
        "status_code": "OK",
        "status_message": "",
        "display_name": "bot",
        "description": "Answers tickets",
        "digest": "sha256:" + "ab" * 32,
        "base_model": BASE,
        "rank": 8,
        "target_modules": ("q_proj",),
        "created_at": "2026-11-02T10:00:00Z",
        "updated_at": "2026-11-02T10:05:00Z",
    }
    return FireworksModel(**{**fields, **changes})


def a_copy(deployed_id: str, deployment: str | None = None, **changes: Any) -> DeployedModel:
    fields: dict[str, Any] = {
        "account": ACCOUNT,
        "id": deployed_id,
        "model": "bot",
        "deployment": deployment,
        "serverless": deployment is None,
        "default": False,
        "state": "DEPLOYED",
        "status_code": "OK",
        "status_message": "",
        "created_at": None,
        "updated_at": None,
    }
    return DeployedModel(**{**fields, **changes})


def test_a_ready_adapter_reads_as_the_item_declares_it() -> None:
    remote = remote_finetune(a_model(), [a_copy("bot-1"), a_copy("x-1", model="other")])
    assert remote is not None
    assert (remote.name, remote.id, remote.model, remote.ready, remote.failed) == (
        "bot",
        "bot",
        BASE,
        True,
        False,
    )
    assert remote.fields == {"model": BASE, "description": "Answers tickets", "serve": "serverless"}


def test_a_model_of_another_kind_is_not_ours() -> None:
    assert remote_finetune(a_model(kind="HF_BASE_MODEL")) is None


def test_uploading_is_not_ready_and_a_refused_upload_has_failed() -> None:
    uploading = remote_finetune(a_model(state="UPLOADING", status_code="FAILED_PRECONDITION"))
    assert uploading is not None and (uploading.ready, uploading.failed) == (False, False)
    refused = remote_finetune(a_model(state="UPLOADING", status_code="INVALID_ARGUMENT"))
    assert refused is not None and refused.failed


def test_serve_is_the_default_copy_or_the_only_one() -> None:
    dep = f"accounts/{ACCOUNT}/deployments/multi"
    assert serve_of([]) is None
    assert serve_of([a_copy("b-1", state="UNDEPLOYING")]) is None
    assert serve_of([a_copy("b-1", dep)]) == dep
    assert serve_of([a_copy("b-1"), a_copy("b-2", dep, default=True)]) == dep
    assert serve_of([a_copy("b-2", dep), a_copy("b-1")]) == "serverless"  # none default: first


@pytest.fixture
def fw(tmp_path: Path) -> Iterator[FireworksApi]:
    context = MountContext(
        tmp_path / "data", Tokens([TOKEN]), SystemClock(), {"fireworks_accounts": [ACCOUNT]}
    )
    with serve(mount(context)) as origin:
        api = client(origin + "/fireworks")
        yield api
        api.close()


def test_an_upload_the_emulator_refuses_reads_as_failed(fw: FireworksApi, tmp_path: Path) -> None:
    files = adapter(tmp_path / "a")
    files[1].path.write_bytes(b"\x10\0\0\0\0\0\0\0" + b'{"x": 1}'.ljust(16))  # no LoRA weights
    create(fw, "broken")
    fw.upload_files(ACCOUNT, "broken", files)
    with pytest.raises(ProviderError, match="INVALID_ARGUMENT"):
        fw.validate_upload(ACCOUNT, "broken")
    model = fw.get_model(ACCOUNT, "broken")
    assert model is not None
    remote = remote_finetune(model, fw.serving.list_deployed(ACCOUNT))
    assert remote is not None and (remote.ready, remote.failed) == (False, True)
    assert remote.fields["serve"] is None and remote.fields["description"] == "support bot"
