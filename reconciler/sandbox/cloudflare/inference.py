"""Workers AI text generation in the sandbox: which models exist, what a run request may hold,
and the deterministic answer it gets.

The answer
==========

`POST /accounts/{account_id}/ai/run/{model_name}` answers `result: {"response": TEXT,
"usage": {...}}`. No model runs: TEXT is built by a fixed rule, so a test can predict it.

    [LABEL] Thanks for asking about TOPICS. SENTENCE SENTENCE [ref XXXXXXXX]

- LABEL is the finetune's name when the request names one in `lora` (by name or by id), else
  the model's last path segment (`mistral-7b-instruct-v0.2-lora` for
  `@cf/mistral/mistral-7b-instruct-v0.2-lora`).
- TOPICS are the keywords of the input text, in the order they first appear, at most 6, each
  spelled as it is first written, joined as `a`, `a and b`, `a, b and c`. The input text is
  `prompt`, or with `messages` the `content` of the last message whose role is `user` (the
  last message if none is). A keyword is a word (letters and digits, possibly joined by `'`
  or `-`) of at least 3 characters that is not in STOP_WORDS (common/answers.py; compared ignoring
  case) and not already taken (ignoring case). With no keyword the sentence is
  `Thanks for your message.` instead.
- The two SENTENCEs come from the fixed list SENTENCES, and XXXXXXXX is 8 hex digits: both
  are picked by a SHA-256 fingerprint of the model, the adapter (the finetune's name and the
  SHA-256 of its uploaded `adapter_config.json` and `adapter_model.safetensors`; a public
  finetune's name) and the whole input (the prompt, or every message's role and content).
  The same request to the same adapter always gets the same text; another adapter, or
  another input, gets another ref (and usually other sentences).
- `max_tokens` (default 256) counts words: a longer answer is cut after that many
  space-separated words, as a model stops at its token limit (the ref goes first). A whole
  answer is 26 to 38 words plus its keywords (and their "and"); the keywords end by word
  6 + the number of keywords, so a smaller `max_tokens` cuts into them.
- The sampling parameters (`temperature`, `top_p`, `top_k`, `seed`, `repetition_penalty`,
  `frequency_penalty`, `presence_penalty`) and `raw` are checked for type and range as the
  models' published input schemas set them (SAMPLING below), and otherwise ignored: they
  never change the text. Other keys are ignored.

So a `contains:` check may rely on: the label, and every keyword of the input among its
first six, verbatim.

Example: the prompt "How do I get a refund for a damaged order?" sent with
`lora: support-bot-v3` answers `[support-bot-v3] Thanks for asking about refund, damaged
and order. ...` ("How", "get" and "for" are stop words, "do", "I" and "a" are too short).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.sandbox.common.answers import SENTENCES, join, keywords

# Which models exist and which take a `lora` is the catalogue's to say (catalogue.py), as on
# the real API; this module only shapes the answer.

DEFAULT_MAX_TOKENS = 256  # the schema's default
# name: (JSON type, minimum, maximum), from the text-generation models' input schemas in
# Cloudflare's catalogue records. Where two records differ (top_p: 0.001-1 or 0-2; the two
# penalties: 0-2 or -2-2) the sandbox takes the wider range: it refuses only what no model's
# schema allows.
SAMPLING: dict[str, tuple[str, float, float]] = {
    "temperature": ("number", 0, 5),
    "top_p": ("number", 0, 2),
    "top_k": ("integer", 1, 50),
    "seed": ("integer", 1, 9999999999),
    "repetition_penalty": ("number", 0, 2),
    "frequency_penalty": ("number", -2, 2),
    "presence_penalty": ("number", -2, 2),
}
MAX_PROMPT_CHARS = 131072  # the schema's maxLength for `prompt` and a message's `content`


class BadInput(ValueError):
    """The body does not fit the text-generation schema; str() is the reason."""


@dataclass(frozen=True)
class RunInput:
    """A text-generation request: exactly one of prompt and messages is set."""

    prompt: str | None
    messages: tuple[tuple[str, str], ...] | None
    lora: str | None
    max_tokens: int
    stream: bool

    @property
    def text(self) -> str:
        """The text the keywords come from (see the module docstring)."""
        if self.prompt is not None:
            return self.prompt
        messages = self.messages or ()
        users = [content for role, content in messages if role == "user"]
        if users:
            return users[-1]
        return messages[-1][1] if messages else ""

    def canonical(self) -> object:
        if self.prompt is not None:
            return {"prompt": self.prompt}
        return {"messages": [list(m) for m in self.messages or ()]}


@dataclass(frozen=True)
class Adapter:
    """What identifies a LoRA adapter for the answer: its name and its files' digests."""

    name: str
    digests: tuple[str, ...] = ()


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _mismatch(pointer: str, value: object, expected: str) -> str:
    return f"Type mismatch of '{pointer}', '{_json_type(value)}' not in '{expected}'"


def _text_problems(pointer: str, value: object, *, min_length: int) -> list[str]:
    if not isinstance(value, str):
        return [_mismatch(pointer, value, "string")]
    if len(value) < min_length:
        return [f"String length at '{pointer}' is less than {min_length}"]
    if len(value) > MAX_PROMPT_CHARS:
        return [f"String length at '{pointer}' is more than {MAX_PROMPT_CHARS}"]
    return []


def _messages_problems(value: object) -> list[str]:
    if not isinstance(value, list):
        return [_mismatch("/messages", value, "array")]
    problems: list[str] = []
    for index, message in enumerate(value):
        pointer = f"/messages/{index}"
        if not isinstance(message, dict):
            problems.append(_mismatch(pointer, message, "object"))
            continue
        missing = [k for k in ("role", "content") if k not in message]
        if missing:
            problems.append(f"required properties at '{pointer}' are 'role,content'")
            continue
        if not isinstance(message["role"], str):
            problems.append(_mismatch(pointer + "/role", message["role"], "string"))
        problems += _text_problems(pointer + "/content", message["content"], min_length=0)
    return problems


def _integer(value: object) -> int | None:
    """A JSON integer (2 or 2.0), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _flag(body: Mapping[str, Any], key: str, problems: list[str]) -> bool:
    # Cloudflare's own curl examples send `"raw": "true"`, and the API takes them.
    value: object = body.get(key)
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    problems.append(_mismatch("/" + key, value, "boolean"))
    return False


def _sampling_problems(key: str, value: object, kind: str, low: float, high: float) -> list[str]:
    if value is None:
        return []
    number: float | None = None
    if kind == "integer":
        number = _integer(value)
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
        number = value  # (NaN is not equal to itself, and is no number)
    if number is None:
        return [_mismatch("/" + key, value, kind)]
    if number < low:
        return [f"Value at '/{key}' is less than {low:g}: {_g(number)}"]
    if number > high:
        return [f"Value at '/{key}' is more than {high:g}: {_g(number)}"]
    return []


def _g(number: float) -> str:
    """`number` as `{:g}` writes it, also for an integer too large for a float (a JSON
    integer may have 4300 digits): its leading digits and its exponent."""
    try:
        return f"{number:g}"
    except OverflowError:
        digits = str(abs(int(number)))
        sign = "-" if number < 0 else ""
        fraction = digits[1:6].rstrip("0")
        return f"{sign}{digits[0]}{'.' if fraction else ''}{fraction}e+{len(digits) - 1}"


def parse_input(body: Mapping[str, Any]) -> RunInput:
    """Check a run body against the text-generation schema (`prompt` xor `messages`).

    Raises BadInput worded like the API's own validator ("oneOf at '/' not met, ...").
    """
    has_prompt, has_messages = "prompt" in body, "messages" in body
    if has_prompt and has_messages:
        raise BadInput("oneOf at '/' not met, 2 matches: 'prompt' and 'messages' both given")
    if not has_prompt and not has_messages:
        raise BadInput(
            "oneOf at '/' not met, 0 matches: required properties at '/' are 'prompt',"
            " required properties at '/' are 'messages'"
        )
    problems: list[str] = []
    prompt: str | None = None
    messages: tuple[tuple[str, str], ...] | None = None
    if has_prompt:
        problems += _text_problems("/prompt", body["prompt"], min_length=1)
        if not problems:
            prompt = body["prompt"]
    else:
        problems += _messages_problems(body["messages"])
        if not problems:
            messages = tuple((m["role"], m["content"]) for m in body["messages"])
    lora = body.get("lora")
    if lora is not None and not isinstance(lora, str):
        problems.append(_mismatch("/lora", lora, "string"))
        lora = None
    max_tokens = DEFAULT_MAX_TOKENS
    if body.get("max_tokens") is not None:
        number = _integer(body["max_tokens"])
        if number is None:
            problems.append(_mismatch("/max_tokens", body["max_tokens"], "integer"))
        elif number < 1:
            problems.append(f"Value at '/max_tokens' is less than 1: {number}")
        else:
            max_tokens = number
    for key, (kind, low, high) in SAMPLING.items():
        problems += _sampling_problems(key, body.get(key), kind, low, high)
    _flag(body, "raw", problems)
    stream = _flag(body, "stream", problems)
    if problems:
        other = "messages" if has_prompt else "prompt"  # the branch the body did not take
        branch = f"required properties at '/' are '{other}'"
        raise BadInput(f"oneOf at '/' not met, 0 matches: {branch}, " + ", ".join(problems))
    return RunInput(prompt, messages, lora, max_tokens, stream)


def fingerprint(model: str, adapter: Adapter | None, run: RunInput) -> bytes:
    identity = None if adapter is None else [adapter.name, *adapter.digests]
    material = {"model": model, "adapter": identity, "input": run.canonical()}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).digest()


def model_label(model: str) -> str:
    return model.rsplit("/", 1)[-1]


def answer(model: str, adapter: Adapter | None, run: RunInput) -> dict[str, object]:
    """The run's `result`: the response text and a word-count `usage`."""
    digest = fingerprint(model, adapter, run)
    label = adapter.name if adapter is not None else model_label(model)
    topics = keywords(run.text)
    opening = f"Thanks for asking about {join(topics)}." if topics else "Thanks for your message."
    first = digest[0] % len(SENTENCES)
    second = (first + 1 + digest[1] % (len(SENTENCES) - 1)) % len(SENTENCES)
    text = f"[{label}] {opening} {SENTENCES[first]} {SENTENCES[second]} [ref {digest.hex()[:8]}]"
    words = text.split(" ")
    if len(words) > run.max_tokens:
        words = words[: run.max_tokens]
        text = " ".join(words)
    prompt_words = sum(len(t.split()) for t in _input_texts(run))
    return {
        "response": text,
        "usage": {
            "prompt_tokens": prompt_words,
            "completion_tokens": len(words),
            "total_tokens": prompt_words + len(words),
        },
    }


def _input_texts(run: RunInput) -> list[str]:
    if run.prompt is not None:
        return [run.prompt]
    return [content for _, content in run.messages or ()]
