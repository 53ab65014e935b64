"""The sandbox's vLLM fleet: N OpenAI-compatible vLLM servers with runtime LoRA loading, under
/vllm/<i>/ (mount.py; what is emulated and where vLLM's source says so: README.md)."""
