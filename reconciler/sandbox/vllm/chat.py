"""POST /v1/chat/completions on a sandbox replica: the request as vLLM reads it, and a
deterministic answer in vLLM's response shape (ChatCompletionResponse, or its event stream).

The answer
==========

No model runs. The text follows the same rule as the sandbox's Workers AI answers
(sandbox/cloudflare/inference.py), so that one `contains:` check reads alike everywhere:

    [LABEL] Thanks for asking about TOPICS. SENTENCE SENTENCE [ref XXXXXXXX]

- LABEL is the adapter's lora_name when `model` names a loaded adapter, else the base model's
  last path segment (`Llama-3.1-8B-Instruct`).
- TOPICS are the keywords (inference.keywords) of the last `user` message (the last message if
  none is); a message's text is its `content` string, or its `text` parts joined by newlines.
- The SENTENCEs and the ref are picked by a SHA-256 of the base model, the adapter (its name
  and the SHA-256 of the adapter_config.json and weights the replica read when it loaded them,
  or last re-read them) and every message's role and text. So every replica that loaded the
  same files answers alike, and a replica that reads new files answers otherwise.
- `max_completion_tokens` (else `max_tokens`) counts words: a longer answer is cut and its
  finish_reason is "length", else "stop". usage counts words too.
- `n` answers are the same text (the sandbox has no sampling); other keys are ignored.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.sandbox.common.answers import SENTENCES, keywords
from reconciler.sandbox.vllm.wire import error, field_errors, validation_error

NONE = type(None)
_FIELDS: dict[str, tuple[type, ...]] = {
    "messages": (list,),
    "model": (str, NONE),
    "max_tokens": (int, NONE),
    "max_completion_tokens": (int, NONE),
    "n": (int, NONE),
    "stream": (bool, NONE),
    "stream_options": (dict, NONE),
}


@dataclass(frozen=True)
class ChatRequest:
    model: str | None
    messages: tuple[tuple[str, str], ...]  # (role, text)
    max_tokens: int | None
    n: int
    stream: bool
    include_usage: bool


@dataclass(frozen=True)
class Speaker:
    """Who answers: the name the response carries, its label, and what fingerprints it."""

    model: str  # the response's `model`: the lora_name, or the base model
    label: str
    identity: tuple[str, ...]  # () for the base; (lora_name, config sha256, weights sha256)


def _text(content: object) -> str | None:
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        return "\n".join(p for p in parts if isinstance(p, str))
    return None


def _messages(value: list[Any]) -> tuple[tuple[str, str], ...]:
    problems: list[dict[str, Any]] = []
    found: list[tuple[str, str]] = []
    for index, message in enumerate(value):
        where = ("body", "messages", index)
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            problems.append(
                {
                    "type": "missing",
                    "loc": (*where, "role"),
                    "msg": "Field required",
                    "input": message,
                }
            )
            continue
        text = _text(message.get("content"))
        if text is None:
            problems.append(
                {
                    "type": "string_type",
                    "loc": (*where, "content"),
                    "msg": "Input should be a valid string",
                    "input": message.get("content"),
                }
            )
            continue
        found.append((message["role"], text))
    if problems:
        raise validation_error(problems)
    return tuple(found)


def parse_chat(body: Mapping[str, Any]) -> ChatRequest:
    """The request's fields, or vLLM's 400 (pydantic's errors, or SamplingParams' checks)."""
    problems = field_errors(body, _FIELDS, required=("messages",))
    if problems:
        raise validation_error(problems)
    messages = _messages(body["messages"])
    # vLLM: max_completion_tokens wins over the deprecated max_tokens.
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is not None and max_tokens < 1:
        raise error(400, "BadRequestError", f"max_tokens must be at least 1, got {max_tokens}.")
    n = 1 if body.get("n") is None else body["n"]
    if n < 1:
        raise error(400, "BadRequestError", f"n must be at least 1, got {n}.")
    options = body.get("stream_options") or {}
    return ChatRequest(
        model=body.get("model"),
        messages=messages,
        max_tokens=max_tokens,
        n=n,
        stream=bool(body.get("stream")),
        include_usage=bool(options.get("include_usage")),
    )


def _join(words: Sequence[str]) -> str:
    if len(words) < 2:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def _prompt(messages: Sequence[tuple[str, str]]) -> str:
    users = [text for role, text in messages if role == "user"]
    if users:
        return users[-1]
    return messages[-1][1] if messages else ""


@dataclass(frozen=True)
class Answer:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


def answer(base_model: str, speaker: Speaker, request: ChatRequest) -> Answer:
    material = {
        "model": base_model,
        "adapter": list(speaker.identity) or None,
        "messages": [list(m) for m in request.messages],
    }
    digest = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).digest()
    topics = keywords(_prompt(request.messages))
    opening = f"Thanks for asking about {_join(topics)}." if topics else "Thanks for your message."
    first = digest[0] % len(SENTENCES)
    second = (first + 1 + digest[1] % (len(SENTENCES) - 1)) % len(SENTENCES)
    text = f"[{speaker.label}] {opening} {SENTENCES[first]} {SENTENCES[second]}"
    words = f"{text} [ref {digest.hex()[:8]}]".split(" ")
    finish = "stop"
    if request.max_tokens is not None and len(words) > request.max_tokens:
        words, finish = words[: request.max_tokens], "length"
    prompt_tokens = sum(len(text.split()) for _, text in request.messages)
    return Answer(" ".join(words), finish, prompt_tokens, len(words))


def _usage(reply: Answer, n: int) -> dict[str, Any]:
    completion = reply.completion_tokens * n
    return {
        "prompt_tokens": reply.prompt_tokens,
        "total_tokens": reply.prompt_tokens + completion,
        "completion_tokens": completion,
        "prompt_tokens_details": None,
    }


def completion(model: str, reply: Answer, n: int, created: int) -> dict[str, Any]:
    """vLLM's ChatCompletionResponse (fields vLLM leaves unset are null, as it writes them)."""
    message = {
        "role": "assistant",
        "content": reply.text,
        "refusal": None,
        "annotations": None,
        "audio": None,
        "function_call": None,
        "reasoning": None,
    }
    choice = {
        "message": message,
        "logprobs": None,
        "finish_reason": reply.finish_reason,
        "stop_reason": None,
        "token_ids": None,
    }
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": i, **choice} for i in range(n)],
        "service_tier": None,
        "system_fingerprint": None,
        "usage": _usage(reply, n),
        "prompt_logprobs": None,
        "prompt_token_ids": None,
        "kv_transfer_params": None,
    }


def stream(model: str, reply: Answer, request: ChatRequest, created: int) -> Iterator[bytes]:
    """The answer as vLLM streams it: server-sent events, a role chunk, one chunk per word, a
    finishing chunk per choice, the usage chunk if asked, then `data: [DONE]`."""
    ident = f"chatcmpl-{uuid.uuid4().hex}"

    def event(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> bytes:
        chunk: dict[str, Any] = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": choices,
        }
        if usage is not None:
            chunk["usage"] = usage
        return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"

    def delta(index: int, content: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"index": index, "delta": content, "logprobs": None, "finish_reason": finish}

    words = reply.text.split(" ")
    for index in range(request.n):
        yield event([delta(index, {"role": "assistant", "content": ""})])
        for position, word in enumerate(words):
            yield event([delta(index, {"content": word if position == 0 else " " + word})])
        yield event([delta(index, {"content": ""}, reply.finish_reason)])
    if request.include_usage:
        yield event([], _usage(reply, request.n))
    yield b"data: [DONE]\n\n"
