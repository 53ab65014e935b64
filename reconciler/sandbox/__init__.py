"""A local emulator of the APIs reconciler talks to, served over real HTTP on one port, each
mounted under its own path prefix (mounts.py is the registry, common/mount.py the contract):
the Cloudflare Workers AI finetune API under /client/v4 (with `/ai/run` text generation
answering deterministically, see cloudflare/inference.py, and the model catalogue of
`/ai/models/search`, see cloudflare/catalogue.py), Cohere's v1 fine-tuning and datasets API
under /v1 and the Hugging Face Hub's model-reading API under /hf; with optional fault
injection (common/faults.py).

Import `reconciler.sandbox.server` for `SandboxServer` and `serve`; this package module stays
light (no werkzeug) so that reading the defaults costs nothing.
"""

from __future__ import annotations

from reconciler.sandbox.common.defaults import DEFAULT_ACCOUNT_ID, DEFAULT_TOKEN

__all__ = ["DEFAULT_ACCOUNT_ID", "DEFAULT_TOKEN"]
