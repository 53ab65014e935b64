"""Self-hosted vLLM fleets: adapters placed in a shared store and loaded on every server."""
