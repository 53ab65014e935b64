"""Fireworks' answers, checked at the boundary and made into frozen records.

Every value read from the API is checked here before anything else sees it: a resource name
must be `accounts/<account>/models/<id>` of the account asked about, an id must fit the
charset and length of Fireworks' resource ids (it becomes a URL path segment), a state or a
status code must be one of the enum's known values (a state we do not know is one we cannot
act on safely), and a number must be a whole number (proto-JSON may send an int64 as a
string). What fails is an EndpointError naming the field, never a KeyError or a wrong action.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.base.errors import EndpointError
from reconciler.base.untrusted import visible
from reconciler.providers.fireworks.marker import split_description

# What Fireworks documents for an id it is given (docs.fireworks.ai, concepts): 1-63 of
# a-z, 0-9 and '-', starting with a letter, not ending with '-'. Ids we create obey it.
ID_RULE = re.compile(r"[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?")
ID_RULE_TEXT = (
    "1 to 63 characters of a-z, 0-9 and '-', starting with a letter and not ending with '-'"
)
# What we accept in an answer (ids made before the rule, or by Fireworks itself): the same
# charset and length, any order. Enough to be one safe path segment, and nothing more.
REMOTE_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_MODEL_NAME = re.compile(r"accounts/([a-z0-9][a-z0-9-]{0,62})/models/([a-z0-9][a-z0-9-]{0,62})")
_DEPLOYED_NAME = re.compile(
    r"accounts/([a-z0-9][a-z0-9-]{0,62})/deployedModels/([a-z0-9][a-z0-9-]{0,62})"
)
_DEPLOYMENT_NAME = re.compile(
    r"accounts/([a-z0-9][a-z0-9-]{0,62})/deployments/([a-z0-9][a-z0-9-]{0,62})"
)
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d)")
_KIND = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
_MODULE = re.compile(r"[A-Za-z0-9_.]{1,128}")

# types/model.py (fireworks-ai 1.2.30): Model.state
MODEL_STATES = frozenset({"STATE_UNSPECIFIED", "UPLOADING", "READY"})
# types/shared/deployed_model.py: DeployedModel.state (and deployedModelRefs[].state)
DEPLOYED_STATES = frozenset(
    {"STATE_UNSPECIFIED", "UNDEPLOYING", "DEPLOYING", "DEPLOYED", "UPDATING"}
)
# types/shared/status.py: status.code, as strings on a resource
STATUS_CODES = (
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
)
PEFT_ADDON = "HF_PEFT_ADDON"  # the kind of a LoRA adapter model
MAX_DESCRIPTION = 4096  # Fireworks keeps them under 1000; more means this is not its answer
MAX_MODULES = 64


@dataclass(frozen=True)
class DeployedRef:
    """One loaded copy of a model (deployedModelRefs[], filled by Get only)."""

    name: str  # accounts/<a>/deployedModels/<id>
    deployment: str | None  # accounts/<a>/deployments/<id>; None when serverless
    state: str  # one of DEPLOYED_STATES


@dataclass(frozen=True)
class FireworksModel:
    account: str
    id: str  # the <id> of accounts/<account>/models/<id>
    kind: str  # "HF_PEFT_ADDON" for an adapter; any other kind is not ours
    state: str  # one of MODEL_STATES: UPLOADING until validateUpload succeeds
    status_code: str  # one of STATUS_CODES ("OK" when absent)
    status_message: str
    display_name: str | None
    description: str | None  # the user's part: the digest marker taken off
    digest: str | None  # the marker's "sha256:<hex>" (marker.py), None when absent
    base_model: str | None  # peftDetails.baseModel: accounts/<a>/models/<id>
    rank: int | None  # peftDetails.r
    target_modules: tuple[str, ...]
    created_at: str | None
    updated_at: str | None
    deployed: tuple[DeployedRef, ...] = ()
    supports_lora: bool | None = None  # on a base model: whether adapters may name it
    # on a base model: served without a deployment (with supports_lora: serverless LoRA)
    supports_serverless: bool | None = None

    @property
    def name(self) -> str:
        return f"accounts/{self.account}/models/{self.id}"


def model_ref(name: str) -> tuple[str, str] | None:
    """(account, id) of a model resource name `accounts/<a>/models/<id>`, or None."""
    match = _MODEL_NAME.fullmatch(name)
    return (match.group(1), match.group(2)) if match else None


def deployment_ref(name: str) -> tuple[str, str] | None:
    """(account, id) of a deployment resource name `accounts/<a>/deployments/<id>`, or None."""
    match = _DEPLOYMENT_NAME.fullmatch(name)
    return (match.group(1), match.group(2)) if match else None


def parse_model(account: str, item: Any, what: str) -> FireworksModel:
    """A Model of the answer, checked: EndpointError naming the field if it is not one."""
    if not isinstance(item, dict):
        raise EndpointError(f"{what}: a model in the answer is not a JSON object")
    name = item.get("name")
    ref = model_ref(name) if isinstance(name, str) else None
    if ref is None:
        raise EndpointError(f"{what}: {_shown(name)} is not a model name accounts/<a>/models/<id>")
    if ref[0] != account:
        raise EndpointError(f"{what}: the answer holds {_shown(name)}, of another account")
    where = f"{what}: model {ref[1]}"
    description, digest = split_description(_text(item, "description", where, MAX_DESCRIPTION))
    status = item.get("status") or {}
    if not isinstance(status, dict):
        raise EndpointError(f"{where}: status is not a JSON object")
    peft = item.get("peftDetails") or {}
    if not isinstance(peft, dict):
        raise EndpointError(f"{where}: peftDetails is not a JSON object")
    base = _text(peft, "baseModel", where, 200)
    if base is not None and model_ref(base) is None:
        raise EndpointError(f"{where}: peftDetails.baseModel {_shown(base)} is not a model name")
    return FireworksModel(
        account=account,
        id=ref[1],
        kind=_enum_like(item.get("kind", "KIND_UNSPECIFIED"), "kind", where),
        state=_one_of(item.get("state", "STATE_UNSPECIFIED"), MODEL_STATES, "state", where),
        status_code=_one_of(status.get("code", "OK"), frozenset(STATUS_CODES), "status", where),
        status_message=_text(status, "message", where, MAX_DESCRIPTION) or "",
        display_name=_text(item, "displayName", where, 200),
        description=description,
        digest=digest,
        base_model=base,
        rank=_rank(peft.get("r"), where),
        target_modules=_modules(peft.get("targetModules"), where),
        created_at=_time(item, "createTime", where),
        updated_at=_time(item, "updateTime", where),
        deployed=_refs(account, item.get("deployedModelRefs"), where),
        supports_lora=_flag(item, "supportsLora", where),
        supports_serverless=_flag(item, "supportsServerless", where),
    )


def whole_number(value: Any, what: str) -> int:
    """An integer as proto-JSON sends one: a JSON number, or (int64) a string of digits."""
    if isinstance(value, bool):
        raise EndpointError(f"{what} is {_shown(value)}, not a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,19}", value):
        return int(value)
    raise EndpointError(f"{what} is {_shown(value)}, not a whole number")


def _rank(value: Any, where: str) -> int | None:
    if value is None:
        return None
    rank = whole_number(value, f"{where}: peftDetails.r")
    if not 1 <= rank <= 4096:
        raise EndpointError(f"{where}: peftDetails.r is {rank}, not a LoRA rank")
    return rank


def _modules(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if (
        not isinstance(value, list)
        or len(value) > MAX_MODULES
        or not all(isinstance(m, str) and _MODULE.fullmatch(m) for m in value)
    ):
        raise EndpointError(f"{where}: peftDetails.targetModules is not a list of module names")
    return tuple(value)


def _refs(account: str, value: Any, where: str) -> tuple[DeployedRef, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise EndpointError(f"{where}: deployedModelRefs is not a list")
    refs: list[DeployedRef] = []
    for ref in value:
        name = ref.get("name") if isinstance(ref, dict) else None
        match = _DEPLOYED_NAME.fullmatch(name) if isinstance(name, str) else None
        if match is None or match.group(1) != account:
            raise EndpointError(f"{where}: deployedModelRefs holds {_shown(name)}")
        deployment = _text(ref, "deployment", where, 200)
        if deployment is not None and deployment_ref(deployment) is None:
            raise EndpointError(f"{where}: {_shown(deployment)} is not a deployment name")
        state = _one_of(ref.get("state", "STATE_UNSPECIFIED"), DEPLOYED_STATES, "state", where)
        refs.append(DeployedRef(name=match.group(0), deployment=deployment, state=state))
    return tuple(refs)


def _flag(item: Mapping[str, Any], key: str, where: str) -> bool | None:
    value = item.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise EndpointError(f"{where}: {key} is {_shown(value)}, not true or false")


def _text(item: Mapping[str, Any], key: str, where: str, limit: int) -> str | None:
    value = item.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise EndpointError(f"{where}: {key} is not a text of at most {limit} characters")
    return value


def _one_of(value: Any, known: frozenset[str], key: str, where: str) -> str:
    if not isinstance(value, str) or value not in known:
        raise EndpointError(
            f"{where}: {key} is {_shown(value)}, not one this client knows "
            f"({', '.join(sorted(known))}); is the client older than the API?"
        )
    return value


def _enum_like(value: Any, key: str, where: str) -> str:
    if not isinstance(value, str) or not _KIND.fullmatch(value):
        raise EndpointError(f"{where}: {key} is {_shown(value)}, not an enum value")
    return value


def _time(item: Mapping[str, Any], key: str, where: str) -> str | None:
    value = item.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _TIME.fullmatch(value):
        raise EndpointError(f"{where}: {key} is {_shown(value)}, not an RFC 3339 time")
    return value


def _shown(value: Any) -> str:
    """A remote value in a message: one visible line, bounded."""
    text = repr(value) if not isinstance(value, str) else value
    return visible(text[:120])


@dataclass(frozen=True)
class DeployedModel:
    """A loaded copy of a model: on a deployment, or serverless. Its id is the server's."""

    account: str
    id: str  # the <id> of accounts/<account>/deployedModels/<id>
    model: str  # the adapter's id in the same account
    deployment: str | None  # accounts/<a>/deployments/<id>; None when serverless
    serverless: bool
    default: bool  # the copy inference by the model's name goes to
    state: str  # one of DEPLOYED_STATES
    status_code: str
    status_message: str
    created_at: str | None
    updated_at: str | None


def parse_deployed(account: str, item: Any, what: str) -> DeployedModel:
    """A DeployedModel of the answer, checked like a Model (parse_model)."""
    if not isinstance(item, dict):
        raise EndpointError(f"{what}: a deployed model in the answer is not a JSON object")
    name = item.get("name")
    match = _DEPLOYED_NAME.fullmatch(name) if isinstance(name, str) else None
    if match is None or match.group(1) != account:
        raise EndpointError(f"{what}: {_shown(name)} is not a deployed model of account {account}")
    where = f"{what}: deployed model {match.group(2)}"
    model = item.get("model")
    ref = model_ref(model) if isinstance(model, str) else None
    if ref is None or ref[0] != account:
        raise EndpointError(f"{where}: model {_shown(model)} is not a model of account {account}")
    deployment = _text(item, "deployment", where, 200)
    if deployment is not None and deployment_ref(deployment) is None:
        raise EndpointError(f"{where}: {_shown(deployment)} is not a deployment name")
    status = item.get("status") or {}
    if not isinstance(status, dict):
        raise EndpointError(f"{where}: status is not a JSON object")
    return DeployedModel(
        account=account,
        id=match.group(2),
        model=ref[1],
        deployment=deployment,
        serverless=bool(_flag(item, "serverless", where)),
        default=bool(_flag(item, "default", where)),
        state=_one_of(item.get("state", "STATE_UNSPECIFIED"), DEPLOYED_STATES, "state", where),
        status_code=_one_of(status.get("code", "OK"), frozenset(STATUS_CODES), "status", where),
        status_message=_text(status, "message", where, MAX_DESCRIPTION) or "",
        created_at=_time(item, "createTime", where),
        updated_at=_time(item, "updateTime", where),
    )


@dataclass(frozen=True)
class Deployment:
    """A deployment: a base model on dedicated hardware, which serves adapters only when it
    was made with addons enabled."""

    account: str
    id: str
    base_model: str | None  # accounts/<a>/models/<id>
    enable_addons: bool
    state: str  # CREATING, READY, ... (told, not acted on: a load waits for it)


def parse_deployment(account: str, item: Any, what: str) -> Deployment:
    """A Deployment of the answer, checked like a Model (parse_model)."""
    if not isinstance(item, dict):
        raise EndpointError(f"{what}: the deployment in the answer is not a JSON object")
    name = item.get("name")
    ref = deployment_ref(name) if isinstance(name, str) else None
    if ref is None or ref[0] != account:
        raise EndpointError(f"{what}: {_shown(name)} is not a deployment of account {account}")
    where = f"{what}: deployment {ref[1]}"
    base = _text(item, "baseModel", where, 200)
    if base is not None and model_ref(base) is None:
        raise EndpointError(f"{where}: baseModel {_shown(base)} is not a model name")
    state = item.get("state", "STATE_UNSPECIFIED")
    return Deployment(
        account=account,
        id=ref[1],
        base_model=base,
        enable_addons=bool(_flag(item, "enableAddons", where)),
        state=_enum_like(state, "state", where),
    )
