"""The order of a change's steps: one rule for plain and versioned finetunes alike.

A plain create and a new version are made the same way; a versioned one then passes its
checks (the gate) before it is promoted. Only the order lives here; why each change is
planned is the business of single.py and versioned.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from reconciler.base.model import AssetDigest, AssetFile
from reconciler.plan.changes import Step, StepKind
from reconciler.providers.base import Capabilities


def uploads(assets: Iterable[AssetFile], local: Mapping[str, AssetDigest]) -> tuple[Step, ...]:
    """An upload of each asset, of the content the local file has now."""
    return tuple(Step(StepKind.UPLOAD, a, local[a.name]) for a in assets)


def creating(
    assets: Iterable[AssetFile], local: Mapping[str, AssetDigest], caps: Capabilities
) -> tuple[Step, ...]:
    """A create and the uploads of `assets`: first where the create names what was uploaded
    (a Cohere dataset), else after it, into the finetune the create made. Then, where the
    provider says so, its check of the files (VALIDATE) and the load that serves them (SERVE),
    so that what a create leaves is usable before any check or promotion."""
    sent = uploads(assets, local)
    create = (Step(StepKind.CREATE),)
    made = sent + create if caps.assets_before_create else create + sent
    return made + _finishing(caps)


def _finishing(caps: Capabilities) -> tuple[Step, ...]:
    validate = (Step(StepKind.VALIDATE),) if caps.validates_uploads else ()
    serve = (Step(StepKind.SERVE),) if caps.serves else ()
    return validate + serve


def replacing(
    assets: Iterable[AssetFile], local: Mapping[str, AssetDigest], caps: Capabilities
) -> tuple[Step, ...]:
    """Delete, then create again: what changed cannot change under a trained model."""
    return (Step(StepKind.DELETE), *creating(assets, local, caps))


def adopting(assets: Iterable[AssetFile], local: Mapping[str, AssetDigest]) -> tuple[Step, ...]:
    """Record a finetune an interrupted apply created, then upload what it still lacks."""
    return (Step(StepKind.ADOPT), *uploads(assets, local))


def updating(assets: Iterable[AssetFile], local: Mapping[str, AssetDigest]) -> tuple[Step, ...]:
    """Upload the changed assets, then update the finetune in place to use them."""
    return (*uploads(assets, local), Step(StepKind.UPDATE))


def promoting(steps: tuple[Step, ...], checked: bool) -> tuple[Step, ...]:
    """A version's steps, then its checks where it has any, then making it current: a version
    that fails its checks never becomes current."""
    gate = (Step(StepKind.CHECK),) if checked else ()
    return (*steps, *gate, Step(StepKind.PROMOTE))
