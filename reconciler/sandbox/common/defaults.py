"""Defaults shared by the sandbox modules; importing this pulls in nothing heavy."""

from __future__ import annotations

import re

# Well-formed but obviously fake, so a sandbox credential can never be mistaken for a real one.
DEFAULT_TOKEN = "reconciler-sandbox-token"
DEFAULT_ACCOUNT_ID = "0123456789abcdef0123456789abcdef"

# Loopback only: the sandbox has no real authentication story and must not face a network.
DEFAULT_HOST = "127.0.0.1"

CLOUDFLARE_PREFIX = "/client/v4"

# Cloudflare account ids (and the ids in its "object identifier" routing) are 32 lowercase hex.
ACCOUNT_ID_RE = re.compile(r"[0-9a-f]{32}")

# Real API tokens use this alphabet; other characters get 6003/6111 from the real API
# (e.g. a pasted `curl ...` command), so the sandbox refuses them in the same way.
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]+")

# Cloudflare's published Workers AI LoRA rules (api-notes.md; Workers AI LoRA page, 2026). The
# sandbox keeps its own copy, apart from the client's providers/cloudflare/limits.json: it
# stands in for the API, whose rules do not change when the client's snapshot does.
MAX_ASSET_BYTES = 300_000_000  # "each adapter file under 300 MB"
MAX_FINETUNES_PER_ACCOUNT = 100
RESERVED_NAME_PREFIX = "cf-public-"
REQUIRED_FILES = ("adapter_config.json", "adapter_model.safetensors")
