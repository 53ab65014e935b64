"""Fireworks AI: bring-your-own LoRA adapters as Models of an account (see api.py)."""
