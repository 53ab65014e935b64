"""What a vLLM server answers, checked at the boundary before anything else reads it.

A server of the fleet is trusted no more than any remote API: its model ids reach plans,
lockfiles and terminals, so every id is printable and bounded, every root a bounded path
string, and an answer of another shape is refused as a whole (the caller says which server).
The shapes are vLLM's (vllm/entrypoints/openai/models/serving.py, engine/protocol.py):

    GET /v1/models   {"object": "list", "data": [{"id", "root", "parent", ...}, ...]}
                     the base model(s) have parent null; an adapter's parent is its base
    an error         {"error": {"message", "type", "param", "code"}}; FastAPI's own 404 and
                     405 are {"detail": "..."}, the API-key middleware's 401 {"error": "..."}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from reconciler.base.untrusted import quoted

MAX_ID = 512  # a model id: a served name, a Hub repo id, a path; vLLM sets no limit
MAX_ROOT = 4096  # a root: the model's or the adapter's path, PATH_MAX on Linux
MAX_CARDS = 4096  # far above any --max-loras a GPU holds
MAX_REPLY = 1 << 20  # characters of a chat answer
SHOWN = 80  # characters of an offending value shown in a message


class Malformed(Exception):
    """An answer not of vLLM's shape; str() says what, with any value escaped and cut."""


@dataclass(frozen=True)
class ModelCard:
    id: str
    root: str  # the base model's path or repo id; an adapter's lora_path as it was loaded
    parent: str | None  # None for a base model, else the base an adapter is loaded on


@dataclass(frozen=True)
class Models:
    bases: tuple[ModelCard, ...]
    adapters: tuple[ModelCard, ...]

    def adapter(self, name: str) -> ModelCard | None:
        return next((card for card in self.adapters if card.id == name), None)


@dataclass(frozen=True)
class ChatReply:
    model: str
    text: str  # as the server wrote it: escape before showing (base.untrusted)
    finish_reason: str | None


def shown(value: object) -> str:
    """An untrusted value in a message: cut, quoted, every hidden character escaped."""
    text = value if isinstance(value, str) else repr(value)
    return quoted(text[:SHOWN] + ("…" if len(text) > SHOWN else ""))


def parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: arrays nested thousands deep
        raise Malformed("not JSON") from exc


def checked_id(value: object, what: str = "model id") -> str:
    if not isinstance(value, str) or not value:
        raise Malformed(f"a {what} that is not a non-empty string: {shown(value)}")
    if len(value) > MAX_ID:
        raise Malformed(f"a {what} of {len(value)} characters (at most {MAX_ID}): {shown(value)}")
    if not value.isprintable():
        raise Malformed(f"a {what} with a control or invisible character: {shown(value)}")
    return value


def checked_root(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise Malformed(f"a root that is not a path: {shown(value)}")
    if len(value) > MAX_ROOT or not value.isprintable():
        raise Malformed(
            f"a root that is not a printable path of at most {MAX_ROOT}: {shown(value)}"
        )
    return value


def _card(data: object) -> ModelCard:
    if not isinstance(data, dict):
        raise Malformed(f"a model card that is not an object: {shown(data)}")
    ident = checked_id(data.get("id"))
    parent = data.get("parent")
    return ModelCard(
        id=ident,
        root=checked_root(data.get("root")),
        parent=None if parent is None else checked_id(parent, "parent"),
    )


def models(body: Any) -> Models:
    """/v1/models' answer as Models, or Malformed."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise Malformed('no "data" list of model cards')
    if len(data) > MAX_CARDS:
        raise Malformed(f"{len(data)} model cards (at most {MAX_CARDS})")
    cards = [_card(item) for item in data]
    seen: set[str] = set()
    for card in cards:
        if card.id in seen:
            raise Malformed(f"the model id {shown(card.id)} twice")
        seen.add(card.id)
    return Models(
        bases=tuple(c for c in cards if c.parent is None),
        adapters=tuple(c for c in cards if c.parent is not None),
    )


def chat_reply(body: Any) -> ChatReply:
    """The first choice of a chat completion, or Malformed."""
    choices = body.get("choices") if isinstance(body, dict) else None
    first = choices[0] if isinstance(choices, list) and choices else None
    message = first.get("message") if isinstance(first, dict) else None
    if not isinstance(message, dict):
        raise Malformed("no choices[0].message in the chat completion")
    text = message.get("content")
    if text is None:
        text = ""
    if not isinstance(text, str) or len(text) > MAX_REPLY:
        raise Malformed(f"a message content that is not a string of at most {MAX_REPLY}")
    reason = first.get("finish_reason") if isinstance(first, dict) else None
    if reason is not None:
        reason = checked_id(reason, "finish_reason")
    return ChatReply(model=checked_id(body.get("model")), text=text, finish_reason=reason)


def error_text(body: Any) -> tuple[str, str | None]:
    """An error answer's message and vLLM's error type (None when the envelope is not vLLM's:
    a route the server does not have, or a proxy's answer). Unescaped: the caller cleans it."""
    if not isinstance(body, dict):
        return "", None
    error = body.get("error")
    if isinstance(error, dict):
        kind = error.get("type")
        message = error.get("message")
        return (
            message if isinstance(message, str) else "",
            kind if isinstance(kind, str) and kind else None,
        )
    if isinstance(error, str):
        return error, None
    detail = body.get("detail")
    if isinstance(detail, str):
        return detail, None
    return (json.dumps(detail)[:1000], None) if detail is not None else ("", None)
