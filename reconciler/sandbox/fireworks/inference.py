"""Chat completions in the sandbox: which model strings answer, and the deterministic answer.

Served at `/fireworks/inference/v1/chat/completions` (the inference base URL an OpenAI-style
client is given, https://api.fireworks.ai/inference/v1) and at `/fireworks/v1/chat/completions`
(where the official SDK sends it once its base_url is overridden: it then drops `/inference`).

Which `model` answers
=====================

- `accounts/fireworks/models/<base>`: a base served serverless (`supportsServerless`).
- `accounts/fireworks/models/<base>#accounts/<a>/deployments/<d>`: the caller's READY
  deployment of that base.
- `accounts/<a>/models/<adapter>`: the adapter's default loaded copy, once DEPLOYED.
- `accounts/<a>/models/<adapter>#accounts/<a>/deployments/<d>`: its copy on that deployment,
  once DEPLOYED.

Anything else (unknown, not deployed yet, another account's) is 404 with the body Fireworks
answers (seen 2026, warpdotdev/warp#15107): `{"message": "Model not found, inaccessible,
and/or not deployed", "param": "model", "code": "NOT_FOUND", "type": "error"}`. Other errors
take the same flat shape with their own code (sandbox choice: one shape for the route).

The answer
==========

As the Cloudflare sandbox's (cloudflare/inference.py; its keyword rule and sentences are copied
in words.py): `[LABEL] Thanks for asking about TOPICS. SENTENCE SENTENCE [ref XXXXXXXX]`, where
LABEL is the adapter's model id (or the base's id), TOPICS the keywords of the last `user`
message, and the sentences and ref are picked by a SHA-256 of what serves (the base's name, or
the adapter's name and the sha256 of each of its files) and every message. `max_tokens` (or
`max_completion_tokens`; default 256) counts words: a longer answer is cut, with `finish_reason:
"length"`. Sampling parameters are accepted and ignored; `stream: true` is refused (the sandbox
does not stream); other keys are ignored.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from reconciler.sandbox.common.answers import SENTENCES, join, keywords
from reconciler.sandbox.fireworks.errors import FireworksError
from reconciler.sandbox.fireworks.fields import integer
from reconciler.sandbox.fireworks.names import CATALOGUE_ACCOUNT, parse_deployment, parse_model
from reconciler.sandbox.fireworks.service import Service
from reconciler.sandbox.fireworks.views import deployed_state, deployment_state

DEFAULT_MAX_TOKENS = 256
NOT_FOUND_MESSAGE = "Model not found, inaccessible, and/or not deployed"


class InferenceError(Exception):
    def __init__(self, status: int, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.param = status, code, message, param

    def body(self) -> dict[str, Any]:
        return {"message": self.message, "param": self.param, "code": self.code, "type": "error"}


def bad(message: str, param: str | None = None) -> InferenceError:
    return InferenceError(400, "INVALID_ARGUMENT", message, param)


def _gone() -> InferenceError:
    return InferenceError(404, "NOT_FOUND", NOT_FOUND_MESSAGE, "model")


@dataclass(frozen=True)
class Target:
    label: str  # what the answer opens with
    identity: tuple[str, ...]  # what picks the answer: the model and its files' digests


@dataclass(frozen=True)
class Chat:
    model: str
    messages: tuple[tuple[str, str], ...]
    max_tokens: int


def parse_chat(body: dict[str, Any]) -> Chat:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad("model is required", "model")
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise bad("messages must be a non-empty list", "messages")
    messages = tuple(_message(m, i) for i, m in enumerate(raw))
    if body.get("stream") is True:
        raise bad("the sandbox does not stream answers: send stream=false", "stream")
    limit = body.get("max_tokens", body.get("max_completion_tokens"))
    max_tokens = DEFAULT_MAX_TOKENS
    if limit is not None:
        try:
            max_tokens = integer(limit, "max_tokens")
        except FireworksError:
            max_tokens = 0
        if max_tokens < 1:
            raise bad("max_tokens must be a positive integer", "max_tokens")
    return Chat(model, messages, max_tokens)


def _message(message: object, index: int) -> tuple[str, str]:
    param = f"messages[{index}]"
    if not isinstance(message, dict) or not isinstance(message.get("role"), str):
        raise bad(f"{param} must be an object with a role", param)
    content = message.get("content")
    if content is None or isinstance(content, str):
        return message["role"], content or ""
    if isinstance(content, list):  # content parts: the text ones count
        parts = [
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        ]
        return message["role"], "\n".join(p for p in parts if isinstance(p, str))
    raise bad(f"{param}.content must be a string or a list of content parts", param)


def resolve(service: Service, model: str, now: float) -> Target:
    """What answers `model` for a caller who owns the sandbox's accounts; 404 if nothing."""
    name, _, where = model.partition("#")
    parsed = parse_model(name)
    if parsed is None:
        raise _gone()
    account, model_id = parsed
    deployment = None
    if where:
        placed = parse_deployment(where)
        if placed is None or placed[0] not in service.settings.accounts:
            raise _gone()
        deployment = service.serving.get_deployment(*placed)
        if deployment is None or deployment_state(deployment, now) != "READY":
            raise _gone()
    if account == CATALOGUE_ACCOUNT:
        base = service.catalogue.get(name)
        served = base is not None and (
            base.serverless if deployment is None else deployment.base == base.name
        )
        if not served:
            raise _gone()
        return Target(model_id, (name,))
    if account not in service.settings.accounts:
        raise _gone()
    copies = service.serving.list_deployed(account, model_id)
    if deployment is None:
        copies = [c for c in copies if c.default]
    else:
        copies = [c for c in copies if c.deployment_id == deployment.deployment_id]
    if not copies or deployed_state(copies[0], now) != "DEPLOYED":
        raise _gone()
    record = service.store.get_model(account, model_id)
    if record is None:
        raise _gone()
    digests = tuple(f"{f.filename}:{f.sha256}" for f in service.store.files(record.uid))
    return Target(model_id, (name, *digests))


def answer(chat: Chat, target: Target, now: float) -> dict[str, Any]:
    # The model string is not hashed: `m` and `m#deployment` reach the same copy.
    material = {"served": list(target.identity), "messages": chat.messages}
    digest = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).digest()
    users = [text for role, text in chat.messages if role == "user"]
    topics = keywords(users[-1] if users else chat.messages[-1][1])
    opening = f"Thanks for asking about {join(topics)}." if topics else "Thanks for your message."
    first = digest[0] % len(SENTENCES)
    second = (first + 1 + digest[1] % (len(SENTENCES) - 1)) % len(SENTENCES)
    ref = digest.hex()[:8]
    text = f"[{target.label}] {opening} {SENTENCES[first]} {SENTENCES[second]} [ref {ref}]"
    words = text.split(" ")
    finish = "stop"
    if len(words) > chat.max_tokens:
        words, finish = words[: chat.max_tokens], "length"
    prompt_words = sum(len(content.split()) for _, content in chat.messages)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(now),
        "model": chat.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": " ".join(words)},
                "finish_reason": finish,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_words,
            "completion_tokens": len(words),
            "total_tokens": prompt_words + len(words),
        },
    }
