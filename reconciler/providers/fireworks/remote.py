"""A Fireworks model as the plan sees it: a RemoteFinetune whose fields are the ones items.py
declares (model, description, serve), so that what is declared and what is read compare.

- model: the adapter's base model (peftDetails.baseModel);
- description: the description without its digest line (marker.py);
- serve: None when no copy is loaded, "serverless", or the deployment of the copy inference
  by the model's name goes to (the default one; the only one when there is one).

A model is ready once its upload was validated (READY); one whose status carries an error
(a validateUpload that refused the files) has failed: only a new model helps, as Fireworks
models have no revisions.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from reconciler.base.model import RemoteFinetune
from reconciler.providers.fireworks.records import PEFT_ADDON, DeployedModel, FireworksModel

PROVIDER = "fireworks"


def serve_of(copies: Iterable[DeployedModel]) -> str | None:
    """Where the model is served, as items.py spells it, from its loaded copies."""
    loaded = [c for c in copies if c.state != "UNDEPLOYING"]
    if not loaded:
        return None
    chosen = next((c for c in loaded if c.default), None) if len(loaded) > 1 else loaded[0]
    if chosen is None:  # several, none the default: say which, in a stable order
        chosen = min(loaded, key=lambda c: c.id)
    return "serverless" if chosen.serverless or chosen.deployment is None else chosen.deployment


def fields(model: FireworksModel, copies: Iterable[DeployedModel]) -> dict[str, Any]:
    return {
        "model": model.base_model,
        "description": model.description,
        "serve": serve_of(copies),
    }


def remote_finetune(
    model: FireworksModel, copies: Iterable[DeployedModel] = ()
) -> RemoteFinetune | None:
    """The plan's record of an adapter model; None for a model of another kind (a base
    model, a fine-tuning job's output): not ours to manage."""
    if model.kind != PEFT_ADDON:
        return None
    mine = [c for c in copies if c.account == model.account and c.model == model.id]
    return RemoteFinetune(
        provider=PROVIDER,
        account=model.account,
        id=model.id,
        name=model.id,
        model=model.base_model or "",
        description=model.description,
        public=False,
        created_at=model.created_at,
        modified_at=model.updated_at,
        fields=fields(model, mine),
        status=model.state,
        failed=model.status_code not in ("OK", "FAILED_PRECONDITION"),
        ready=model.state == "READY",
    )
