"""The environment variables a vLLM fleet is configured by."""

# the servers, comma-separated base URLs (or dns+http://name:port), when the config names none
SERVERS_ENV = "VLLM_SERVERS"
# vLLM's --api-key, sent as `Authorization: Bearer`; unset for a fleet started without one
API_KEY_ENV = "VLLM_API_KEY"
# the store, where --sandbox points it (the config's providers.vllm.store otherwise)
STORE_ENV = "VLLM_STORE"
