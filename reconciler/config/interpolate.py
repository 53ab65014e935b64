"""${VAR} in a config string: ${NAME}, ${NAME:-default} (the default may hold references
itself: ${A:-${B}}), and $${ for a literal ${.

A string is parsed whole before anything is looked up, so that a malformed reference is
reported, not passed on as text, and so that a reference to a secret is refused wherever it
stands, even in a default that this run would not use.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.base.credentials import is_secret

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NEXT = re.compile(r"\$\$\{|\$\{|\}")  # what the parser stops at; everything else is text
_NAMES = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")
MAX_NESTING = 8  # ${A:-${B:-${C}}} is three; a deeper chain is a mistake, not a config

LITERAL = (
    "write ${NAME} or ${NAME:-default} (NAME: letters, digits and '_'), or $${ for a literal ${"
)


@dataclass(frozen=True)
class Ref:
    name: str
    default: tuple[str | Ref, ...] | None


@dataclass
class Expansion:
    value: str
    problems: list[str] = field(default_factory=list)  # each a sentence without the place
    resolved: bool = True  # False: the value is the original text, not to be checked further


class _Malformed(Exception):
    pass


def references(text: str) -> set[str]:
    """Every variable name `text` may refer to (a superset: escaped ones included)."""
    return set(_NAMES.findall(text))


def expand(text: str, env: Mapping[str, str]) -> Expansion:
    if "${" not in text:
        return Expansion(text)
    try:
        parts, _ = _parse(text, 0, 0, in_default=False)
    except _Malformed as exc:
        return Expansion(text, [str(exc)], resolved=False)
    secret = sorted({r.name for r in _refs(parts) if is_secret(r.name)})
    if secret:
        return Expansion(
            text,
            [
                f"${{{name}}} would copy a secret into the config: reconciler treats {name} "
                "as a credential, which it reads from the environment itself and which would "
                "otherwise be shown in plans and saved in plan files; remove the reference"
                for name in secret
            ],
            resolved=False,
        )
    problems: list[str] = []
    value = _evaluate(parts, env, problems)
    return Expansion(text, problems, resolved=False) if problems else Expansion(value)


def _parse(text: str, i: int, depth: int, *, in_default: bool) -> tuple[tuple[str | Ref, ...], int]:
    """Parts from position i to the end of the text or, in a default, to its closing brace.
    Returns them and the position of that brace (-1 for a default never closed)."""
    parts: list[str | Ref] = []
    buffer: list[str] = []

    def flush() -> None:
        text_part = "".join(buffer)
        buffer.clear()
        if text_part:
            parts.append(text_part)

    while True:
        m = _NEXT.search(text, i)
        if m is None:
            buffer.append(text[i:])
            flush()
            return tuple(parts), (-1 if in_default else len(text))
        buffer.append(text[i : m.start()])
        i = m.end()
        if m.group() == "}":
            if in_default:
                flush()
                return tuple(parts), m.start()
            buffer.append("}")
            continue
        if m.group() == "$${":
            buffer.append("${")
            continue
        start = m.start()
        name = _NAME.match(text, i)
        if name is None:
            raise _Malformed(
                f"'${{' at character {start + 1} does not start a reference; {LITERAL}"
            )
        unclosed = _Malformed(
            f"${{{name.group()} at character {start + 1} is not closed: expected '}}' or "
            f"':-default}}' after the name; {LITERAL}"
        )
        default: tuple[str | Ref, ...] | None = None
        if text.startswith("}", name.end()):
            i = name.end() + 1
        elif text.startswith(":-", name.end()):
            if depth + 1 > MAX_NESTING:
                raise _Malformed(
                    f"references nested more than {MAX_NESTING} deep in defaults "
                    f"(at character {start + 1}); {LITERAL}"
                )
            default, brace = _parse(text, name.end() + 2, depth + 1, in_default=True)
            if brace < 0:
                raise unclosed
            i = brace + 1
        else:
            raise unclosed
        flush()
        parts.append(Ref(name.group(), default))


def _refs(parts: tuple[str | Ref, ...]) -> list[Ref]:
    found: list[Ref] = []
    for part in parts:
        if isinstance(part, Ref):
            found.append(part)
            if part.default is not None:
                found += _refs(part.default)
    return found


def _evaluate(parts: tuple[str | Ref, ...], env: Mapping[str, str], problems: list[str]) -> str:
    out: list[str] = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
            continue
        value = env.get(part.name, "")
        if value != "":
            out.append(value)  # a value is never expanded again: it is data, not config
        elif part.default is not None:
            out.append(_evaluate(part.default, env, problems))
        else:
            problems.append(
                f"environment variable {part.name} is not set (referenced as ${{{part.name}}}); "
                f"set it or write ${{{part.name}:-default}}"
            )
    return "".join(out)
