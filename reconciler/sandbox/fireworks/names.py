"""Resource ids and resource names: `accounts/{account}/models/{model}` and its kin."""

from __future__ import annotations

import re
import secrets
import string

from reconciler.sandbox.fireworks.errors import invalid

# "1-63 characters of a-z, 0-9 and -, must not begin or end with -, must not begin with a
# digit" (docs.fireworks.ai/getting-started/concepts; README of the gateway fragments, fact 8).
RESOURCE_ID_RE = re.compile(r"[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?")
# The account whose models are Fireworks' own catalogue (accounts/fireworks/models/...).
CATALOGUE_ACCOUNT = "fireworks"

_MODEL_RE = re.compile(r"accounts/([^/]+)/models/([^/#]+)")
_DEPLOYMENT_RE = re.compile(r"accounts/([^/]+)/deployments/([^/#]+)")

_ALPHABET = string.ascii_lowercase + string.digits


def check_id(value: object, what: str) -> str:
    if not isinstance(value, str) or not RESOURCE_ID_RE.fullmatch(value):
        raise invalid(
            f"invalid {what} {value!r}: an id is 1-63 characters of a-z, 0-9 and '-',"
            " starting with a letter and not ending with '-'"
        )
    return value


def model_name(account: str, model_id: str) -> str:
    return f"accounts/{account}/models/{model_id}"


def deployment_name(account: str, deployment_id: str) -> str:
    return f"accounts/{account}/deployments/{deployment_id}"


def deployed_model_name(account: str, deployed_id: str) -> str:
    return f"accounts/{account}/deployedModels/{deployed_id}"


def parse_model(name: str) -> tuple[str, str] | None:
    """(account, model id) of `accounts/A/models/M`, or None."""
    match = _MODEL_RE.fullmatch(name)
    return (match.group(1), match.group(2)) if match else None


def parse_deployment(name: str) -> tuple[str, str] | None:
    match = _DEPLOYMENT_RE.fullmatch(name)
    return (match.group(1), match.group(2)) if match else None


def random_id(prefix: str = "", length: int = 8) -> str:
    """A server-assigned id: a letter first, as every resource id must start with one."""
    tail = "".join(secrets.choice(_ALPHABET) for _ in range(length))
    if prefix:
        return f"{prefix[: 63 - length - 1].rstrip('-')}-{tail}"
    return secrets.choice(string.ascii_lowercase) + tail[1:]
