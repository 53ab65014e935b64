"""The one check of what a provider's answer names, before it leaves providers/.

An id or a name an API returns is recorded in the lockfile, put in the path of the next call
and shown in plans. Each is checked here, by the lockfile's own rule (the `token` definition of
lock.schema.json, read from the schema, never copied): what passes is what the lockfile will
take back, so a hostile or broken API cannot make apply record a value that every later run
refuses. A value that fails is an EndpointError naming the call (an answer not of the API's
shape: for a create, whether it was made is unknown, so apply keeps its journal entry and the
next run looks for it by name); nothing is recorded.

A remote name is held to the rule of the lock's `remote_name` (one line of printable text),
not to the config's stricter name rule: an account may hold finetunes another tool made, and
they are listed, never recorded under their own name.

    remote_id(value, what, kind)    an id: a finetune's, a dataset's, a model's
    remote_name(value, what)        a finetune's name
    remote_text(value, what, kind)  any other string the answer carries (a model, a date)
    recordable(remote, what)        the whole finetune as the lock would record it (its
                                    provider's fields included), by the lock's `finetune`
    distinct(found, what)           a list as one account's: no id twice
    segment(value)                  an id or an account as one segment of a request's path
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any
from urllib.parse import quote

from jsonschema import Draft202012Validator

from reconciler.base.errors import EndpointError
from reconciler.base.model import RemoteFinetune
from reconciler.base.untrusted import quoted, visible
from reconciler.config import schema

LOCK_SCHEMA = "lock.schema.json"
RULE = "token"  # the lock's definition of an identifier, ids and remote names alike
# Our own bound, which the schema does not set: an id or a name is shown in every plan line
# that names the finetune (Cloudflare's ids are 36 characters, Fireworks' names under 200)
MAX_LENGTH = 1024
SHOWN = 80  # characters of a refused value quoted in the message


@cache
def _rule() -> Callable[[str], bool]:
    """The lock's identifier rule as a test of one string. Read from the schema: its pattern
    matched whole (a schema pattern is searched for, and `$` matches before a final line
    break, so "abc\\n" passes it; matched whole, it fails, as the rule means), its lengths,
    a `not` pattern. Should the definition say more than that, the schema's own validator
    judges (slower: a list of a thousand finetunes is checked in every plan)."""
    definition = schema.load(LOCK_SCHEMA)["$defs"][RULE]
    plain = set(definition) <= {
        *("description", "$comment"),  # words for people: no rule
        *("type", "minLength", "maxLength", "pattern", "not"),
    }
    refused = definition.get("not", {"pattern": "(?!)"})
    if definition.get("type") != "string" or not plain or set(refused) != {"pattern"}:
        validator = _validator(RULE)
        return lambda value: bool(validator.is_valid(value))
    whole = re.compile(definition.get("pattern", ".*"), re.DOTALL)
    banned = re.compile(refused["pattern"])
    low, high = definition.get("minLength", 0), definition.get("maxLength", MAX_LENGTH)
    return lambda value: (
        low <= len(value) <= high
        and whole.fullmatch(value) is not None
        and banned.search(value) is None
    )


@cache
def _validator(definition: str) -> Draft202012Validator:
    lock = schema.load(LOCK_SCHEMA)
    return Draft202012Validator({"$defs": lock["$defs"], "$ref": f"#/$defs/{definition}"})


@cache
def _fields(provider: str) -> Draft202012Validator:
    """The lock's rules for the fields of a finetune of `provider`: the `fields` property of
    its `finetune` definition, and the conditions (`allOf`) that hold for that provider,
    chosen once (each `if` names a provider), so that a finetune costs a fifth of the whole
    definition (a thousand are listed in every plan). A condition that asks more than the
    provider is kept whole."""
    lock = schema.load(LOCK_SCHEMA)
    finetune = lock["$defs"]["finetune"]
    kept: list[Any] = []
    for condition in finetune.get("allOf", []):
        test = condition.get("if", {})
        if (
            set(condition) != {"if", "then"}
            or set(test) != {"properties"}
            or set(test["properties"]) != {"provider"}
        ):
            kept.append(condition)
        elif Draft202012Validator(test).is_valid({"provider": provider}):
            kept.append(condition["then"])
    return Draft202012Validator(
        {
            "$defs": lock["$defs"],
            "properties": {"fields": finetune["properties"]["fields"]},
            "allOf": kept,
        }
    )


def remote_id(value: Any, what: str, kind: str = "finetune id") -> str:
    """`value` as an id the lockfile takes; ProviderError naming the call otherwise. A whole
    number is taken as its digits (an API may give ids as numbers)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return _checked(value, what, kind)


def remote_name(value: Any, what: str, kind: str = "finetune name") -> str:
    return _checked(value, what, kind)


def remote_text(value: Any, what: str, kind: str) -> str:
    """A string the answer carries that is not an identifier (a base model, a description):
    a string, whatever it holds (views escape it), not a number or an object made one."""
    if not isinstance(value, str):
        raise EndpointError(
            f"{visible(what)}: the answer's {kind} is {_kind_of(value)}, not a string; "
            "the API did not answer in its documented shape"
        )
    return value


def recordable(remote: RemoteFinetune, what: str) -> RemoteFinetune:
    """`remote`, once the fields apply would record of it are what the lock's `finetune`
    definition takes for its provider: a field of a shape the lockfile refuses (a nested
    object where it keeps scalars, a number for a description) is refused here, not found by
    the next run's read of the lock. Its id and name: remote_id and remote_name."""
    entry = {"provider": remote.provider, "fields": dict(remote.fields)}
    error = next(iter(_fields(remote.provider).iter_errors(entry)), None)
    if error is None:
        return remote
    where = ".".join(str(p) for p in error.absolute_path) or "the finetune"
    said = visible(error.message[: SHOWN * 2])
    raise EndpointError(
        f"{visible(what)}: the answer's finetune {quoted(remote.name[:SHOWN])} has {where} of a "
        f"shape the lockfile does not take ({said}); refused, nothing was recorded"
    )


def _checked(value: Any, what: str, kind: str) -> str:
    if not isinstance(value, str):
        raise EndpointError(
            f"{visible(what)}: the answer's {kind} is {_kind_of(value)}, not a string; "
            "nothing was recorded"
        )
    if len(value) > MAX_LENGTH:
        why = f"longer than {MAX_LENGTH} characters ({len(value)})"
    elif not _rule()(value):
        why = "not one line of printable text (what the lockfile takes)"
    else:
        return value
    shown = quoted(value[:SHOWN]) + ("…" if len(value) > SHOWN else "")
    raise EndpointError(
        f"{visible(what)}: the answer names the {kind} {shown}, which is {why}; "
        "refused, nothing was recorded"
    )


def distinct(found: Iterable[RemoteFinetune], what: str) -> tuple[RemoteFinetune, ...]:
    """`found`, once no id appears twice in it: a list that names one finetune twice is not
    an account's (read as one, `list` shows it twice and a plan counts it twice). Two
    finetunes may share a name: `import` says which ids and adopts neither."""
    listed = tuple(found)
    ids: set[str] = set()
    for remote in listed:
        if remote.id in ids:
            raise EndpointError(
                f"{visible(what)}: the answer lists the finetune id {quoted(remote.id[:SHOWN])} "
                "twice, which no account's list does"
            )
        ids.add(remote.id)
    return listed


def segment(value: str) -> str:
    """`value` as one segment of a request's path, whatever it holds. An id passes the lock's
    rule with a '/', a '?' or '..' in it; put in a path as it is, such an id (from a hostile
    answer, or a lockfile edited in a pull request) would send the call to another resource
    of the API with the user's token: `../../datasets/X` turns a DELETE of a model into a
    DELETE of a dataset. Encoded, it names one resource, or none."""
    encoded = quote(value, safe="")
    return encoded.replace(".", "%2E") if encoded in (".", "..") else encoded


def _kind_of(value: Any) -> str:
    if value is None:
        return "missing (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
