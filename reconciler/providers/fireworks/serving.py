"""Serving a Fireworks adapter: its loaded copies (deployedModels), made, read and removed.

A model is served once a copy of it is loaded: on a deployment of its base model made with
addons enabled, or serverless where Fireworks offers it (byo-lora-providers.md 1.4). A copy's
id is the server's, so a load whose answer was lost is found again by what it names (the model
and the deployment) and when it was made. Loading takes minutes: a copy is DEPLOYING, then
DEPLOYED. A model cannot be deleted while a copy of it is loaded: unload first.

Paths are the SDK's (resources/deployed_models.py, the `lora` resource):
/v1/accounts/{a}/deployedModels[/{id}].
"""

from __future__ import annotations

import time
from collections.abc import Callable

from reconciler.base.errors import ProviderError
from reconciler.plan import adoption
from reconciler.providers.fireworks.gateway import Gateway, account_path, segment
from reconciler.providers.fireworks.records import (
    DeployedModel,
    Deployment,
    deployment_ref,
    parse_deployed,
    parse_deployment,
)
from reconciler.providers.once import create_once

DEPLOY_POLL = 10.0
DEPLOY_TIMEOUT = 900.0  # serverless loading takes "about 2-5 minutes"; a deployment longer


class FireworksServing:
    def __init__(
        self,
        gateway: Gateway,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        poll: float = DEPLOY_POLL,
        timeout: float = DEPLOY_TIMEOUT,
    ) -> None:
        self._gateway = gateway
        self._sleep, self._clock = sleep, clock
        self._poll, self._timeout = poll, timeout

    def list_deployed(self, account: str) -> tuple[DeployedModel, ...]:
        """Every loaded copy in the account, all pages."""
        what = f"list deployed models of account {account}"
        path = f"{account_path(account)}/deployedModels"
        found: dict[str, DeployedModel] = {}
        for item in self._gateway.read_all(what, path, "deployedModels"):
            copy = parse_deployed(account, item, what)
            if copy.id in found:
                raise ProviderError(f"{what}: {copy.id} was listed twice; try again")
            found[copy.id] = copy
        return tuple(found.values())

    def get_deployed(self, account: str, deployed_id: str) -> DeployedModel | None:
        what = f"get deployed model {deployed_id} of account {account}"
        body = self._gateway.api.call(what, "GET", _one(account, deployed_id), ok=(200, 404))
        if self._gateway.gone(what, body):
            return None
        copy = parse_deployed(account, body, what)
        if copy.id != deployed_id:
            raise ProviderError(f"{what}: the answer is deployed model {copy.id}")
        return copy

    def load(self, account: str, model_id: str, deployment: str | None) -> DeployedModel:
        """Load a copy of the model onto `deployment` (accounts/<a>/deployments/<id>), or
        serverless when it is None. Made once: a lost answer is settled by a copy of this
        model on this deployment made since the load was sent."""
        model = f"accounts/{account}/models/{segment(model_id, 'model')}"
        # one or the other: the sandbox refuses both, and the API's answer to both is unsaid
        target: dict[str, object] = (
            {"deployment": deployment} if deployment else {"serverless": True}
        )
        body = {"model": model, **target}
        where = deployment or "serverless"
        what = f"load model {model_id} ({where})"
        path = f"{account_path(account)}/deployedModels"

        def send() -> DeployedModel:
            answer = self._gateway.api.call(what, "POST", path, json=body, idempotent=False)
            return parse_deployed(account, answer, what)

        def find() -> DeployedModel | None:
            copies = [
                c
                for c in self.list_deployed(account)
                if c.model == model_id and c.deployment == deployment
            ]
            return max(copies, key=lambda c: c.created_at or "", default=None)

        def not_ours(found: DeployedModel, since: str) -> list[str]:
            early = adoption.created_too_early(found.created_at, since)
            return [early] if early else []

        return create_once(what, send, find, not_ours)

    def get_deployment(self, name: str) -> Deployment | None:
        """The deployment of a resource name accounts/<a>/deployments/<id>; None if there is
        none of that name."""
        ref = deployment_ref(name)
        if ref is None:
            raise ProviderError(f"{name!r} is not a deployment name accounts/<a>/deployments/<id>")
        what = f"get deployment {name}"
        path = f"{account_path(ref[0])}/deployments/{segment(ref[1], 'deployment')}"
        body = self._gateway.api.call(what, "GET", path, ok=(200, 404))
        if self._gateway.gone(what, body):
            return None
        return parse_deployment(ref[0], body, what)

    def unload(self, account: str, deployed_id: str) -> bool:
        """Unload the copy; False if it was already gone."""
        what = f"unload deployed model {deployed_id} of account {account}"
        body = self._gateway.api.call(what, "DELETE", _one(account, deployed_id), ok=(200, 404))
        return not self._gateway.gone(what, body)

    def wait_unloaded(self, account: str, model_id: str) -> None:
        """Until no copy of the model is listed (one UNDEPLOYING still holds the model), read
        every `poll` seconds for at most `timeout`."""
        deadline = self._clock() + self._timeout
        while any(c.model == model_id for c in self.list_deployed(account)):
            if self._clock() >= deadline:
                raise ProviderError(
                    f"unload model {model_id}: still loaded after {self._timeout:.0f}s"
                )
            self._sleep(self._poll)

    def wait_deployed(self, account: str, deployed_id: str) -> DeployedModel:
        """The copy once DEPLOYED, read every `poll` seconds for at most `timeout`."""
        what = f"wait for deployed model {deployed_id}"
        deadline = self._clock() + self._timeout
        while True:
            copy = self.get_deployed(account, deployed_id)
            if copy is None:
                raise ProviderError(f"{what}: it is gone (unloaded while it loaded)")
            if copy.state == "DEPLOYED":
                return copy
            if copy.status_code not in ("OK", "UNKNOWN") or copy.state == "UNDEPLOYING":
                message = self._gateway.clean(copy.status_message)
                raise ProviderError(f"{what}: {copy.state}, {copy.status_code}: {message}")
            if self._clock() >= deadline:
                raise ProviderError(f"{what}: still {copy.state} after {self._timeout:.0f}s")
            self._sleep(self._poll)


def _one(account: str, deployed_id: str) -> str:
    return f"{account_path(account)}/deployedModels/{segment(deployed_id, 'deployed model')}"
