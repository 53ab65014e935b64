"""Where a Fireworks adapter is to serve, checked before its model is made, and made so.

The config's `serve` (items.py) is a deployment's resource name or `serverless`. Before the
create: a deployment must exist, have addons enabled and serve the adapter's base; serverless
LoRA is offered on some bases only (supportsLora and supportsServerless in the base
catalogue).

Three serverless adapters per base per account (docs: the fourth is ResourceExhausted) is a
quota the plan counts (provider.py's Capabilities.quotas, plan/quotas.py): a fourth is
blocked there, naming the three, before any request that writes. It is not counted again
before the create: the plan took off the copies this apply unloads (a pruned finetune), which
apply unloads side by side with this create, so the count here could refuse what the plan
rightly allowed. Should the account change between plan and apply, the load itself is
refused (ResourceExhausted, after the HTTP layer's retries): the model stays READY and
unloaded, and the next plan counts it again.
"""

from __future__ import annotations

from reconciler.base.errors import ProviderError, ReconcilerError
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
            try:
                there = self.api.serving.load(account, model_id, deployment)
            except ReconcilerError as exc:
                if deployment is None and "RESOURCE_EXHAUSTED" in str(exc):
                    raise ProviderError(
                        f"{exc}: Fireworks serves at most {SERVERLESS_PER_BASE} serverless "
                        f"adapters per base model in an account, and {desired.model} has them "
                        f"(loaded since the plan was made); model {model_id} is READY, not "
                        "loaded: unload one, and the next apply loads it"
                    ) from None
                raise
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
