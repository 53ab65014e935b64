"""The emulated Hugging Face Hub (model reading), under /hf."""
