"""The environment variables cloudflare is configured by."""

from __future__ import annotations

from collections.abc import Mapping

TOKEN_ENV = "CLOUDFLARE_API_TOKEN"
URL_ENV = "CLOUDFLARE_API_BASE_URL"

ACCOUNT_ENV = "CLOUDFLARE_ACCOUNT_ID"

# what wrangler also reads: its older token name, and a Global API Key with its account email
OLD_TOKEN_ENV = "CF_API_TOKEN"
KEY_ENV = "CLOUDFLARE_API_KEY"
EMAIL_ENV = "CLOUDFLARE_EMAIL"


def found_instead(env: Mapping[str, str]) -> str | None:
    """What wrangler's habits left in the environment when the token is unset, said by the
    variables' names only (never their values); None when there is none of them."""
    if env.get(TOKEN_ENV):
        return None
    if env.get(OLD_TOKEN_ENV):
        return (
            f"{TOKEN_ENV} is not set; {OLD_TOKEN_ENV} is set (wrangler's older name for it): "
            f'export {TOKEN_ENV}="${OLD_TOKEN_ENV}"'
        )
    keyed = [v for v in (KEY_ENV, EMAIL_ENV) if env.get(v)]
    if not keyed:
        return None
    what = " and ".join(keyed) + (" are" if len(keyed) > 1 else " is")
    return (
        f"{TOKEN_ENV} is not set; {what} set, a Global API Key as wrangler takes it, which "
        "reconciler does not use: create an API token with the 'Workers AI Write' permission "
        f"and export it as {TOKEN_ENV}"
    )
