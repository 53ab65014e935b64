"""Cloudflare's place in the sandbox (registered in sandbox/mounts.py).

Options (MountContext.options), all optional: `limits` (SandboxLimits, shared with Cohere),
`catalogue` (the Workers AI model catalogue, default the bundled one) and `cloudflare_store`
(a SandboxStore over the same data folder, so the server and tests see the state the API keeps).
"""

from __future__ import annotations

from reconciler.sandbox.cloudflare.api import CloudflareApi
from reconciler.sandbox.cloudflare.app import CloudflareApp
from reconciler.sandbox.cloudflare.catalogue import Catalogue
from reconciler.sandbox.cloudflare.store import SandboxStore
from reconciler.sandbox.common.limits import SandboxLimits
from reconciler.sandbox.common.mount import MountContext


def mount(context: MountContext) -> CloudflareApp:
    store = context.option("cloudflare_store", SandboxStore) or SandboxStore(context.data_dir)
    limits = context.option("limits", SandboxLimits, SandboxLimits())
    catalogue = context.option("catalogue", Catalogue)
    return CloudflareApp(CloudflareApi(store, limits, catalogue), context.tokens)
