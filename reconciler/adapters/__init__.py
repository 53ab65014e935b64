"""Adapter files: safetensors headers, digests, pre-flight checks against limits and catalogues."""
