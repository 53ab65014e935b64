"""What makes an uploaded Cohere dataset valid: the rules the sandbox applies, per type.

Every file is read as JSON Lines (one JSON object per line, blank lines ignored, UTF-8); the
real API also takes CSV/TXT/Parquet/Avro for some types, the sandbox does not. The rules,
from Cohere's fine-tuning docs (docs.cohere.com/docs/{chat,rerank,classify}-preparing-the-data):

- chat-finetune-input: `{"messages": [{"role", "content"}, ...]}`, roles System, User or
  Chatbot (any case), at least one User and one Chatbot message per conversation. At least
  2 valid conversations in `data`; an `eval_data` file needs at least 1.
- reranker-finetune-input: `{"query", "relevant_passages": [..], "hard_negatives"?: [..]}`,
  at least one relevant passage, no passage both relevant and a hard negative; at least 256
  unique queries in `data`.
- single-label-classification-finetune-input: `{"text", "label": str}`;
  multi-label-classification-finetune-input: `{"text", "label": [str, ...]}`. A label with
  fewer than 5 examples is dropped (a warning says so); then at least 40 examples and 2
  labels must remain.
- embed-input: `{"text"}` per line; other input types: any JSON object per line; at least
  1 row.

A line that breaks its type's shape fails the whole dataset (`validation_error` names the
file and line), unless the upload asked for `skip_malformed_input=true`: then the line is
dropped and listed in `validation_warnings`. Rows are counted after dropping.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.sandbox.common.bodies import NotJson, TooDeep, parse_json

CHAT = "chat-finetune-input"
RERANK = "reranker-finetune-input"
SINGLE_LABEL = "single-label-classification-finetune-input"
MULTI_LABEL = "multi-label-classification-finetune-input"
EMBED = "embed-input"
# Sandbox choice: a line (one example) longer than this fails the dataset, so that a file of
# one endless line is never read whole into memory. Cohere publishes token limits per
# example, far below this.
MAX_LINE_BYTES = 8 << 20

# The DatasetType enum of Cohere's published schema.
DATASET_TYPES = (
    "embed-input",
    "embed-result",
    "cluster-result",
    "cluster-outliers",
    RERANK,
    SINGLE_LABEL,
    CHAT,
    MULTI_LABEL,
    "batch-chat-input",
    "batch-openai-chat-input",
    "batch-embed-v2-input",
    "batch-chat-v2-input",
)
# Types the API writes itself (results of embed and cluster jobs): nobody uploads them.
OUTPUT_TYPES = ("embed-result", "cluster-result", "cluster-outliers")
FINETUNE_TYPES = (CHAT, RERANK, SINGLE_LABEL, MULTI_LABEL)

MIN_CHAT_CONVERSATIONS = 2
MIN_EVAL_EXAMPLES = 1
MIN_RERANK_QUERIES = 256
MIN_CLASSIFY_EXAMPLES = 40
MIN_EXAMPLES_PER_LABEL = 5
MIN_LABELS = 2
CHAT_ROLES = ("System", "User", "Chatbot")
REQUIRED_FIELDS = {
    CHAT: ["messages"],
    RERANK: ["query", "relevant_passages"],
    SINGLE_LABEL: ["text", "label"],
    MULTI_LABEL: ["text", "label"],
    EMBED: ["text"],
}


@dataclass(frozen=True)
class Verdict:
    """The outcome of validation, decided at upload and revealed once validation 'ends'."""

    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)  # per part: data, eval_data
    metrics: dict[str, Any] | None = None

    @property
    def train_examples(self) -> int:
        return self.rows.get("data", 0)

    def to_json(self) -> str:
        return json.dumps(
            {"error": self.error, "warnings": self.warnings, "rows": self.rows,
             "metrics": self.metrics}
        )  # fmt: skip

    @classmethod
    def from_json(cls, text: str) -> Verdict:
        raw = json.loads(text)
        return cls(raw["error"], raw["warnings"], raw["rows"], raw["metrics"])


def _record(raw: bytes) -> Any:
    """One line's JSON value, read as a request body is (bounded depth, strict JSON)."""
    try:
        return parse_json(raw)
    except TooDeep as exc:
        raise ValueError(str(exc)) from None
    except NotJson as exc:
        if str(exc) == "not UTF-8":
            raise ValueError("not valid UTF-8") from None
        raise ValueError(f"not valid JSON ({exc})") from None


class _Invalid(Exception):
    """A dataset-level failure: becomes `validation_error`."""


def _text(record: dict[str, Any], key: str) -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"'{key}' must be a non-empty string")
    return value


def _strings(record: dict[str, Any], key: str, *, required: bool) -> list[str]:
    value = record.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"'{key}' must be a list of strings")
    return value


def _check_chat(record: dict[str, Any]) -> None:
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError("'messages' must be a non-empty list")
    roles = set()
    for number, message in enumerate(messages, 1):
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise ValueError(f"message {number} must be an object with 'role' and 'content'")
        role = str(message.get("role", "")).capitalize()
        if role not in CHAT_ROLES:
            raise ValueError(
                f"message {number} has role {message.get('role')!r};"
                " roles must be System, User or Chatbot"
            )
        roles.add(role)
    if not {"User", "Chatbot"} <= roles:
        raise ValueError("a conversation needs at least one User and one Chatbot message")


def _check_rerank(record: dict[str, Any]) -> None:
    _text(record, "query")
    relevant = _strings(record, "relevant_passages", required=True)
    if not relevant:
        raise ValueError("'relevant_passages' needs at least one passage")
    both = set(relevant) & set(_strings(record, "hard_negatives", required=False))
    if both:
        raise ValueError("a passage is listed both as relevant and as a hard negative")


def _check_single_label(record: dict[str, Any]) -> None:
    _text(record, "text")
    _text(record, "label")


def _check_multi_label(record: dict[str, Any]) -> None:
    _text(record, "text")
    _strings(record, "label", required=True)


def _check_embed(record: dict[str, Any]) -> None:
    _text(record, "text")


def _check_any(record: dict[str, Any]) -> None:
    pass


_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    CHAT: _check_chat,
    RERANK: _check_rerank,
    SINGLE_LABEL: _check_single_label,
    MULTI_LABEL: _check_multi_label,
    EMBED: _check_embed,
}


def _records(
    path: Path, part: str, check: Callable[[dict[str, Any]], None], skip: bool, warnings: list[str]
) -> Iterator[dict[str, Any]]:
    with path.open("rb") as lines:
        for number, raw in enumerate(iter(lambda: lines.readline(MAX_LINE_BYTES + 1), b""), 1):
            if len(raw) > MAX_LINE_BYTES:
                # Not read on: the rest of the line would be taken for the next lines.
                raise _Invalid(f"line {number} of {part} is longer than {MAX_LINE_BYTES:,} bytes")
            if not raw.strip():
                continue
            try:
                record = _record(raw)
                if not isinstance(record, dict):
                    raise ValueError("not a JSON object")
                check(record)
            except ValueError as exc:
                if not skip:
                    raise _Invalid(f"line {number} of {part}: {exc}") from None
                warnings.append(f"dropped line {number} of {part}: {exc}")
                continue
            yield record


def validate(dataset_type: str, parts: dict[str, Path], *, skip_malformed: bool = False) -> Verdict:
    """Read the uploaded parts (`data`, optional `eval_data`) and judge them."""
    warnings: list[str] = []
    check = _CHECKS.get(dataset_type, _check_any)
    try:
        read = {
            part: list(_records(path, part, check, skip_malformed, warnings))
            for part, path in parts.items()
        }
        rows = {part: len(records) for part, records in read.items()}
        sizes = {part: path.stat().st_size for part, path in parts.items()}
        metrics = _judge(dataset_type, read, sizes, warnings)
    except _Invalid as exc:
        return Verdict(error=str(exc), warnings=warnings)
    return Verdict(warnings=warnings, rows=rows, metrics=metrics)


def _judge(
    dataset_type: str,
    read: dict[str, list[dict[str, Any]]],
    sizes: dict[str, int],
    warnings: list[str],
) -> dict[str, Any] | None:
    train, evaluation = read["data"], read.get("eval_data")
    if dataset_type == CHAT:
        if len(train) < MIN_CHAT_CONVERSATIONS:
            raise _Invalid(
                f"a chat dataset needs at least {MIN_CHAT_CONVERSATIONS} valid conversations,"
                f" found {len(train)}"
            )
        extra = _chat_metrics(train, evaluation or [])
    elif dataset_type == RERANK:
        queries = {r["query"] for r in train}
        if len(queries) < MIN_RERANK_QUERIES:
            raise _Invalid(
                f"a reranker dataset needs at least {MIN_RERANK_QUERIES} unique queries,"
                f" found {len(queries)}"
            )
        extra = _rerank_metrics(train, evaluation or [])
    elif dataset_type in (SINGLE_LABEL, MULTI_LABEL):
        extra = _classify_metrics(train, warnings)
    elif not train:
        raise _Invalid("data contains no rows")
    else:
        return None
    if evaluation is not None and len(evaluation) < MIN_EVAL_EXAMPLES:
        raise _Invalid("eval_data contains no valid examples")
    train_words = sum(len(json.dumps(r).split()) for r in train)
    return {
        "finetune_dataset_metrics": {
            # A rough token estimate: words * 4/3, as tokenizers average for English.
            "trainable_token_count": train_words * 4 // 3,
            "total_examples": len(train) + len(evaluation or []),
            "train_examples": len(train),
            "train_size_bytes": sizes["data"],
            "eval_examples": len(evaluation or []),
            "eval_size_bytes": sizes.get("eval_data", 0),
            **extra,
        }
    }


def _chat_metrics(train: list[dict[str, Any]], evaluation: list[dict[str, Any]]) -> dict[str, Any]:
    def turns(records: list[dict[str, Any]]) -> int:
        return sum(
            1 for r in records for m in r["messages"] if str(m["role"]).capitalize() == "Chatbot"
        )

    first = train[0]["messages"][0]
    preamble = first["content"] if str(first["role"]).capitalize() == "System" else ""
    return {
        "chat_data_metrics": {
            "num_train_turns": turns(train),
            "num_eval_turns": turns(evaluation),
            "preamble": preamble,
        }
    }


def _rerank_metrics(
    train: list[dict[str, Any]], evaluation: list[dict[str, Any]]
) -> dict[str, Any]:
    def count(records: list[dict[str, Any]], key: str) -> int:
        return sum(len(r.get(key) or []) for r in records)

    return {
        "reranker_data_metrics": {
            "num_train_queries": len(train),
            "num_train_relevant_passages": count(train, "relevant_passages"),
            "num_train_hard_negatives": count(train, "hard_negatives"),
            "num_eval_queries": len(evaluation),
            "num_eval_relevant_passages": count(evaluation, "relevant_passages"),
            "num_eval_hard_negatives": count(evaluation, "hard_negatives"),
        }
    }


def _labels(record: dict[str, Any]) -> list[str]:
    label = record["label"]
    return [label] if isinstance(label, str) else list(dict.fromkeys(label))


def _classify_metrics(train: list[dict[str, Any]], warnings: list[str]) -> dict[str, Any]:
    counts = Counter(label for r in train for label in _labels(r))
    kept = {label for label, n in counts.items() if n >= MIN_EXAMPLES_PER_LABEL}
    for label in sorted(set(counts) - kept):
        warnings.append(
            f"label {label!r} has {counts[label]} examples (fewer than"
            f" {MIN_EXAMPLES_PER_LABEL}) and was dropped"
        )
    examples = [r for r in train if any(label in kept for label in _labels(r))]
    if len(kept) < MIN_LABELS or len(examples) < MIN_CLASSIFY_EXAMPLES:
        raise _Invalid(
            f"a classification dataset needs at least {MIN_CLASSIFY_EXAMPLES} examples and"
            f" {MIN_LABELS} labels with {MIN_EXAMPLES_PER_LABEL} or more examples each,"
            f" found {len(examples)} examples and {len(kept)} such labels"
        )
    return {
        "classify_data_metrics": {
            "label_metrics": [
                {
                    "total_examples": counts[label],
                    "label": label,
                    "samples": [r["text"] for r in train if label in _labels(r)][:3],
                }
                for label in sorted(kept)
            ]
        }
    }
