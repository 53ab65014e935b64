"""Cohere fine-tuning (retired 2025-09-15; sandbox only): everything reconciler knows about it."""
