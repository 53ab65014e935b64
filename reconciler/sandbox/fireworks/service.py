"""What every Fireworks handler shares: settings, state, the clock, and who may touch what.

Settings come from the mount's options (`reconciler sandbox --...`, MountContext.options):

    fireworks_accounts            account ids the sandbox's tokens own (default: one,
                                  "reconciler-sandbox"); every accepted token owns all of them
    fireworks_deployment_seconds  simulated seconds a deployment is CREATING (default 30)
    fireworks_load_seconds        simulated seconds an adapter is DEPLOYING on a deployment
                                  (default 10; counted from when the deployment is READY)
    fireworks_serverless_seconds  the same, serverless (default 120: the docs say 2-5 minutes)
    fireworks_url_seconds         lifetime of signed URLs, real seconds (default 3600)
    fireworks_storage_origin      scheme://host:port the signed URLs name (default: the origin
                                  the getUploadEndpoint request came to)
    fireworks_max_file_bytes      largest file a model may declare (default 4 GiB)

Simulated seconds are divided by the clock's speed (common/clock.py); signed-URL expiry is
real time on the same clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from reconciler.sandbox.common.clock import Clock
from reconciler.sandbox.fireworks.catalogue import Catalogue
from reconciler.sandbox.fireworks.errors import denied, not_found
from reconciler.sandbox.fireworks.listing import Pages
from reconciler.sandbox.fireworks.names import CATALOGUE_ACCOUNT, RESOURCE_ID_RE
from reconciler.sandbox.fireworks.records import ModelRecord
from reconciler.sandbox.fireworks.serving_store import ServingStore
from reconciler.sandbox.fireworks.storage import URL_SECONDS, Signer
from reconciler.sandbox.fireworks.store import FireworksStore

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

DEFAULT_ACCOUNT = "reconciler-sandbox"


@dataclass(frozen=True)
class Settings:
    accounts: tuple[str, ...] = (DEFAULT_ACCOUNT,)
    deployment_seconds: float = 30.0
    load_seconds: float = 10.0
    serverless_seconds: float = 120.0
    url_seconds: int = URL_SECONDS
    storage_origin: str | None = None
    max_file_bytes: int = 4 << 30

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Settings:
        def get(name: str, kind: type | tuple[type, ...], default: Any) -> Any:
            value = options.get(f"fireworks_{name}")
            if value is None:
                return default
            if isinstance(value, bool) or not isinstance(value, kind):
                raise TypeError(f"sandbox option fireworks_{name} has the wrong type")
            return value

        accounts = tuple(get("accounts", (list, tuple), cls.accounts))
        for account in accounts:
            if not isinstance(account, str) or not RESOURCE_ID_RE.fullmatch(account):
                raise ValueError(f"fireworks_accounts: {account!r} is not a resource id")
            if account == CATALOGUE_ACCOUNT:
                raise ValueError("fireworks_accounts: 'fireworks' is Fireworks' own account")
        return cls(
            accounts=accounts or cls.accounts,
            deployment_seconds=float(get("deployment_seconds", (int, float), 30.0)),
            load_seconds=float(get("load_seconds", (int, float), 10.0)),
            serverless_seconds=float(get("serverless_seconds", (int, float), 120.0)),
            url_seconds=int(get("url_seconds", int, URL_SECONDS)),
            storage_origin=get("storage_origin", str, None),
            max_file_bytes=int(get("max_file_bytes", int, 4 << 30)),
        )


@dataclass(frozen=True)
class Call:
    environ: WSGIEnvironment
    params: dict[str, str]  # from the path: account, model, deployment, deployed
    now: float

    @property
    def account(self) -> str:
        return self.params["account"]

    def query(self) -> dict[str, str]:
        return dict(parse_qsl(str(self.environ.get("QUERY_STRING", "")), keep_blank_values=True))

    def origin(self) -> str:
        scheme = str(self.environ.get("wsgi.url_scheme", "http"))
        host = self.environ.get("HTTP_HOST") or (
            f"{self.environ.get('SERVER_NAME')}:{self.environ.get('SERVER_PORT')}"
        )
        return f"{scheme}://{host}"


class Service:
    def __init__(
        self,
        store: FireworksStore,
        catalogue: Catalogue,
        clock: Clock,
        settings: Settings,
        signer: Signer,
    ) -> None:
        self.store = store
        self.serving = ServingStore(store)
        self.catalogue = catalogue
        self.clock = clock
        self.settings = settings
        self.pages = Pages(store.page_token_key)
        self.signer = signer

    def simulated(self, seconds: float) -> float:
        """Real seconds that `seconds` of simulated work take at the clock's speed."""
        return seconds / self.clock.speed

    def own(self, account: str) -> None:
        """PERMISSION_DENIED unless the caller's tokens own `account` (sandbox choice: the real
        API's answer for someone else's account is not published; 403 is the gRPC meaning)."""
        if account not in self.settings.accounts:
            raise denied(f'the API key has no access to account "{account}"')

    def readable(self, account: str) -> None:
        """Fireworks' own models are readable by everyone."""
        if account != CATALOGUE_ACCOUNT:
            self.own(account)

    def model(self, account: str, model_id: str) -> ModelRecord:
        self.own(account)
        record = self.store.get_model(account, model_id)
        if record is None:
            raise not_found(f'model "accounts/{account}/models/{model_id}" not found')
        return record
