"""The Hub's place in the sandbox (registered in sandbox/mounts.py).

Options (MountContext.options), optional: `hub_log`, a list to which every answer is appended
as a `Served` (tests count the bytes a client read). The Hub's users are the sandbox's tokens
(MountContext.tokens).
"""

from __future__ import annotations

from reconciler.sandbox.common.mount import MountContext
from reconciler.sandbox.hub.api import HubApi
from reconciler.sandbox.hub.store import HubStore


def mount(context: MountContext) -> HubApi:
    return HubApi(HubStore(context.data_dir), context.option("hub_log", list), context.tokens)
