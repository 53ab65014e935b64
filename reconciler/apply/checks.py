"""Smoke tests: run each finetune's declared checks through the provider's inference API.

A check sends a prompt (or chat messages) to the base model with the finetune as its LoRA and
says what the answer must contain, must not contain, or must match. Evaluating an answer is
pure; only run() talks to the network.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.base.errors import ReconcilerError
from reconciler.base.model import DesiredFinetune


@dataclass(frozen=True)
class Check:
    name: str
    prompt: str | None
    messages: tuple[Mapping[str, str], ...]
    contains: tuple[str, ...] = ()
    not_contains: tuple[str, ...] = ()
    matches: str | None = None
    lora: str | None = None  # default: the finetune itself; may name a public adapter
    max_tokens: int | None = None


@dataclass(frozen=True)
class CheckResult:
    finetune: str
    check: str
    ok: bool
    detail: str
    response: str


def parse(raw: Sequence[Mapping[str, Any]]) -> tuple[Check, ...]:
    """Checks as the config declares them (already schema-valid)."""
    checks = []
    for i, item in enumerate(raw):
        expect = item.get("expect") or {}
        checks.append(
            Check(
                name=item.get("name") or f"check {i + 1}",
                prompt=item.get("prompt"),
                messages=tuple(item.get("messages") or ()),
                contains=_strings(expect.get("contains")),
                not_contains=_strings(expect.get("not_contains")),
                matches=expect.get("matches"),
                lora=item.get("lora"),
                max_tokens=item.get("max_tokens"),
            )
        )
    return tuple(checks)


def _strings(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def request(check: Check, finetune: DesiredFinetune) -> dict[str, Any]:
    body: dict[str, Any] = {"lora": check.lora or finetune.name}
    if check.prompt is not None:
        body["prompt"] = check.prompt
    else:
        body["messages"] = [dict(m) for m in check.messages]
    if check.max_tokens is not None:
        body["max_tokens"] = check.max_tokens
    return body


def evaluate(check: Check, response: str) -> tuple[bool, str]:
    """Whether an answer passes, and why not (case-insensitive for contains)."""
    lowered = response.lower()
    missing = [c for c in check.contains if c.lower() not in lowered]
    if missing:
        return False, "missing " + ", ".join(repr(m) for m in missing)
    present = [c for c in check.not_contains if c.lower() in lowered]
    if present:
        return False, "contains " + ", ".join(repr(p) for p in present)
    if check.matches is not None and not re.search(check.matches, response):
        return False, f"does not match /{check.matches}/"
    return True, "passed"


Runner = Callable[[str, str, dict[str, Any]], Any]  # (account, model, body) -> result


def run(finetunes: Sequence[DesiredFinetune], runner: Callable[[str], Runner]) -> list[CheckResult]:
    """Every check of every finetune; an API error fails that check, not the run."""
    results = []
    for finetune in finetunes:
        for check in parse(finetune.checks):
            try:
                result = runner(finetune.provider)(
                    finetune.account, finetune.model, request(check, finetune)
                )
            except ReconcilerError as exc:
                results.append(CheckResult(finetune.name, check.name, False, str(exc), ""))
                continue
            results.append(_judged(finetune.name, check, result))
    return results


def _judged(name: str, check: Check, result: Any) -> CheckResult:
    """One check's result. A fleet answers once per server ({"responses": {server: text}}):
    every server's answer must pass, and a failure names the server."""
    answers = result.get("responses") if isinstance(result, Mapping) else None
    if not isinstance(answers, Mapping) or not answers:
        text = _text(result)
        ok, detail = evaluate(check, text)
        return CheckResult(name, check.name, ok, detail, text)
    failed = []
    for where, answer in answers.items():
        ok, detail = evaluate(check, str(answer))
        if not ok:
            failed.append(f"{where}: {detail}")
    first = str(next(iter(answers.values())))
    if failed:
        return CheckResult(name, check.name, False, "; ".join(failed), first)
    return CheckResult(name, check.name, True, f"passed on {len(answers)} servers", first)


def _text(result: Any) -> str:
    if isinstance(result, Mapping) and isinstance(result.get("response"), str):
        return str(result["response"])
    return str(result)
