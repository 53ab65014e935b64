"""`POST /accounts/{account_id}/ai/run/{model_name}` in the sandbox, over real HTTP on 127.0.0.1:
routing of the model name, the deterministic answer, LoRA resolution, and every refusal."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from sandbox_clients import client_for, clock_on

from reconciler.sandbox import DEFAULT_ACCOUNT_ID
from reconciler.sandbox.common.answers import SENTENCES, keywords
from reconciler.sandbox.common.fault_spec import FaultSpec
from reconciler.sandbox.server import SandboxServer

ACCOUNT = DEFAULT_ACCOUNT_ID
OTHER_ACCOUNT = "fedcba9876543210fedcba9876543210"
MISTRAL = "@cf/mistral/mistral-7b-instruct-v0.2-lora"
GEMMA = "@cf/google/gemma-2b-it-lora"
PLAIN = "@cf/meta/llama-3.1-8b-instruct-fast"  # in the catalogue, without `lora`
V01 = "@cf/mistral/mistral-7b-instruct-v0.1"  # the public adapters' documented bases
HF_V02 = "@hf/mistral/mistral-7b-instruct-v0.2"
QUICKSTART = Path(__file__).resolve().parent.parent / "examples" / "quickstart"
REF = re.compile(r"\[ref [0-9a-f]{8}\]$")


def encoded(model: str) -> str:
    """The model name as one path segment, as the official SDK sends it."""
    return model.replace("/", "%2F")


def run_path(model: str, account: str = ACCOUNT) -> str:
    return f"/accounts/{account}/ai/run/{encoded(model)}"


def run(
    api: httpx.Client, model: str = MISTRAL, account: str = ACCOUNT, **body: Any
) -> httpx.Response:
    return api.post(run_path(model, account), json=body)


def answered(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True and body["errors"] == []
    text: str = body["result"]["response"]
    return text


def ref(text: str) -> str:
    match = REF.search(text)
    assert match is not None, text
    return match.group()


def refused(response: httpx.Response, status: int, code: int) -> str:
    """The error's message, checked to be the only error with this status and code."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    assert [e["code"] for e in body["errors"]] == [code], body
    message: str = body["errors"][0]["message"]
    return message


def finetune(
    api: httpx.Client,
    name: str,
    *,
    model: str = MISTRAL,
    account: str = ACCOUNT,
    files: dict[str, bytes] | None = None,
) -> dict[str, Any]:
    """Create a finetune and upload its files (both, with fresh content, unless given)."""
    created = api.post(f"/accounts/{account}/ai/finetunes", json={"model": model, "name": name})
    assert created.status_code == 200, created.text
    result: dict[str, Any] = created.json()["result"]
    if files is None:
        files = {
            "adapter_config.json": b'{"model_type": "mistral", "r": 8}',
            "adapter_model.safetensors": os.urandom(64),
        }
    for file_name, data in files.items():
        uploaded = api.post(
            f"/accounts/{account}/ai/finetunes/{result['id']}/finetune-assets",
            data={"file_name": file_name},
            files={"file": (file_name, data, "application/octet-stream")},
        )
        assert uploaded.status_code == 200, uploaded.text
    return result


# --- the model name in the path ----------------------------------------------------------


def test_encoded_and_slashed_model_names_reach_the_same_model(api: httpx.Client) -> None:
    prompt = {"prompt": "Where is my parcel?"}
    one_segment = api.post(
        f"/accounts/{ACCOUNT}/ai/run/@cf%2Fmistral%2Fmistral-7b-instruct-v0.2-lora", json=prompt
    )
    assert b"@cf%2Fmistral%2Fmistral-7b-instruct-v0.2-lora" in one_segment.request.url.raw_path
    slashed = api.post(f"/accounts/{ACCOUNT}/ai/run/{MISTRAL}", json=prompt)
    assert b"/ai/run/@cf/mistral/" in slashed.request.url.raw_path
    assert answered(one_segment) == answered(slashed)
    assert answered(one_segment).startswith("[mistral-7b-instruct-v0.2-lora] ")
    # Lower-case hex and an encoded `@` decode to the same name too.
    lower = api.post(
        f"/accounts/{ACCOUNT}/ai/run/%40cf%2fmistral%2fmistral-7b-instruct-v0.2-lora", json=prompt
    )
    assert answered(lower) == answered(slashed)


def test_only_post_runs_a_model(api: httpx.Client) -> None:
    response = api.get(run_path(MISTRAL))
    refused(response, 405, 7001)


# --- the answer --------------------------------------------------------------------------


def test_prompt_answer_follows_the_documented_rule(api: httpx.Client) -> None:
    response = run(api, prompt="How do I get a refund for a damaged order?")
    text = answered(response)
    opening = "[mistral-7b-instruct-v0.2-lora] Thanks for asking about refund, damaged and order. "
    assert text.startswith(opening)
    middle = REF.split(text[len(opening) :])[0].strip()
    assert middle in {f"{a} {b}" for a in SENTENCES for b in SENTENCES if a != b}
    assert REF.search(text)
    usage = response.json()["result"]["usage"]
    assert usage["prompt_tokens"] == 10
    assert usage["completion_tokens"] == len(text.split(" "))
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_keywords_rule() -> None:
    assert keywords("How do I get a refund for a damaged order?") == ["refund", "damaged", "order"]
    # Spelling as first written, duplicates dropped ignoring case, at most six.
    assert keywords("Cloudflare LoRA: is cloudflare's LORA API fast, cheap, safe, small?") == [
        "Cloudflare",
        "LoRA",
        "cloudflare's",
        "API",
        "fast",
        "cheap",
    ]
    assert keywords("Can you tell me what it is?") == []


def test_a_prompt_without_keywords_is_still_answered(api: httpx.Client) -> None:
    text = answered(run(api, prompt="Is it ok?"))
    assert text.startswith("[mistral-7b-instruct-v0.2-lora] Thanks for your message. ")


def test_messages_take_keywords_from_the_last_user_message(api: httpx.Client) -> None:
    conversation = [
        {"role": "system", "content": "You are a courteous billing assistant"},
        {"role": "user", "content": "My invoice looks wrong"},
        {"role": "assistant", "content": "Which invoice number?"},
        {"role": "user", "content": "Invoice 4471 from March"},
    ]
    text = answered(run(api, messages=conversation))
    assert "Thanks for asking about Invoice, 4471 and March." in text
    assert "billing" not in text and "wrong" not in text
    # The whole conversation counts: another system message, another answer.
    changed = [{"role": "system", "content": "You are terse"}, *conversation[1:]]
    other = answered(run(api, messages=changed))
    assert other != text
    assert "Thanks for asking about Invoice, 4471 and March." in other


def test_same_input_same_answer_other_input_other_answer(api: httpx.Client) -> None:
    first = answered(run(api, prompt="Reset my router password", temperature=0.9, seed=5))
    # Sampling options never change the text.
    assert answered(run(api, prompt="Reset my router password", raw=True)) == first
    assert answered(run(api, prompt="Reset my router password!")) != first
    assert answered(run(api, model=GEMMA, prompt="Reset my router password")) != first


def test_max_tokens_cuts_the_answer_to_that_many_words(api: httpx.Client) -> None:
    full = answered(run(api, prompt="Track parcel delivery status"))
    cut = answered(run(api, prompt="Track parcel delivery status", max_tokens=8))
    assert cut == " ".join(full.split(" ")[:8])
    assert cut == "[mistral-7b-instruct-v0.2-lora] Thanks for asking about Track, parcel, delivery"
    assert answered(run(api, prompt="Track parcel delivery status", max_tokens=500)) == full


def test_json_body_is_parsed_whatever_the_content_type(api: httpx.Client) -> None:
    body = b'{"prompt": "Where is my parcel?"}'
    expected = answered(run(api, prompt="Where is my parcel?"))
    for content_type in ("text/plain;charset=UTF-8", "application/x-www-form-urlencoded"):
        response = api.post(run_path(MISTRAL), content=body, headers={"Content-Type": content_type})
        assert answered(response) == expected


# --- LoRA adapters -----------------------------------------------------------------------


def test_a_finetune_answers_under_its_name_by_name_or_by_id(api: httpx.Client) -> None:
    bot = finetune(api, "support-bot")
    by_name = answered(run(api, prompt="Cancel my subscription", lora="support-bot"))
    by_id = answered(run(api, prompt="Cancel my subscription", lora=bot["id"]))
    assert by_name == by_id
    assert by_name.startswith("[support-bot] Thanks for asking about Cancel and subscription. ")
    assert by_name != answered(run(api, prompt="Cancel my subscription"))


def test_different_adapters_answer_differently(api: httpx.Client) -> None:
    finetune(api, "bot-a")
    finetune(api, "bot-b")
    a = answered(run(api, prompt="Cancel my subscription", lora="bot-a"))
    b = answered(run(api, prompt="Cancel my subscription", lora="bot-b"))
    assert a.startswith("[bot-a] ") and b.startswith("[bot-b] ")
    assert ref(a) != ref(b)
    # Same name, other weights (on another account): same label, another answer.
    finetune(api, "bot-a", account=OTHER_ACCOUNT)
    elsewhere = answered(
        run(api, account=OTHER_ACCOUNT, prompt="Cancel my subscription", lora="bot-a")
    )
    assert elsewhere.startswith("[bot-a] ") and ref(elsewhere) != ref(a)
    # And the answer is stable: asked again, the same text.
    assert answered(run(api, prompt="Cancel my subscription", lora="bot-a")) == a


def test_public_finetunes_run_from_any_account_by_name_or_id(api: httpx.Client) -> None:
    public = {
        f["name"]: f for f in api.get(f"/accounts/{ACCOUNT}/ai/finetunes/public").json()["result"]
    }
    magicoder = public["cf-public-magicoder"]
    by_name = answered(
        run(api, model=V01, prompt="Sort a list in Python", lora="cf-public-magicoder")
    )
    assert by_name.startswith(
        "[cf-public-magicoder] Thanks for asking about Sort, list and Python."
    )
    assert (
        answered(run(api, model=V01, prompt="Sort a list in Python", lora=magicoder["id"]))
        == by_name
    )
    assert (
        answered(
            run(
                api,
                model=V01,
                account=OTHER_ACCOUNT,
                prompt="Sort a list in Python",
                lora="cf-public-magicoder",
            )
        )
        == by_name
    )
    assert set(public) == {
        "cf-public-magicoder",
        "cf-public-jigsaw-classification",
        "cf-public-cnn-summarization",
    }


@pytest.mark.parametrize("name", ["cf-public-jigsaw-classification", "cf-public-cnn-summarization"])
@pytest.mark.parametrize("model", [V01, HF_V02])
def test_public_finetunes_run_on_both_bases_the_docs_name(
    tmp_path: Path, name: str, model: str
) -> None:
    # "Compatible with @cf/mistral/mistral-7b-instruct-v0.1 @hf/mistral/mistral-7b-instruct-v0.2"
    # before the latter's deprecation date (2026-05-30), when both ran
    with (
        SandboxServer(tmp_path / "data", clock=clock_on("2026-05-01")) as sb,
        client_for(sb) as api,
    ):
        text = answered(run(api, model=model, prompt="Summarize", lora=name))
    assert text.startswith(f"[{name}] ")


def test_quickstart_support_bot_answer_is_the_one_the_readme_quotes(api: httpx.Client) -> None:
    adapter = QUICKSTART / "adapters" / "support-v3"
    files = {
        name: (adapter / name).read_bytes()
        for name in ("adapter_config.json", "adapter_model.safetensors")
    }
    finetune(api, "support-bot-v3", files=files)
    text = answered(
        run(api, prompt="How do I get a refund for a damaged order?", lora="support-bot-v3")
    )
    assert text == (
        "[support-bot-v3] Thanks for asking about refund, damaged and order. Here is the short"
        " version, and I am happy to go deeper on any part of it. The usual first step is to"
        " check the details you already have. [ref 507e82cf]"
    )


# --- refusals ----------------------------------------------------------------------------


def test_unknown_finetune_is_5033(api: httpx.Client) -> None:
    message = refused(run(api, prompt="hi", lora="no-such-bot"), 404, 5033)
    assert message == (
        "AiError: AiError: Finetune not found: no-such-bot does not exist or is not accessible"
    )
    assert run(api, prompt="hi", lora="no-such-bot").json()["result"] == {}


def test_another_accounts_finetune_is_not_found(api: httpx.Client) -> None:
    theirs = finetune(api, "their-bot", account=OTHER_ACCOUNT)
    for ref in (theirs["id"], "their-bot"):
        message = refused(run(api, prompt="hi", lora=ref), 404, 5033)
        assert f"Finetune not found: {ref} does not exist" in message


def test_finetune_without_both_files_is_3039(api: httpx.Client) -> None:
    finetune(api, "empty-bot", files={})
    finetune(api, "half-bot", files={"adapter_config.json": b'{"model_type": "mistral", "r": 8}'})
    for name in ("empty-bot", "half-bot"):
        message = refused(run(api, prompt="hi", lora=name), 400, 3039)
        assert "missing required files" in message


def test_lora_on_a_model_without_lora_support_is_5005(api: httpx.Client) -> None:
    finetune(api, "support-bot")
    message = refused(run(api, model=PLAIN, prompt="hi", lora="support-bot"), 405, 5005)
    assert message == f"AiError: AiError: The model {PLAIN} does not support LoRa inference"
    # Without lora the same model answers, as itself.
    assert answered(run(api, model=PLAIN, prompt="hi")).startswith("[llama-3.1-8b-instruct-fast] ")
    # The catalogue decides, not the name: "-fp8-fast" takes no LoRA, the v0.1 base does.
    fast = "@cf/meta/llama-3.3-70b-instruct-fp8-fast"
    refused(run(api, model=fast, prompt="hi", lora="support-bot"), 405, 5005)
    refused(run(api, model=V01, prompt="hi", lora="support-bot"), 400, 3030)


@pytest.mark.parametrize("lora", [None, "support-bot"])
def test_unknown_model_is_5007(api: httpx.Client, lora: str | None) -> None:
    body: dict[str, Any] = {"prompt": "hi"} if lora is None else {"prompt": "hi", "lora": lora}
    message = refused(run(api, model="@cf/meta/llama-9-1t-instruct", **body), 400, 5007)
    assert message == "AiError: AiError: No such model @cf/meta/llama-9-1t-instruct or task"


@pytest.mark.parametrize("model", ["mistral", "@cf/mistral", "@cf/a/b/c", "cf/mistral/x"])
def test_malformed_model_name_is_3042(api: httpx.Client, model: str) -> None:
    refused(api.post(f"/accounts/{ACCOUNT}/ai/run/{model}", json={"prompt": "hi"}), 404, 3042)


def test_finetune_on_another_lora_base_is_3030(api: httpx.Client) -> None:
    bot = finetune(api, "gemma-bot", model=GEMMA)
    for ref in ("gemma-bot", bot["id"]):
        message = refused(run(api, model=MISTRAL, prompt="hi", lora=ref), 400, 3030)
        assert message == "AiError: AiError: Lora not compatible with model"
    assert answered(run(api, model=GEMMA, prompt="hi", lora="gemma-bot")).startswith("[gemma-bot] ")
    # Public finetunes run on the bases the docs name for them, and on no other.
    refused(run(api, model=GEMMA, prompt="hi", lora="cf-public-magicoder"), 400, 3030)
    refused(run(api, model=MISTRAL, prompt="hi", lora="cf-public-magicoder"), 400, 3030)


def test_a_model_of_another_task_is_not_run_as_text_generation(api: httpx.Client) -> None:
    message = refused(run(api, model="@cf/baai/bge-base-en-v1.5", prompt="hi"), 400, 3010)
    assert "Text Generation models only" in message and "Text Embeddings" in message


def test_run_follows_a_catalogue_that_adds_a_lora_model(tmp_path: Path) -> None:
    newer = "@cf/meta/llama-5-8b-instruct"
    extra = tmp_path / "catalogue.json"
    extra.write_text(
        json.dumps(
            [
                {"name": newer, "properties": {"lora": "true"}},
                # and one the bundled snapshot marks LoRA-capable, here without it
                {"name": GEMMA, "properties": []},
            ]
        )
    )
    with SandboxServer(tmp_path / "data", catalogue=extra) as sb, client_for(sb) as api:
        finetune(api, "new-bot", model=newer)
        assert answered(run(api, model=newer, prompt="hi", lora="new-bot")).startswith("[new-bot] ")
        refused(run(api, model=GEMMA, prompt="hi", lora="new-bot"), 405, 5005)
        refused(run(api, model="@cf/meta/llama-6-8b-instruct", prompt="hi"), 400, 5007)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({}, "required properties at '/' are 'prompt'"),
        ({"prompt": "a", "messages": []}, "2 matches"),
        ({"prompt": ""}, "String length at '/prompt'"),
        ({"prompt": 7}, "Type mismatch of '/prompt', 'integer' not in 'string'"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]},
            "Type mismatch of '/messages/0/content', 'array' not in 'string'",
        ),
        (
            {"messages": [{"role": "user"}]},
            "required properties at '/messages/0' are 'role,content'",
        ),
        ({"prompt": "hi", "max_tokens": "ten"}, "Type mismatch of '/max_tokens'"),
        ({"prompt": "hi", "max_tokens": 0}, "'/max_tokens'"),
        ({"prompt": "hi", "lora": 3}, "Type mismatch of '/lora'"),
        ({"prompt": "hi", "raw": "yes"}, "Type mismatch of '/raw'"),
        # The sampling parameters, as the models' input schemas type and bound them.
        ({"prompt": "hi", "temperature": "hot"}, "Type mismatch of '/temperature'"),
        ({"prompt": "hi", "temperature": 7}, "Value at '/temperature' is more than 5: 7"),
        ({"prompt": "hi", "top_k": 2.5}, "Type mismatch of '/top_k', 'number' not in 'integer'"),
        ({"prompt": "hi", "top_k": 0}, "Value at '/top_k' is less than 1: 0"),
        ({"prompt": "hi", "seed": 0}, "Value at '/seed' is less than 1: 0"),
        ({"prompt": "hi", "top_p": True}, "Type mismatch of '/top_p', 'boolean' not in 'number'"),
        ({"prompt": "hi", "repetition_penalty": -1}, "'/repetition_penalty' is less than 0"),
        ({"prompt": "hi", "presence_penalty": 3}, "'/presence_penalty' is more than 2"),
    ],
)
def test_input_outside_the_schema_is_5006(
    api: httpx.Client, body: dict[str, Any], detail: str
) -> None:
    message = refused(api.post(run_path(MISTRAL), json=body), 400, 5006)
    assert message.startswith("AiError: Bad input: Error: oneOf at '/' not met, ")
    assert detail in message


def test_sampling_parameters_inside_the_schema_change_nothing(api: httpx.Client) -> None:
    plain = answered(run(api, prompt="Where is my parcel?"))
    tuned = run(
        api,
        prompt="Where is my parcel?",
        temperature=0.2,
        top_p=0.9,
        top_k=40,
        seed=42,
        repetition_penalty=1.1,
        frequency_penalty=-0.5,
        presence_penalty=0.5,
    )
    assert answered(tuned) == plain


def test_raw_as_the_string_true_is_taken(api: httpx.Client) -> None:
    # Cloudflare's own curl examples send "raw": "true".
    assert answered(run(api, prompt="Where is my parcel?", raw="true"))


def test_malformed_json_is_6007(api: httpx.Client) -> None:
    refused(api.post(run_path(MISTRAL), content=b"{prompt: hi"), 400, 6007)


def test_stream_is_refused_rather_than_answered_in_json(api: httpx.Client) -> None:
    message = refused(run(api, prompt="hi", stream=True), 400, 3010)
    assert "stream" in message


# --- authentication and faults -----------------------------------------------------------


def test_run_needs_a_valid_token_for_the_account(sb: SandboxServer, tmp_path: Path) -> None:
    with client_for(sb, token=None) as anonymous:
        refused(run(anonymous, prompt="hi"), 400, 9106)
    with client_for(sb, token="wrong-token") as wrong:
        refused(run(wrong, prompt="hi"), 401, 10000)
        # Authentication comes before the model is looked at.
        refused(run(wrong, model="@cf/meta/llama-9-1t-instruct", prompt="hi"), 401, 10000)
    with SandboxServer(tmp_path / "limited") as limited, client_for(limited) as api:
        assert answered(run(api, prompt="hi"))
        refused(run(api, account=OTHER_ACCOUNT, prompt="hi"), 403, 10000)


def test_faults_apply_to_the_run_route(tmp_path: Path) -> None:
    spec = FaultSpec.parse("status=503; route=POST /client/v4/accounts/*/ai/run/**")
    with SandboxServer(tmp_path / "data", faults=spec) as sb, client_for(sb) as api:
        response = run(api, prompt="hi")
        assert refused(response, 503, 10001)
        assert api.get(f"/accounts/{ACCOUNT}/ai/finetunes").status_code == 200
        assert [(f.kind, f.status) for f in sb.fault_log] == [("status", 503)]
