"""The registry of emulated APIs: which packages the sandbox mounts, each by its factory.

Each entry is "module:attribute", a `mount(context: MountContext) -> Mounted` factory
(common/mount.py); it is imported only when a sandbox is built, so that importing
`reconciler.sandbox` stays light (no werkzeug, no API code). The app picks a request's mount by
prefix, longest first, so the order here is only the order `reconciler sandbox` lists them in.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence

from reconciler.sandbox.common.mount import MountContext, Mounted

MountFactory = Callable[[MountContext], Mounted]

MOUNTS: tuple[str, ...] = (
    "reconciler.sandbox.cloudflare.mount:mount",
    "reconciler.sandbox.cohere.mount:mount",
    "reconciler.sandbox.hub.mount:mount",
    "reconciler.sandbox.fireworks.mount:mount",
    "reconciler.sandbox.vllm.mount:mount",
)


def factory(entry: str) -> MountFactory:
    """The factory an entry names."""
    module, sep, attribute = entry.partition(":")
    if not sep or not module or not attribute:
        raise ValueError(f"a mount is named 'module:attribute', got {entry!r}")
    found: MountFactory = getattr(importlib.import_module(module), attribute)
    return found


def build(context: MountContext, entries: Sequence[str] = MOUNTS) -> tuple[Mounted, ...]:
    """Every registered API, mounted; ValueError if a prefix is malformed or taken twice."""
    mounts = tuple(factory(entry)(context) for entry in entries)
    seen: set[str] = set()
    for mounted in mounts:
        prefix = mounted.prefix
        if not prefix.startswith("/") or prefix.endswith("/") or prefix in seen:
            raise ValueError(f"mount prefix {prefix!r} is malformed or already taken")
        seen.add(prefix)
    return mounts
