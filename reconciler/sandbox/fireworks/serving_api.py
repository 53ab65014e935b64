"""Serving: deployments (a base model on dedicated hardware) and deployed models (a LoRA
adapter loaded onto a deployment, or serverless; the SDK's `lora` resource).

Two-step multi-LoRA (docs.fireworks.ai/fine-tuning/deploying-loras): create a deployment of
the base with `enableAddons: true`, then POST deployedModels with the adapter and the
deployment. A deployed model's id is server-assigned; load and inference name the adapter,
get and unload the deployed model. A deployment is CREATING, then READY; a deployed model
DEPLOYING, then DEPLOYED once its deployment is READY and the load time has passed.
"""

from __future__ import annotations

from typing import Any

from reconciler.sandbox.fireworks import views
from reconciler.sandbox.fireworks.errors import invalid, not_found, precondition, unimplemented
from reconciler.sandbox.fireworks.fields import flag, parse, read_json
from reconciler.sandbox.fireworks.listing import masked, parse_mask, parse_query
from reconciler.sandbox.fireworks.names import (
    check_id,
    parse_deployment,
    parse_model,
    random_id,
)
from reconciler.sandbox.fireworks.records import DeployedRecord, DeploymentRecord, ModelRecord
from reconciler.sandbox.fireworks.schemas import DEPLOYED_MODEL, DEPLOYMENT
from reconciler.sandbox.fireworks.service import Call, Service

MAX_DISPLAY_NAME = 63  # "Must be fewer than 64 characters long"
DEPLOYMENT_FIELDS = frozenset(DEPLOYMENT)
# Moving a loaded copy elsewhere is unloading it and loading it again (sandbox choice: the
# update body carries these fields, but no source says the API moves a loaded adapter).
_PLACEMENT = ("model", "deployment", "serverless")


class ServingApi:
    def __init__(self, service: Service) -> None:
        self.s = service

    # --- deployments -----------------------------------------------------------------------

    # POST /v1/accounts/{account}/deployments?deploymentId=&validateOnly=
    def create_deployment(self, call: Call) -> dict[str, Any]:
        self.s.own(call.account)
        query = call.query()
        wanted = query.get("deploymentId")
        deployment_id = check_id(wanted, "deploymentId") if wanted else random_id()
        fields = parse(read_json(call.environ), DEPLOYMENT, "Deployment")
        base_name = fields.get("baseModel")
        if not base_name:
            raise invalid("baseModel is required")
        base = self.s.catalogue.get(base_name)
        if base is None:
            owner = parse_model(base_name)
            if owner is not None and owner[0] == call.account:
                raise unimplemented(
                    "deploying an addon as the base model (live merge) is not emulated"
                )
            raise invalid(f'base model "{base_name}" not found')
        if fields.get("enableAddons") and not base.supports_lora:
            raise invalid(f'base model "{base_name}" does not support LoRA addons (enableAddons)')
        if len(fields.get("displayName", "")) > MAX_DISPLAY_NAME:
            raise invalid(f"displayName must be fewer than {MAX_DISPLAY_NAME + 1} characters")
        ready_at = call.now + self.s.simulated(self.s.settings.deployment_seconds)
        record = DeploymentRecord(call.account, deployment_id, fields, call.now, call.now, ready_at)
        if not flag(query, "validateOnly"):
            self.s.serving.create_deployment(record)
        return views.deployment(record, call.now)

    def _deployment(self, account: str, deployment_id: str) -> DeploymentRecord:
        self.s.own(account)
        record = self.s.serving.get_deployment(account, deployment_id)
        if record is None:
            raise not_found(
                f'deployment "accounts/{account}/deployments/{deployment_id}" not found'
            )
        return record

    # GET /v1/accounts/{account}/deployments/{deployment}?readMask=
    def get_deployment(self, call: Call) -> dict[str, Any]:
        mask = parse_mask(call.query().get("readMask", ""), DEPLOYMENT_FIELDS)
        record = self._deployment(call.account, call.params["deployment"])
        return masked(views.deployment(record, call.now), mask)

    # GET /v1/accounts/{account}/deployments?pageSize&pageToken&filter&orderBy&readMask
    def list_deployments(self, call: Call) -> dict[str, Any]:
        self.s.own(call.account)
        query = parse_query(call.query(), "deployments", DEPLOYMENT_FIELDS)
        found = [
            views.deployment(d, call.now) for d in self.s.serving.list_deployments(call.account)
        ]
        items, token, total = self.s.pages.page(found, query)
        return _listed("deployments", items, token, total)

    # DELETE /v1/accounts/{account}/deployments/{deployment}?hard=&ignoreChecks=
    def delete_deployment(self, call: Call) -> dict[str, Any]:
        self.s.own(call.account)
        query = call.query()
        flag(query, "hard")  # sandbox choice: every delete is hard (no DELETED state kept)
        force = flag(query, "ignoreChecks")
        self.s.serving.delete_deployment(call.account, call.params["deployment"], force=force)
        return {}

    # --- deployed models (LoRA) ------------------------------------------------------------

    # POST /v1/accounts/{account}/deployedModels?replaceMergedAddon=
    def load(self, call: Call) -> dict[str, Any]:
        self.s.own(call.account)
        # Accepted and ignored: hot-reload deployments (enableHotReloadLatestAddon) are not
        # emulated, so there is never a merged addon to replace.
        flag(call.query(), "replaceMergedAddon")
        body = parse(read_json(call.environ), DEPLOYED_MODEL, "DeployedModel")
        model = self._loadable(call.account, body.get("model"))
        if len(body.get("displayName", "")) > MAX_DISPLAY_NAME:
            raise invalid(f"displayName must be fewer than {MAX_DISPLAY_NAME + 1} characters")
        deployment = self._target(call.account, body, model)
        if deployment is None:
            start, seconds = call.now, self.s.settings.serverless_seconds
        else:
            start, seconds = max(call.now, deployment.ready_at), self.s.settings.load_seconds
        kept: dict[str, Any] = {
            k: body[k] for k in ("displayName", "description", "public") if k in body
        }
        record = DeployedRecord(
            account=call.account,
            deployed_id=random_id(prefix=model.model_id),
            model_id=model.model_id,
            deployment_id=None if deployment is None else deployment.deployment_id,
            base=model.base,
            fields=kept,
            created_at=call.now,
            updated_at=call.now,
            ready_at=start + self.s.simulated(seconds),
        )
        loaded = self.s.serving.load(record, make_default=body.get("default") is True)
        return views.deployed(loaded, call.now)

    def _loadable(self, account: str, name: object) -> ModelRecord:
        if not isinstance(name, str) or not name:
            raise invalid("model is required: accounts/<account>/models/<model id>")
        parsed = parse_model(name)
        if parsed is None:
            raise invalid(f'model "{name}" is not a model name (accounts/<account>/models/<id>)')
        if parsed[0] != account:
            raise invalid(f'model "{name}" is not in account "{account}"')
        model = self.s.model(*parsed)
        if not model.ready:
            raise precondition(
                f'model "{name}" is not READY (state UPLOADING): finish its upload with'
                " validateUpload first"
            )
        return model

    def _target(
        self, account: str, body: dict[str, Any], model: ModelRecord
    ) -> DeploymentRecord | None:
        """The deployment to load onto, None for serverless; refusals as documented."""
        name, serverless = body.get("deployment"), body.get("serverless", False)
        if name and serverless:
            raise invalid("set deployment or serverless, not both")
        if not name:
            if not serverless:  # sandbox choice: say it, rather than guess serverless
                raise invalid("deployment is required (or serverless: true for serverless LoRA)")
            base = self.s.catalogue.get(model.base)
            if base is None or not base.serverless_lora:
                raise invalid(
                    f'base model "{model.base}" does not offer serverless LoRA: load the adapter'
                    " on a deployment of it with enableAddons"
                )
            return None
        parsed = parse_deployment(name)
        if parsed is None or parsed[0] != account:
            raise invalid(f'deployment "{name}" is not a deployment of account "{account}"')
        deployment = self._deployment(*parsed)
        if not deployment.addons:
            raise precondition(
                f'deployment "{name}" does not have addons enabled: create it with enableAddons'
            )
        if deployment.base != model.base:
            raise invalid(
                f'model "{model.name}" is an addon of "{model.base}", but deployment "{name}"'
                f' serves "{deployment.base}"'
            )
        return deployment

    def _deployed(self, account: str, deployed_id: str) -> DeployedRecord:
        self.s.own(account)
        record = self.s.serving.get_deployed(account, deployed_id)
        if record is None:
            raise not_found(
                f'deployed model "accounts/{account}/deployedModels/{deployed_id}" not found'
            )
        return record

    # GET /v1/accounts/{account}/deployedModels/{deployed}?readMask=
    def get_deployed(self, call: Call) -> dict[str, Any]:
        mask = parse_mask(call.query().get("readMask", ""), views.DEPLOYED_FIELDS)
        record = self._deployed(call.account, call.params["deployed"])
        return masked(views.deployed(record, call.now), mask)

    # GET /v1/accounts/{account}/deployedModels?pageSize&pageToken&filter&orderBy&readMask
    def list_deployed(self, call: Call) -> dict[str, Any]:
        self.s.own(call.account)
        query = parse_query(call.query(), "deployedModels", views.DEPLOYED_FIELDS)
        found = [views.deployed(d, call.now) for d in self.s.serving.list_deployed(call.account)]
        items, token, total = self.s.pages.page(found, query)
        return _listed("deployedModels", items, token, total)

    # PATCH /v1/accounts/{account}/deployedModels/{deployed}
    def update_deployed(self, call: Call) -> dict[str, Any]:
        current = self._deployed(call.account, call.params["deployed"])
        body = parse(read_json(call.environ), DEPLOYED_MODEL, "DeployedModel")
        now_at = {
            "model": current.model_name,
            "deployment": current.deployment_name,
            "serverless": current.serverless,
        }
        for key in _PLACEMENT:
            if key in body and body[key] != now_at[key]:
                raise invalid(f"{key} cannot change: unload the adapter and load it again")
        if len(body.get("displayName", "")) > MAX_DISPLAY_NAME:
            raise invalid(f"displayName must be fewer than {MAX_DISPLAY_NAME + 1} characters")
        if body.get("default") is False and current.default:
            raise invalid("default cannot be cleared: set default on another copy instead")
        changes: dict[str, Any] = {
            k: body[k] for k in ("displayName", "description", "public", "default") if k in body
        }
        updated = self.s.serving.update_deployed(current, changes, call.now)
        return views.deployed(updated, call.now)

    # DELETE /v1/accounts/{account}/deployedModels/{deployed}
    def unload(self, call: Call) -> dict[str, Any]:
        self.s.own(call.account)
        self.s.serving.unload(call.account, call.params["deployed"])
        return {}


def _listed(key: str, items: list[dict[str, Any]], token: str, total: int) -> dict[str, Any]:
    answer: dict[str, Any] = {key: items, "totalSize": total}
    if token:  # "If this field is omitted, there are no subsequent pages."
        answer["nextPageToken"] = token
    return answer
