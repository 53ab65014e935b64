"""The sandbox's vLLM replica, over real HTTP on 127.0.0.1, with real adapter folders in tmp:
health, models, runtime LoRA load and unload (and how each is refused), chat, the API key.

The helpers at the top (serve_fleet, write_adapter) are shared with the other
test_sandbox_vllm_* files."""

from __future__ import annotations

import json
import struct
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from werkzeug.serving import make_server

from reconciler.sandbox.common.auth import Tokens
from reconciler.sandbox.common.clock import SystemClock
from reconciler.sandbox.common.mount import MountContext
from reconciler.sandbox.vllm.mount import VllmFleet, mount
from reconciler.sandbox.vllm.options import read_options

SANDBOX_TOKEN = "vllm-sandbox-control-token"
MODEL = "meta-llama/Llama-3.1-8B-Instruct"
LOAD = "/v1/load_lora_adapter"
UNLOAD = "/v1/unload_lora_adapter"
CHAT = "/v1/chat/completions"


@dataclass
class Fleet:
    url: str  # http://127.0.0.1:PORT/vllm
    app: VllmFleet
    http: httpx.Client  # one client for the test (making one costs an SSL context)

    def replica(self, index: int = 0, api_key: str | None = None) -> httpx.Client:
        headers = {} if api_key is None else {"Authorization": f"Bearer {api_key}"}
        return httpx.Client(base_url=f"{self.url}/{index}", headers=headers, timeout=30)

    def control(self, index: int, action: str, body: Any = None) -> httpx.Response:
        auth = {"Authorization": f"Bearer {SANDBOX_TOKEN}"}
        url = f"{self.url}/{index}/_sandbox/{action}"
        if action == "state":
            return self.http.get(url, headers=auth)
        return self.http.post(url, headers=auth, json=body)


@contextmanager
def serve_fleet(tmp_path: Path, **options: Any) -> Iterator[Fleet]:
    context = MountContext(
        data_dir=tmp_path / "sandbox-data",
        tokens=Tokens([SANDBOX_TOKEN]),
        clock=SystemClock(),
        options=options,
    )
    app = mount(context)
    assert isinstance(app, VllmFleet)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        with httpx.Client(timeout=30) as http:
            yield Fleet(f"http://127.0.0.1:{server.port}/vllm", app, http)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def safetensors_bytes(tensors: Mapping[str, list[int]], fill: float = 0.0) -> bytes:
    """A real safetensors file: F32 tensors of the given shapes, every value `fill`."""
    header: dict[str, Any] = {}
    data = b""
    for name, shape in tensors.items():
        count = 1
        for dim in shape:
            count *= dim
        payload = struct.pack(f"<{count}f", *([fill] * count))
        header[name] = {
            "dtype": "F32",
            "shape": shape,
            "data_offsets": [len(data), len(data) + len(payload)],
        }
        data += payload
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + data


def lora_tensors(
    rank: int, modules: tuple[str, ...] = ("q_proj", "v_proj")
) -> dict[str, list[int]]:
    hidden = 8
    tensors: dict[str, list[int]] = {}
    for module in modules:
        prefix = f"base_model.model.model.layers.0.self_attn.{module}"
        tensors[f"{prefix}.lora_A.weight"] = [rank, hidden]
        tensors[f"{prefix}.lora_B.weight"] = [hidden, rank]
    return tensors


def write_adapter(
    folder: Path,
    rank: int = 8,
    *,
    config: Mapping[str, Any] | None = None,
    tensors: Mapping[str, list[int]] | None = None,
    fill: float = 0.0,
) -> Path:
    """A PEFT LoRA folder: adapter_config.json and adapter_model.safetensors."""
    folder.mkdir(parents=True, exist_ok=True)
    settings: dict[str, Any] = {
        "base_model_name_or_path": MODEL,
        "peft_type": "LORA",
        "r": rank,
        "lora_alpha": 2 * rank,
        "target_modules": ["q_proj", "v_proj"],
        "bias": "none",
    }
    settings.update(config or {})
    (folder / "adapter_config.json").write_text(json.dumps(settings))
    weights = lora_tensors(rank) if tensors is None else tensors
    (folder / "adapter_model.safetensors").write_bytes(safetensors_bytes(weights, fill))
    return folder


def vllm_error(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == response.status_code
    return dict(body["error"])


def chat(client: httpx.Client, model: str | None, text: str, **extra: Any) -> httpx.Response:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": text}], **extra}
    if model is not None:
        body["model"] = model
    return client.post(CHAT, json=body)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    with serve_fleet(tmp_path) as served:
        yield served


@pytest.fixture
def replica(fleet: Fleet) -> Iterator[httpx.Client]:
    with fleet.replica(0) as client:
        yield client


def test_health_is_200_with_an_empty_body(replica: httpx.Client) -> None:
    response = replica.get("/health")
    assert response.status_code == 200
    assert response.content == b""


def test_models_lists_the_base_as_vllm_writes_its_card(replica: httpx.Client) -> None:
    body = replica.get("/v1/models").json()
    assert body["object"] == "list"
    [card] = body["data"]
    permission = card.pop("permission")
    assert isinstance(card.pop("created"), int)
    assert card == {
        "id": MODEL,
        "object": "model",
        "owned_by": "vllm",
        "root": MODEL,
        "parent": None,
        "max_model_len": 131072,
    }
    [perm] = permission
    assert perm["id"].startswith("modelperm-")
    assert perm["object"] == "model_permission"
    assert perm["organization"] == "*"
    assert (perm["allow_sampling"], perm["allow_fine_tuning"]) == (True, False)


def test_a_load_answers_plain_text_and_the_adapter_joins_the_models(
    replica: httpx.Client, tmp_path: Path
) -> None:
    folder = write_adapter(tmp_path / "support")
    response = replica.post(LOAD, json={"lora_name": "support", "lora_path": str(folder)})
    assert response.status_code == 200
    assert response.text == "Success: LoRA adapter 'support' added successfully."
    assert "content-type" not in response.headers
    cards = replica.get("/v1/models").json()["data"]
    assert [c["id"] for c in cards] == [MODEL, "support"]
    adapter = cards[1]
    assert (adapter["root"], adapter["parent"], adapter["max_model_len"]) == (
        str(folder),
        MODEL,
        None,
    )
    assert adapter["owned_by"] == "vllm"


def test_a_second_load_of_a_name_is_refused_unless_in_place(
    replica: httpx.Client, tmp_path: Path
) -> None:
    first = write_adapter(tmp_path / "a")
    second = write_adapter(tmp_path / "b", fill=1.0)
    write_adapter(tmp_path / "c")
    assert replica.post(LOAD, json={"lora_name": "a", "lora_path": str(first)}).is_success
    assert replica.post(LOAD, json={"lora_name": "c", "lora_path": str(tmp_path / "c")}).is_success
    again = replica.post(LOAD, json={"lora_name": "a", "lora_path": str(second)})
    assert again.status_code == 400
    assert vllm_error(again) == {
        "message": "The lora adapter 'a' has already been loaded. If you want to load the"
        " adapter in place, set 'load_inplace' to True.",
        "type": "InvalidUserInput",
        "param": None,
        "code": 400,
    }
    inplace = {"lora_name": "a", "lora_path": str(second), "load_inplace": True}
    assert replica.post(LOAD, json=inplace).text == "Success: LoRA adapter 'a' added successfully."
    cards = replica.get("/v1/models").json()["data"]
    # in place: the same entry, where it was, now rooted at the new folder
    expected = [("a", str(second)), ("c", str(tmp_path / "c"))]
    assert [(c["id"], c["root"]) for c in cards[1:]] == expected


def test_a_folder_that_is_not_there_is_vllms_404(replica: httpx.Client, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    response = replica.post(LOAD, json={"lora_name": "ghost", "lora_path": str(missing)})
    assert response.status_code == 404
    assert vllm_error(response) == {
        "message": "Call to add_lora method failed: Loading lora ghost failed: No adapter"
        f" found for {missing}",
        "type": "NotFoundError",
        "param": None,
        "code": 404,
    }
    assert [c["id"] for c in replica.get("/v1/models").json()["data"]] == [MODEL]


def test_a_folder_without_adapter_config_is_not_found_either(
    replica: httpx.Client, tmp_path: Path
) -> None:
    folder = write_adapter(tmp_path / "half")
    (folder / "adapter_config.json").unlink()
    response = replica.post(LOAD, json={"lora_name": "half", "lora_path": str(folder)})
    assert response.status_code == 404
    assert vllm_error(response)["message"].endswith(f"No adapter found for {folder}")


def test_a_rank_above_the_servers_max_is_refused(tmp_path: Path) -> None:
    folder = write_adapter(tmp_path / "wide", rank=32)
    body = {"lora_name": "wide", "lora_path": str(folder)}
    with serve_fleet(tmp_path) as fleet, fleet.replica(0) as replica:
        response = replica.post(LOAD, json=body)
        assert response.status_code == 400
        assert vllm_error(response) == {
            "message": "Call to add_lora method failed: LoRA rank 32 is greater than"
            " max_lora_rank 16.",
            "type": "BadRequestError",
            "param": None,
            "code": 400,
        }
    with serve_fleet(tmp_path, vllm_max_lora_rank=32) as fleet, fleet.replica(1) as replica:
        assert replica.post(LOAD, json=body).status_code == 200


@pytest.mark.parametrize(
    ("config", "tensors", "message"),
    [
        (
            {"r": 8, "lora_alpha": None},
            None,
            "unsupported operand type(s) for /: 'NoneType' and 'int'",
        ),
        ({"use_dora": True}, None, "vLLM does not yet support DoRA."),
        (
            {"modules_to_save": ["lm_head"], "r": 64},
            None,
            "vLLM only supports modules_to_save being None. LoRA rank 64 is greater than"
            " max_lora_rank 16.",
        ),
        ({"r": 0}, None, "division by zero"),
        (
            None,
            {"base_model.model.model.layers.0.mlp.router.lora_A.weight": [8, 8]},
            "expected target modules in {'down_proj', 'embed_tokens', 'gate_proj', 'k_proj',"
            " 'lm_head', 'o_proj', 'q_proj', 'up_proj', 'v_proj'} but received"
            " ['model.layers.0.mlp.router']. Please verify that the loaded LoRA module is correct",
        ),
        (
            None,
            {"base_model.model.model.layers.0.self_attn.q_proj.weight": [8, 8]},
            "model.layers.0.self_attn.q_proj.weight is unsupported LoRA weight",
        ),
    ],
)
def test_configs_and_weights_vllm_cannot_load_are_400(
    replica: httpx.Client,
    tmp_path: Path,
    config: dict[str, Any] | None,
    tensors: dict[str, list[int]] | None,
    message: str,
) -> None:
    folder = write_adapter(tmp_path / "bad", config=config, tensors=tensors)
    response = replica.post(LOAD, json={"lora_name": "bad", "lora_path": str(folder)})
    assert response.status_code == 400
    error = vllm_error(response)
    assert error["type"] == "BadRequestError"
    assert error["message"].startswith("Call to add_lora method failed: ")
    assert message in error["message"]
    assert [c["id"] for c in replica.get("/v1/models").json()["data"]] == [MODEL]


def test_broken_files_are_400_with_the_readers_message(
    replica: httpx.Client, tmp_path: Path
) -> None:
    folder = write_adapter(tmp_path / "broken")
    (folder / "adapter_config.json").write_text("{not json")
    response = replica.post(LOAD, json={"lora_name": "x", "lora_path": str(folder)})
    assert vllm_error(response)["message"] == (
        "Call to add_lora method failed: Expecting property name enclosed in double quotes:"
        " line 1 column 2 (char 1)"
    )
    write_adapter(folder)
    (folder / "adapter_config.json").write_text(json.dumps({"r": 8, "lora_alpha": 16}))
    response = replica.post(LOAD, json={"lora_name": "x", "lora_path": str(folder)})
    assert vllm_error(response)["message"].endswith(
        "Missing required configuration fields: {'target_modules'}"
    )
    write_adapter(folder)
    (folder / "adapter_model.safetensors").write_bytes(b"\xff" * 16)
    response = replica.post(LOAD, json={"lora_name": "x", "lora_path": str(folder)})
    header_error = "Error while deserializing header: HeaderTooLarge"
    assert vllm_error(response)["message"].endswith(header_error)
    (folder / "adapter_model.safetensors").unlink()
    response = replica.post(LOAD, json={"lora_name": "x", "lora_path": str(folder)})
    assert vllm_error(response)["message"].endswith(f"{folder} doesn't contain tensors")
    assert response.status_code == 400


def test_an_adapter_for_another_base_loads_as_vllm_never_checks_it(
    replica: httpx.Client, tmp_path: Path
) -> None:
    config = {"base_model_name_or_path": "Qwen/Qwen2.5-7B-Instruct"}
    folder = write_adapter(tmp_path / "qwen", config=config)
    assert replica.post(LOAD, json={"lora_name": "qwen", "lora_path": str(folder)}).is_success


def test_requests_missing_what_vllm_needs(replica: httpx.Client, tmp_path: Path) -> None:
    empty = replica.post(LOAD, json={"lora_name": "", "lora_path": str(tmp_path)})
    assert empty.status_code == 400
    assert vllm_error(empty) == {
        "message": "Both 'lora_name' and 'lora_path' must be provided.",
        "type": "InvalidUserInput",
        "param": None,
        "code": 400,
    }
    missing = replica.post(LOAD, json={"lora_name": "x"})
    assert missing.status_code == 400
    error = vllm_error(missing)
    assert (error["type"], error["param"]) == ("Bad Request", "body.lora_path")
    assert error["message"].startswith("1 validation error:\n  {'type': 'missing'")
    typed = replica.post(LOAD, json={"lora_name": 5, "lora_path": "/x"})
    assert vllm_error(typed)["param"] == "body.lora_name"
    text = replica.post(LOAD, content=b"{}", headers={"Content-Type": "text/plain"})
    assert text.status_code == 400
    assert "Only 'application/json' is allowed" in vllm_error(text)["message"]
    garbled = replica.post(LOAD, content=b"{", headers={"Content-Type": "application/json"})
    assert garbled.status_code == 400
    assert "JSON decode error" in vllm_error(garbled)["message"]
    nameless = replica.post(UNLOAD, json={"lora_name": ""})
    assert vllm_error(nameless)["message"] == (
        "'lora_name' needs to be provided to unload a LoRA adapter."
    )


def test_unload_answers_plain_text_and_forgets_the_name(
    replica: httpx.Client, tmp_path: Path
) -> None:
    folder = write_adapter(tmp_path / "support")
    replica.post(LOAD, json={"lora_name": "support", "lora_path": str(folder)})
    response = replica.post(UNLOAD, json={"lora_name": "support"})
    assert response.status_code == 200
    assert response.text == "Success: LoRA adapter 'support' removed successfully."
    assert [c["id"] for c in replica.get("/v1/models").json()["data"]] == [MODEL]
    again = replica.post(UNLOAD, json={"lora_name": "support"})
    assert again.status_code == 404
    assert vllm_error(again) == {
        "message": "The lora adapter 'support' cannot be found.",
        "type": "NotFoundError",
        "param": None,
        "code": 404,
    }
    assert chat(replica, "support", "hello").status_code == 404


def test_chat_answers_the_base_and_each_adapter_deterministically(
    replica: httpx.Client, tmp_path: Path
) -> None:
    for name in ("support-bot", "sales-bot"):
        folder = write_adapter(tmp_path / name)
        replica.post(LOAD, json={"lora_name": name, "lora_path": str(folder)})
    question = "How do I get a refund for a damaged order?"
    first = chat(replica, "support-bot", question).json()
    assert first["model"] == "support-bot"
    assert first["object"] == "chat.completion"
    assert first["id"].startswith("chatcmpl-")
    [choice] = first["choices"]
    assert (choice["index"], choice["finish_reason"], choice["message"]["role"]) == (
        0,
        "stop",
        "assistant",
    )
    text = choice["message"]["content"]
    assert text.startswith("[support-bot] Thanks for asking about refund, damaged and order.")
    assert chat(replica, "support-bot", question).json()["choices"][0]["message"]["content"] == text
    other = chat(replica, "sales-bot", question).json()["choices"][0]["message"]["content"]
    assert other.startswith("[sales-bot] ") and other.split("[ref")[1] != text.split("[ref")[1]
    base = chat(replica, MODEL, question).json()
    assert base["model"] == MODEL
    assert base["choices"][0]["message"]["content"].startswith("[Llama-3.1-8B-Instruct] ")
    unnamed = chat(replica, None, question).json()
    assert unnamed["choices"][0]["message"]["content"] == base["choices"][0]["message"]["content"]
    usage = first["usage"]
    assert usage["prompt_tokens"] == len(question.split())
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_chat_cut_by_max_tokens_says_length(replica: httpx.Client) -> None:
    body = chat(replica, MODEL, "Tell me about refunds", max_completion_tokens=3).json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert len(body["choices"][0]["message"]["content"].split(" ")) == 3
    refused = chat(replica, MODEL, "hi", max_tokens=0)
    assert refused.status_code == 400
    assert vllm_error(refused)["message"] == "max_tokens must be at least 1, got 0."


def test_chat_with_an_unknown_model_is_vllms_404(replica: httpx.Client) -> None:
    response = chat(replica, "nobody", "hello")
    assert response.status_code == 404
    assert vllm_error(response) == {
        "message": "The model `nobody` does not exist.",
        "type": "NotFoundError",
        "param": "model",
        "code": 404,
    }
    no_messages = replica.post(CHAT, json={"model": MODEL})
    assert no_messages.status_code == 400
    assert vllm_error(no_messages)["param"] == "body.messages"


def test_chat_streams_server_sent_events(replica: httpx.Client) -> None:
    plain = chat(replica, MODEL, "Tell me about refunds").json()["choices"][0]["message"]
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Tell me about refunds"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with replica.stream("POST", CHAT, json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == plain["content"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0


def test_an_api_key_guards_every_v1_route_but_not_health(tmp_path: Path) -> None:
    key = "vllm-secret-key-123"
    with serve_fleet(tmp_path, vllm_api_key=key) as fleet:
        with fleet.replica(0) as anonymous:
            assert anonymous.get("/health").status_code == 200
            for method, path in (("GET", "/v1/models"), ("POST", LOAD), ("GET", "/v1/nothing")):
                response = anonymous.request(method, path)
                assert response.status_code == 401
                assert response.json() == {"error": "Unauthorized"}
        with fleet.replica(0, api_key="wrong") as wrong:
            assert wrong.get("/v1/models").status_code == 401
        with fleet.replica(0, api_key=key) as client:
            assert client.get("/v1/models").status_code == 200
            lower = client.get("/v1/models", headers={"Authorization": f"bearer {key}"})
            assert lower.status_code == 200


def test_unknown_paths_methods_and_replicas(fleet: Fleet, replica: httpx.Client) -> None:
    assert replica.get("/v1/completions/nothing").json() == {"detail": "Not Found"}
    wrong = replica.get(LOAD)
    assert (wrong.status_code, wrong.json()) == (405, {"detail": "Method Not Allowed"})
    for path in ("/2/health", "/01/health", "", "/x/health"):
        assert fleet.http.get(fleet.url + path).status_code == 404


def test_options_are_checked_before_anything_serves() -> None:
    assert read_options({}).replicas == 2
    options = read_options({"vllm_replicas": 3, "vllm_load_latency": "0.5,2", "vllm_model": None})
    assert [options.latency(i) for i in range(3)] == [0.5, 2.0, 2.0]
    with pytest.raises(ValueError, match="vllm_max_lora_rank must be one of"):
        read_options({"vllm_max_lora_rank": 24})
    with pytest.raises(ValueError, match="vllm_replicas"):
        read_options({"vllm_replicas": 0})
    with pytest.raises(ValueError, match="vllm_load_latency"):
        read_options({"vllm_load_latency": -1})
    with pytest.raises(ValueError) as caught:
        read_options({"vllm_api_key": ""})
    assert "vllm_api_key" in str(caught.value)
