"""The vLLM client against the sandbox's vLLM fleet, over real HTTP on 127.0.0.1, with real
adapter folders in tmp: models, load, unload, chat, health, the API key, and a server that is
down, gone, restarted or slow.

The helpers at the top (serve_fleet, write_adapter) are shared with the other test_vllm_*
files."""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from werkzeug.serving import make_server

from reconciler.base.errors import AuthError, CredentialsError, EndpointError, OutcomeUnknown
from reconciler.providers.vllm.answers import ModelCard
from reconciler.providers.vllm.client import AlreadyLoaded, Timeouts, VllmClient, VllmError
from reconciler.sandbox.common.auth import Tokens
from reconciler.sandbox.common.clock import SystemClock
from reconciler.sandbox.common.mount import MountContext
from reconciler.sandbox.vllm.mount import mount

SANDBOX_TOKEN = "vllm-client-test-sandbox-token"
MODEL = "meta-llama/Llama-3.1-8B-Instruct"
API_KEY = "vllm-key-canary-5d1e-must-never-show"


@dataclass
class Fleet:
    root: str  # http://127.0.0.1:PORT/vllm

    def url(self, index: int) -> str:
        return f"{self.root}/{index}"

    def urls(self, count: int) -> list[str]:
        return [self.url(i) for i in range(count)]

    def control(self, index: int, action: str, body: Any = None) -> Any:
        auth = {"Authorization": f"Bearer {SANDBOX_TOKEN}"}
        url = f"{self.root}/{index}/_sandbox/{action}"
        response = httpx.post(url, headers=auth, json=body, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()


@contextmanager
def serve_fleet(tmp_path: Path, **options: Any) -> Iterator[Fleet]:
    """The sandbox's vLLM mount alone, served by werkzeug on a free port of 127.0.0.1."""
    context = MountContext(
        data_dir=tmp_path / "sandbox-data",
        tokens=Tokens([SANDBOX_TOKEN]),
        clock=SystemClock(),
        options=options,
    )
    server = make_server("127.0.0.1", 0, mount(context), threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield Fleet(f"http://127.0.0.1:{server.port}/vllm")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def safetensors_bytes(rank: int, fill: float = 0.0) -> bytes:
    """A real safetensors file of F32 LoRA tensors for q_proj and v_proj, every value `fill`."""
    header: dict[str, Any] = {}
    data = b""
    for module in ("q_proj", "v_proj"):
        prefix = f"base_model.model.model.layers.0.self_attn.{module}"
        for part, shape in (("lora_A", [rank, 8]), ("lora_B", [8, rank])):
            payload = struct.pack(f"<{rank * 8}f", *([fill] * (rank * 8)))
            offsets = [len(data), len(data) + len(payload)]
            header[f"{prefix}.{part}.weight"] = {
                "dtype": "F32",
                "shape": shape,
                "data_offsets": offsets,
            }
            data += payload
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + data


def write_adapter(folder: Path, rank: int = 8, fill: float = 0.0) -> Path:
    """A PEFT LoRA folder the sandbox's replicas load: adapter_config.json and weights."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {"base_model_name_or_path": MODEL, "peft_type": "LORA", "r": rank}
    config |= {"lora_alpha": 2 * rank, "target_modules": ["q_proj", "v_proj"]}
    (folder / "adapter_config.json").write_text(json.dumps(config))
    (folder / "adapter_model.safetensors").write_bytes(safetensors_bytes(rank, fill))
    return folder


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    with serve_fleet(tmp_path) as served:
        yield served


@pytest.fixture
def client(fleet: Fleet) -> Iterator[VllmClient]:
    with VllmClient(fleet.url(0)) as made:
        yield made


@pytest.fixture
def adapter(tmp_path: Path) -> Path:
    return write_adapter(tmp_path / "store" / "support-0123456789ab")


def hello(client: VllmClient, model: str) -> str:
    return client.chat(model, [{"role": "user", "content": "hello about refunds"}]).text


# --- what a healthy server answers ------------------------------------------------------


def test_a_fresh_server_serves_its_base_and_no_adapter(client: VllmClient) -> None:
    client.health()
    served = client.models()
    assert served.bases == (ModelCard(MODEL, MODEL, None),)
    assert served.adapters == ()


def test_a_loaded_adapter_is_listed_answers_and_unloads(client: VllmClient, adapter: Path) -> None:
    client.load("support", str(adapter))
    served = client.models()
    assert served.adapters == (ModelCard("support", str(adapter), MODEL),)
    assert served.adapter("support") == served.adapters[0]
    reply = client.chat("support", [{"role": "user", "content": "hello about refunds"}])
    assert reply.model == "support"
    assert reply.text.startswith("[support]") and reply.finish_reason == "stop"
    assert hello(client, MODEL).startswith("[Llama-3.1-8B-Instruct]")
    assert client.unload("support") is True
    assert client.models().adapters == ()
    assert client.unload("support") is False  # one already gone counts as unloaded


def test_a_second_load_of_a_name_is_refused_unless_in_place(
    client: VllmClient, adapter: Path, tmp_path: Path
) -> None:
    client.load("support", str(adapter))
    before = hello(client, "support")
    other = write_adapter(tmp_path / "store" / "support-other", fill=1.0)
    with pytest.raises(AlreadyLoaded, match="has already been loaded") as caught:
        client.load("support", str(other))
    assert caught.value.status == 400 and caught.value.kind == "InvalidUserInput"
    client.load("support", str(other), inplace=True)
    assert client.models().adapter("support") == ModelCard("support", str(other), MODEL)
    assert hello(client, "support") != before  # the new files answer


def test_a_path_without_an_adapter_is_vllms_not_found(client: VllmClient, tmp_path: Path) -> None:
    with pytest.raises(VllmError, match="No adapter found") as caught:
        client.load("missing", str(tmp_path / "nowhere"))
    assert (caught.value.status, caught.value.kind) == (404, "NotFoundError")
    assert not isinstance(caught.value, AlreadyLoaded)


def test_a_rank_above_the_servers_limit_is_vllms_bad_request(
    client: VllmClient, tmp_path: Path
) -> None:
    big = write_adapter(tmp_path / "big", rank=32)
    with pytest.raises(VllmError, match="greater than max_lora_rank 16") as caught:
        client.load("big", str(big))
    assert (caught.value.status, caught.value.kind) == (400, "BadRequestError")
    assert client.models().adapters == ()


def test_chat_with_a_model_not_loaded_is_vllms_not_found(client: VllmClient) -> None:
    with pytest.raises(VllmError, match="does not exist") as caught:
        hello(client, "nobody")
    assert caught.value.status == 404


@pytest.mark.parametrize(
    ("name", "path"),
    [("bad\nname", "/store/x"), ("", "/store/x"), ("x" * 600, "/store/x"), ("ok", "/a\x00b")],
)
def test_our_own_bad_name_or_path_is_refused_before_sending(
    client: VllmClient, name: str, path: str
) -> None:
    with pytest.raises(ValueError, match="not a usable adapter"):
        client.load(name, path)
    assert client.models().adapters == ()


# --- where the server is not what the URL says --------------------------------------------


def test_a_url_that_is_not_a_servers_root_says_so(fleet: Fleet) -> None:
    with VllmClient(fleet.root) as wrong, pytest.raises(EndpointError, match="root URL"):
        wrong.models()
    with VllmClient(fleet.url(0) + "/v1") as wrong, pytest.raises(EndpointError, match="404"):
        wrong.models()


def test_nothing_listening_is_unreachable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with VllmClient(url) as nobody:
        with pytest.raises(EndpointError, match=re.escape(f"cannot reach {url}")):
            nobody.models()
        with pytest.raises(EndpointError, match="cannot reach"):
            nobody.load("support", "/store/support")  # never sent: not an unknown outcome


# --- the API key ------------------------------------------------------------------------


def test_the_api_key_is_sent_and_never_shown(tmp_path: Path) -> None:
    with serve_fleet(tmp_path, vllm_api_key=API_KEY) as keyed:
        with VllmClient(keyed.url(0)) as anonymous:
            anonymous.health()  # vLLM's /health needs no key
            with pytest.raises(AuthError, match=r"wants an API key.*set VLLM_API_KEY"):
                anonymous.models()
        with VllmClient(keyed.url(0), "wrong-key") as wrong:
            with pytest.raises(AuthError, match="refused the API key") as caught:
                wrong.models()
            assert "wrong-key" not in str(caught.value)
        with VllmClient(keyed.url(0), API_KEY) as right:
            assert right.models().bases[0].id == MODEL
            assert API_KEY not in repr(right)


def test_a_malformed_key_is_refused_by_name_before_any_request() -> None:
    with pytest.raises(CredentialsError, match="VLLM_API_KEY ends with a line break") as caught:
        VllmClient(f"http://127.0.0.1:{free_port()}", API_KEY + "\n")
    assert API_KEY not in str(caught.value)


def test_a_url_with_credentials_is_refused_without_being_shown() -> None:
    with pytest.raises(CredentialsError, match="credentials before the host") as caught:
        VllmClient(f"http://admin:{API_KEY}@127.0.0.1:{free_port()}")
    assert API_KEY not in str(caught.value)


# --- a server down, restarted, slow ---------------------------------------------------------


def test_a_server_that_closes_connections_is_unreachable_and_a_lost_load_unknown(
    fleet: Fleet, client: VllmClient, adapter: Path
) -> None:
    fleet.control(0, "down")
    with pytest.raises(EndpointError, match="did not answer"):
        client.models()
    with pytest.raises(OutcomeUnknown, match="read the server's /v1/models"):
        client.load("support", str(adapter))
    fleet.control(0, "up")
    # this one never reached the server: only /v1/models can tell the two apart
    assert client.models().adapters == ()


def test_a_load_whose_server_goes_down_midway_may_have_been_done(
    tmp_path: Path, adapter: Path
) -> None:
    with serve_fleet(tmp_path, vllm_load_latency=0.5) as slow, VllmClient(slow.url(0)) as client:
        failures: list[BaseException] = []

        def load() -> None:
            try:
                client.load("support", str(adapter))
            except BaseException as exc:
                failures.append(exc)

        loading = threading.Thread(target=load)
        loading.start()
        time.sleep(0.2)
        slow.control(0, "down")
        loading.join(timeout=10)
        assert len(failures) == 1 and isinstance(failures[0], OutcomeUnknown)
        slow.control(0, "up")
        assert client.models().adapter("support") is not None  # done, its answer lost


def test_a_proxy_answering_503_for_a_stopped_server_is_not_vllm(
    fleet: Fleet, client: VllmClient
) -> None:
    fleet.control(0, "down", {"mode": "503"})
    with pytest.raises(EndpointError, match="HTTP 503 with an empty body"):
        client.models()
    with pytest.raises(EndpointError, match=r"not healthy \(HTTP 503"):
        client.health()


def test_a_restart_forgets_every_adapter(fleet: Fleet, client: VllmClient, adapter: Path) -> None:
    client.load("support", str(adapter))
    fleet.control(0, "restart")
    assert client.models().adapters == ()


def test_each_replica_keeps_its_own_adapters(fleet: Fleet, adapter: Path) -> None:
    with VllmClient(fleet.url(0)) as first, VllmClient(fleet.url(1)) as second:
        first.load("support", str(adapter))
        assert second.models().adapters == ()
        assert first.models().adapter("support") is not None


def test_a_slow_load_past_its_timeout_is_an_unknown_outcome(tmp_path: Path, adapter: Path) -> None:
    with (
        serve_fleet(tmp_path, vllm_load_latency=1.0) as slow,
        VllmClient(slow.url(0), timeouts=Timeouts(load=0.2)) as impatient,
    ):
        started = time.monotonic()
        with pytest.raises(OutcomeUnknown, match="timed out"):
            impatient.load("support", str(adapter))
        assert time.monotonic() - started < 0.9
        deadline = time.monotonic() + 10
        while impatient.models().adapter("support") is None:
            assert time.monotonic() < deadline, "the load never completed on the server"
            time.sleep(0.05)
