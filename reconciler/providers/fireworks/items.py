"""A Fireworks finetune in the config: a LoRA adapter (a folder, a Hub repo or URLs) for a base
model of Fireworks, in one account; the fields a plan compares are model, description and
serve. A folder's files are checked here, at load; a Hub repo's or URLs' are fetched by apply
before the create, which reads their adapter_config.json (provider.py) for peftDetails.

    - name: support-bot            # the model id at Fireworks (checks.py: the id rule)
      provider: fireworks
      model: accounts/fireworks/models/llama-v3p1-8b-instruct
      adapter: adapters/support-bot
      description: Answers support tickets
      serve: {deployment: prod}    # or {serverless: true}; absent or false: not served

Its model id is its name, or NAME-<8 hex> with `versioning: content` (its own, or the
settings'). Either way it is versioned by content (keep: 1 unless the config says): Fireworks
model ids are unique and a model has no revisions, so new weights are a new model, made,
validated and loaded before the one it supersedes is unloaded and deleted; and since the
superseded one still holds the name while the new one is made, the new one's id is
NAME-<8 hex> (plan/versions.FIRST_BY_NAME: only the first model bears the bare name).

Fireworks' limits are not the shared `Limits` (that is shaped by Cloudflare's: model_type
families, a model list, a per-account cap): `limits()` answers None, and `build` runs
Fireworks' own checks (checks.py), with providers.fireworks.limits on top.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.base.model import DesiredFinetune
from reconciler.config.items import (
    AccountRule,
    ItemContext,
    account_id,
    adapter_assets,
    check_patterns,
)
from reconciler.plan.versions import FIRST_BY_NAME
from reconciler.providers.fireworks.env import ACCOUNT_ENV

if TYPE_CHECKING:  # the checks, safetensors and YAML load with a config, not at start-up
    from reconciler.adapters.preflight import Limits
    from reconciler.config.yamlsource import Path_
    from reconciler.providers.fireworks import checks
    from reconciler.sources.base import RemoteSource

ACCOUNT = AccountRule(
    variable=ACCOUNT_ENV,
    pattern=r"[a-z0-9][a-z0-9-]{0,62}",
    shape="a Fireworks account id (up to 63 lower-case letters, digits and '-')",
    stand_in="my-account",
)
SERVERLESS = "serverless"
CONTENT = "content"


class FireworksItems:
    account = ACCOUNT

    def limits(self, settings: Mapping[str, Any] | None) -> Limits | None:
        """The providers.fireworks block: its `limits` are checked here, so a bad override
        is refused at load, by its key."""
        from reconciler.providers.fireworks import checks

        checks.limits((settings or {}).get("limits"))
        return None

    def check_remote(
        self, desired: DesiredFinetune, source: RemoteSource, settings: Mapping[str, Any]
    ) -> list[str]:
        """An adapter from hf: or files:, checked at plan time as a local folder is at load
        (registry.remote_checks hands it to sources.resolve_all)."""
        return _remote_problems(desired, source, _limits(settings.get("limits")))

    def build(self, context: ItemContext) -> DesiredFinetune:
        item = context.item
        limit = _limits(context.settings.get("limits"))
        account = account_id(context, ACCOUNT)
        folder, assets = adapter_assets(context, limit.required_files)
        description = item.get("description") or None
        serve = _serve(context, account)
        desired = DesiredFinetune(
            name=context.name,
            provider=item["provider"],
            account=account,
            model=item["model"],
            description=description,
            public=False,
            assets=assets,
            mark=context.mark,
            fields={"model": item["model"], "description": description, "serve": serve},
            prevent_destroy=bool(item.get("prevent_destroy", False)),
            checks=tuple(item.get("checks") or ()),
            # content: every model NAME-<8 hex>; else the first one NAME (module docstring)
            versioning=CONTENT if context.versioning() == CONTENT else FIRST_BY_NAME,
            keep=item.get("keep", 1),
        )
        check_patterns(context)
        _check_item(context, desired, limit)
        if folder is not None:
            _check_folder(context, folder, limit)
        return desired


def _limits(overrides: Mapping[str, Any] | None) -> checks.FireworksLimits:
    """The limits the item is held to: bad overrides were reported by the loader already
    (it asked `limits()` first), so the published ones stand in for them here."""
    from reconciler.adapters.preflight import LimitsError
    from reconciler.providers.fireworks import checks

    try:
        return checks.limits(overrides)
    except LimitsError:
        return checks.limits()


def _serve(context: ItemContext, account: str) -> str | None:
    """serve: absent or false (not served), `serverless`, or a deployment's resource name in
    the finetune's own account (a copy is loaded where its model is)."""
    value = context.item.get("serve")
    key: Path_ = (*context.where, "serve")
    if value is None or value is False:
        return None
    if isinstance(value, dict):
        value = _serve_block(value, account)
    from reconciler.providers.fireworks.records import deployment_ref

    ref = deployment_ref(value) if isinstance(value, str) else None
    if value == SERVERLESS:
        return SERVERLESS
    if ref is None:
        context.problem(
            key,
            f"finetune '{context.name}': serve is false, {SERVERLESS}, or a deployment "
            "accounts/<account>/deployments/<id> with addons enabled",
        )
        return None
    if account and ref[0] != account:
        context.problem(
            key,
            f"finetune '{context.name}': serve names a deployment of account {ref[0]}; the "
            f"adapter is loaded in its own account, {account}",
        )
    return str(value)


def _serve_block(value: Mapping[str, Any], account: str) -> Any:
    """serve: {deployment: ID or accounts/<a>/deployments/<id>} or {serverless: true}, in the
    spelling items.py compares: a deployment's resource name, or `serverless`."""
    if value.get("serverless") is True and "deployment" not in value:
        return SERVERLESS
    deployment = value.get("deployment")
    if isinstance(deployment, str) and "/" not in deployment and account:
        return f"accounts/{account}/deployments/{deployment}"
    return deployment


def _check_item(
    context: ItemContext, desired: DesiredFinetune, limit: checks.FireworksLimits
) -> None:
    from reconciler.providers.fireworks import checks

    where, name = context.where, context.name
    problem = checks.model_id_problem(name, True, limit)
    if problem:
        context.problem((*where, "name"), f"finetune '{name}': {problem}")
    from reconciler.providers.fireworks.records import model_ref

    if model_ref(desired.model) is None:
        context.problem(
            (*where, "model"),
            f"finetune '{name}': model is a Fireworks base model's resource name, "
            "accounts/<account>/models/<id> "
            "(e.g. accounts/fireworks/models/llama-v3p1-8b-instruct)",
        )
    if desired.description is not None:
        problem = checks.description_problem(desired.description, limit)
        if problem:
            context.problem((*where, "description"), f"finetune '{name}': {problem}")


def _check_folder(context: ItemContext, folder: Path, limit: checks.FireworksLimits) -> None:
    """The required files of a local adapter folder, its config against Fireworks' limits,
    the safetensors header, and the tensors' rank against the config's; each problem at the
    adapter's line."""
    from reconciler.adapters.preflight import CONFIG, WEIGHTS
    from reconciler.providers.fireworks import checks
    from reconciler.sources.local import LocalSource

    key: Path_ = (*context.where, "adapter")
    label = f"finetune '{context.name}': {str(context.item['adapter']).rstrip('/')}"
    source = LocalSource(folder, context.cache)
    rank: int | None = None
    ranks: dict[str, Any] = {}
    for name in limit.required_files:
        size, unusable = source.entry(name)
        messages: list[str] = []
        if unusable is not None or size == 0:
            messages = [unusable or "is empty (0 bytes)"]
            if not (folder / name).exists():
                messages = ["not found in the adapter folder; Fireworks requires this exact name"]
        elif name == CONFIG:
            messages, rank = _config_problems(folder / name, limit)
        elif name == WEIGHTS:
            summary = source.weights(name)
            messages, ranks = list(summary["problems"]), dict(summary.get("ranks") or {})
        context.problems.extend(
            context.source.problem(key, f"{label}/{name}: {m}") for m in messages
        )
    for message in checks.check_weight_ranks(rank, ranks):
        context.problem(key, f"{label}/{WEIGHTS}: {message}")


def _remote_problems(
    desired: DesiredFinetune, source: RemoteSource, limit: checks.FireworksLimits
) -> list[str]:
    """What _check_folder checks of a local folder, for an adapter read through a remote
    source at plan time: its config's rank and modules, and its tensors' rank against it.
    A file the source lacks is said by the source's own check (each "FILE: ...")."""
    from reconciler.adapters.preflight import CONFIG, WEIGHTS
    from reconciler.providers.fireworks import checks

    names = set(source.names())
    if CONFIG not in names:
        return []
    with source.open(CONFIG) as f:
        raw = f.read(checks.MAX_CONFIG_BYTES + 1)
    problems = [f"{CONFIG}: {m}" for m in checks.check_config(raw, limit)]
    config = checks.parse_config(raw)
    rank = config.get("r") if isinstance(config, dict) else None
    if WEIGHTS in names and isinstance(rank, int) and not isinstance(rank, bool) and rank > 0:
        ranks = dict(source.weights(WEIGHTS).get("ranks") or {})
        problems += [f"{WEIGHTS}: {m}" for m in checks.check_weight_ranks(rank, ranks)]
    return problems


def _config_problems(path: Path, limit: checks.FireworksLimits) -> tuple[list[str], int | None]:
    """adapter_config.json's problems, and its rank when the rank is usable."""
    from reconciler.providers.fireworks import checks

    try:
        with path.open("rb") as f:
            raw = f.read(checks.MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        return [f"cannot be read ({exc.strerror or exc})"], None
    problems = checks.check_config(raw, limit)
    config = checks.parse_config(raw)
    rank = config.get("r") if isinstance(config, dict) else None
    usable = isinstance(rank, int) and not isinstance(rank, bool) and rank > 0
    return problems, rank if usable else None


ITEMS = FireworksItems()
