"""The environment variables cloudflare is configured by."""

TOKEN_ENV = "CLOUDFLARE_API_TOKEN"
URL_ENV = "CLOUDFLARE_API_BASE_URL"

ACCOUNT_ENV = "CLOUDFLARE_ACCOUNT_ID"
