"""Cohere's place in the sandbox (registered in sandbox/mounts.py).

Options (MountContext.options), all optional: `limits` (SandboxLimits: the dataset size) and
`cohere_store` (a CohereStore over the same data folder, so the server and tests see the state
the API keeps).
"""

from __future__ import annotations

from reconciler.sandbox.cohere.api import CohereApi
from reconciler.sandbox.cohere.app import CohereApp
from reconciler.sandbox.cohere.store import CohereStore
from reconciler.sandbox.common.limits import SandboxLimits
from reconciler.sandbox.common.mount import MountContext


def mount(context: MountContext) -> CohereApp:
    store = context.option("cohere_store", CohereStore) or CohereStore(context.data_dir)
    limits = context.option("limits", SandboxLimits, SandboxLimits())
    return CohereApp(CohereApi(store, context.tokens, context.clock, limits))
