"""An emulator of the Fireworks AI control plane and inference for BYO LoRA adapters (mount.py)."""
