"""Cloudflare's place in the sandbox (registered in sandbox/mounts.py).

Options (MountContext.options), all optional: `limits` (SandboxLimits, shared with Cohere),
`catalogue` (the Workers AI model catalogue, default the bundled one), `cloudflare_store`
(a SandboxStore over the same data folder, so the server and tests see the state the API keeps)
and `cloudflare_accounts` (the Accounts served, accounts.py; default the documented one). The
context's clock is the API's "today", which retires deprecated models (catalogue.py).
"""

from __future__ import annotations

from reconciler.sandbox.cloudflare.accounts import Accounts
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
    accounts = context.option("cloudflare_accounts", Accounts) or Accounts()
    api = CloudflareApi(store, limits, catalogue, clock=context.clock)
    return CloudflareApp(api, context.tokens, accounts)
