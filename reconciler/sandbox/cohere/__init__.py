"""The emulated Cohere v1 fine-tuning and datasets API."""
