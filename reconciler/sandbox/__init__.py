"""A local emulator of the Cloudflare Workers AI finetune API (with `/ai/run` text generation
answering deterministically, see inference.py, and the model catalogue of `/ai/models/search`,
see catalogue.py) and of Cohere's v1 fine-tuning and datasets API,
served over real HTTP on one port (Cloudflare under /client/v4, Cohere under /v1), with
optional fault injection (faults.py).

Import `reconciler.sandbox.server` for `SandboxServer` and `serve`; this package module stays
light (no werkzeug) so that reading the defaults costs nothing.
"""

from __future__ import annotations

from reconciler.sandbox.common.defaults import DEFAULT_ACCOUNT_ID, DEFAULT_TOKEN

__all__ = ["DEFAULT_ACCOUNT_ID", "DEFAULT_TOKEN"]
