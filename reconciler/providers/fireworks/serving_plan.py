"""Where a Fireworks adapter is to serve, checked before its model is made, and made so.

The config's `serve` (items.py) is a deployment's resource name or `serverless`. Before the
create: a deployment must exist, have addons enabled and serve the adapter's base; serverless
LoRA is offered on some bases only (supportsLora and supportsServerless in the base
catalogue), three adapters per base per account (docs: the fourth is ResourceExhausted), so a
fourth is refused here, naming the three, before anything is made.
"""

from __future__ import annotations

from reconciler.base.errors import ProviderError
from reconciler.base.model import DesiredFinetune
from reconciler.providers.fireworks.api import FireworksApi
from reconciler.providers.fireworks.records import DeployedModel, model_ref

SERVERLESS = "serverless"
SERVERLESS_PER_BASE = 3  # docs.fireworks.ai/serverless/specialized-model-inference/overview


class ServingPlan:
    def __init__(self, api: FireworksApi) -> None:
        self.api = api

    def check(self, desired: DesiredFinetune) -> None:
        """ProviderError if the adapter cannot serve where the config says."""
        target = desired.fields.get("serve")
        if not target:
            return
        if target == SERVERLESS:
            self._check_serverless(desired)
            return
        deployment = self.api.serving.get_deployment(str(target))
        fix = "make it with enableAddons: true on the adapter's base, or change serve"
        if deployment is None:
            raise ProviderError(f"serve: deployment {target} does not exist; {fix}")
        if not deployment.enable_addons:
            raise ProviderError(
                f"serve: deployment {target} was made without addons (enableAddons), so it "
                f"cannot load an adapter; {fix}"
            )
        if deployment.base_model != desired.model:
            raise ProviderError(
                f"serve: deployment {target} serves {deployment.base_model}, but the adapter "
                f"is for {desired.model}; {fix}"
            )

    def _check_serverless(self, desired: DesiredFinetune) -> None:
        ref = model_ref(desired.model)
        base = self.api.get_model(ref[0], ref[1]) if ref else None
        if base is None or not (base.supports_lora and base.supports_serverless):
            raise ProviderError(
                f"serve: serverless LoRA is not offered on {desired.model} (its catalogue "
                "entry is not both supportsLora and supportsServerless); serve it on a "
                "deployment made with enableAddons instead"
            )
        bases = {m.id: m.base_model for m in self.api.list_models(desired.account)}
        taken = sorted(
            c.model
            for c in self.api.serving.list_deployed(desired.account)
            if c.serverless and bases.get(c.model) == desired.model and c.model != desired.name
        )
        if len(taken) >= SERVERLESS_PER_BASE:
            raise ProviderError(
                f"serve: Fireworks serves at most {SERVERLESS_PER_BASE} serverless adapters per "
                f"base model in an account, and {desired.model} has {len(taken)} in "
                f"{desired.account} ({', '.join(taken)}); a fourth would be refused "
                "(ResourceExhausted): unload one, or serve this one on a deployment"
            )

    def ensure(self, desired: DesiredFinetune, model_id: str) -> str:
        """A copy where the config says, DEPLOYED (loaded if missing); with no serve, no copy."""
        account, target = desired.account, desired.fields.get("serve")
        copies = [c for c in self.api.serving.list_deployed(account) if c.model == model_id]
        if not target:
            for copy in copies:
                self.api.serving.unload(account, copy.id)
            return f"unloaded {len(copies)} copies (no serve:)" if copies else "not served"
        there = next((c for c in copies if _at(c, str(target))), None)
        if there is None:
            deployment = None if target == SERVERLESS else str(target)
            there = self.api.serving.load(account, model_id, deployment)
        copy = self.api.serving.wait_deployed(account, there.id)
        return f"DEPLOYED on {target} (deployed model {copy.id})"

    def unload_all(self, account: str, model_id: str) -> None:
        """Every copy of the model unloaded, and gone."""
        for copy in self.api.serving.list_deployed(account):
            if copy.model == model_id:
                self.api.serving.unload(account, copy.id)
        self.api.serving.wait_unloaded(account, model_id)


def _at(copy: DeployedModel, target: str) -> bool:
    return copy.serverless if target == SERVERLESS else copy.deployment == target
