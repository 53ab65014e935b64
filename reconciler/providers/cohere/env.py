"""The environment variables cohere is configured by."""

TOKEN_ENV = "CO_API_KEY"
URL_ENV = "CO_API_URL"
