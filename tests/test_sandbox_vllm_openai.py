"""The official `openai` client, unchanged, against a sandbox vLLM replica: what an app that
talks to vLLM does (base_url = http://127.0.0.1:PORT/vllm/<i>/v1)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_sandbox_vllm import LOAD, MODEL, serve_fleet, write_adapter

openai = pytest.importorskip("openai")


def test_chat_models_and_streaming_through_the_openai_client(tmp_path: Path) -> None:
    folder = write_adapter(tmp_path / "support-bot")
    key = "vllm-key-for-openai"
    with serve_fleet(tmp_path, vllm_api_key=key) as fleet:
        with fleet.replica(1, api_key=key) as raw:
            loaded = raw.post(LOAD, json={"lora_name": "support-bot", "lora_path": str(folder)})
            assert loaded.status_code == 200
        client = openai.OpenAI(base_url=f"{fleet.url}/1/v1", api_key=key, max_retries=0)
        try:
            assert [m.id for m in client.models.list()] == [MODEL, "support-bot"]
            reply = client.chat.completions.create(
                model="support-bot",
                messages=[{"role": "user", "content": "How do I get a refund?"}],
            )
            assert reply.model == "support-bot"
            text = reply.choices[0].message.content
            assert text is not None and text.startswith("[support-bot] Thanks for asking")
            assert reply.choices[0].finish_reason == "stop"
            assert reply.usage is not None and reply.usage.completion_tokens > 0
            pieces = client.chat.completions.create(
                model="support-bot",
                messages=[{"role": "user", "content": "How do I get a refund?"}],
                stream=True,
            )
            streamed = "".join(c.choices[0].delta.content or "" for c in pieces if c.choices)
            assert streamed == text
            base = client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "hello"}]
            )
            assert base.choices[0].message.content.startswith("[Llama-3.1-8B-Instruct] ")
        finally:
            client.close()


def test_the_openai_client_sees_vllms_errors(tmp_path: Path) -> None:
    with serve_fleet(tmp_path, vllm_api_key="right") as fleet:
        client = openai.OpenAI(base_url=f"{fleet.url}/0/v1", api_key="right", max_retries=0)
        wrong = openai.OpenAI(base_url=f"{fleet.url}/0/v1", api_key="wrong", max_retries=0)
        try:
            with pytest.raises(openai.NotFoundError) as missing:
                client.chat.completions.create(
                    model="nobody", messages=[{"role": "user", "content": "hi"}]
                )
            assert missing.value.status_code == 404
            assert "The model `nobody` does not exist." in str(missing.value)
            with pytest.raises(openai.AuthenticationError):
                wrong.models.list()
            assert fleet.control(0, "down").status_code == 200
            with pytest.raises(openai.APIConnectionError):
                client.models.list()
        finally:
            client.close()
            wrong.close()
