"""The Fireworks AI emulator as a sandbox mount, under /fireworks.

A client takes `http://HOST:PORT/fireworks` as its base URL (the official SDK:
`Fireworks(api_key=..., account_id=..., base_url="http://HOST:PORT/fireworks")`, or
FIREWORKS_BASE_URL; the SDK adds /v1/... itself). Routes, below the prefix:

    /v1/accounts/{a}/models                          GET list, POST create
    /v1/accounts/{a}/models/{m}                      GET, PATCH, DELETE
    /v1/accounts/{a}/models/{m}:getUploadEndpoint    POST
    /v1/accounts/{a}/models/{m}:validateUpload       GET
    /v1/accounts/{a}/models/{m}:getDownloadEndpoint  GET
    /v1/accounts/{a}/deployments[/{d}]               GET list, POST create; GET, DELETE
    /v1/accounts/{a}/deployedModels[/{id}]           GET list, POST load; GET, PATCH, DELETE
    /inference/v1/chat/completions                   POST (also /v1/chat/completions)
    /_storage/{uid}/{file}                           PUT, GET through signed URLs only

Control-plane answers are proto-JSON; errors are grpc-gateway's `{"code", "message",
"details"}` (errors.py). Routing comes before authentication, as in grpc-gateway: an unknown
path is 404 (code 5, "Not Found") and a known path with another method 501 (code 12, "Method
Not Allowed"), grpc-gateway's default routing errors, whatever the credentials.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from reconciler.sandbox.common.auth import bearer
from reconciler.sandbox.common.mount import MountContext, under
from reconciler.sandbox.common.responses import send_json
from reconciler.sandbox.fireworks import errors, storage
from reconciler.sandbox.fireworks.catalogue import Catalogue
from reconciler.sandbox.fireworks.errors import Code, FireworksError
from reconciler.sandbox.fireworks.fields import read_json
from reconciler.sandbox.fireworks.inference import InferenceError, answer, bad, parse_chat, resolve
from reconciler.sandbox.fireworks.models_api import ModelsApi
from reconciler.sandbox.fireworks.service import Call, Service, Settings
from reconciler.sandbox.fireworks.serving_api import ServingApi
from reconciler.sandbox.fireworks.store import FireworksStore

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

log = logging.getLogger("reconciler.sandbox")

PREFIX = "/fireworks"
STORAGE_PREFIX = PREFIX + "/_storage"
CHAT_PATHS = (PREFIX + "/inference/v1/chat/completions", PREFIX + "/v1/chat/completions")
# The client went away, or went quiet past the server's read timeout, while the body was
# being read: nobody is left to answer, so these go through to the server (server.py).
CONNECTION_LOST = (TimeoutError, ConnectionError)

Handler = Callable[[Call], dict[str, Any]]
_A = PREFIX + r"/v1/accounts/(?P<account>[^/]+)"
_M = _A + r"/models/(?P<model>[^/:]+)"


def _routes(
    models: ModelsApi, serving: ServingApi
) -> list[tuple[re.Pattern[str], dict[str, Handler]]]:
    table: list[tuple[str, dict[str, Handler]]] = [
        (_A + "/models", {"GET": models.list, "POST": models.create}),
        (_M, {"GET": models.get, "PATCH": models.update, "DELETE": models.delete}),
        (_M + ":getUploadEndpoint", {"POST": models.upload_endpoint}),
        (_M + ":validateUpload", {"GET": models.validate_upload}),
        (_M + ":getDownloadEndpoint", {"GET": models.download_endpoint}),
        (_A + "/deployments", {"GET": serving.list_deployments, "POST": serving.create_deployment}),
        (
            _A + r"/deployments/(?P<deployment>[^/:]+)",
            {"GET": serving.get_deployment, "DELETE": serving.delete_deployment},
        ),
        (_A + "/deployedModels", {"GET": serving.list_deployed, "POST": serving.load}),
        (
            _A + r"/deployedModels/(?P<deployed>[^/:]+)",
            {
                "GET": serving.get_deployed,
                "PATCH": serving.update_deployed,
                "DELETE": serving.unload,
            },
        ),
    ]
    return [(re.compile(pattern), methods) for pattern, methods in table]


class FireworksMount:
    prefix = PREFIX
    base_path = PREFIX
    title = "Fireworks AI API"
    rate_limited = False

    def __init__(self, context: MountContext) -> None:
        settings = Settings.from_options(context.options)
        self.store = FireworksStore(context.data_dir / "fireworks")
        signer = storage.Signer(self.store.signing_key, STORAGE_PREFIX)
        self.service = Service(self.store, Catalogue.bundled(), context.clock, settings, signer)
        self.tokens = context.tokens
        self.clock = context.clock
        self.routes = _routes(ModelsApi(self.service), ServingApi(self.service))

    def fault_body(self, status: int) -> dict[str, Any]:
        return errors.fault_body(status)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        try:
            if under(path, STORAGE_PREFIX):
                return self._storage(environ, start_response, method)
            if path in CHAT_PATHS:
                return self._chat(environ, start_response, method)
            status, body = self._control(environ, method, path)
        except CONNECTION_LOST:
            raise
        except Exception:
            log.exception("sandbox: unexpected error on %s %s", method, path)
            status, body = 500, errors.body(Code.INTERNAL, "internal error")
        return send_json(start_response, status, body)

    def _authenticate(self, environ: WSGIEnvironment) -> str | None:
        """None if the request carries an accepted token, else why not."""
        header = environ.get("HTTP_AUTHORIZATION")
        if header is None:
            return "missing API key: send Authorization: Bearer <API key>"
        token = bearer(str(header))
        if token is None or self.tokens.known(token) is None:
            return "invalid API key"
        return None

    def _control(self, environ: WSGIEnvironment, method: str, path: str) -> tuple[int, Any]:
        for pattern, methods in self.routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            handler = methods.get(method)
            if handler is None:
                return 501, errors.body(Code.UNIMPLEMENTED, "Method Not Allowed")
            refused = self._authenticate(environ)
            if refused is not None:
                return 401, errors.body(Code.UNAUTHENTICATED, refused)
            try:
                return 200, handler(Call(environ, match.groupdict(), self.clock.now()))
            except FireworksError as exc:
                return exc.status, exc.body()
        return 404, errors.body(Code.NOT_FOUND, "Not Found")

    def _chat(
        self, environ: WSGIEnvironment, start_response: StartResponse, method: str
    ) -> Iterable[bytes]:
        try:
            if method != "POST":
                raise InferenceError(405, "UNIMPLEMENTED", f"{method} is not allowed here")
            refused = self._authenticate(environ)
            if refused is not None:
                raise InferenceError(401, "UNAUTHENTICATED", refused)
            try:
                body = read_json(environ)
            except FireworksError as exc:
                raise bad(exc.message) from None
            chat = parse_chat(body)
            now = self.clock.now()
            result = answer(chat, resolve(self.service, chat.model, now), now)
            return send_json(start_response, 200, result)
        except InferenceError as exc:
            return send_json(start_response, exc.status, exc.body())

    def _storage(
        self, environ: WSGIEnvironment, start_response: StartResponse, method: str
    ) -> Iterable[bytes]:
        try:
            uid, filename = self.service.signer.verify(environ, self.clock.now())
            if method == "PUT":
                md5 = storage.receive(environ, self.store, uid, filename)
                start_response("200 OK", [("Content-Length", "0"), *storage.etag_headers(md5)])
                return [b""]
            found = self.store.landed_file(uid, filename)
            try:
                if found is None or found.md5 is None:
                    raise FileNotFoundError(filename)
                size, chunks = storage.open_object(self.store.object_path(uid, filename))
            except FileNotFoundError:
                raise storage.StorageError(
                    404, "NoSuchKey", "The specified key does not exist."
                ) from None
            headers = [
                ("Content-Type", storage.CONTENT_TYPE),
                ("Content-Length", str(size)),
                *storage.etag_headers(found.md5),
            ]
            start_response("200 OK", headers)
            return chunks
        except storage.StorageError as exc:
            payload = exc.xml()
            start_response(
                f"{exc.status} {_reason(exc.status)}",
                [
                    ("Content-Type", "application/xml; charset=UTF-8"),
                    ("Content-Length", str(len(payload))),
                ],
            )
            return [payload]


def _reason(status: int) -> str:
    return HTTPStatus(status).phrase


def mount(context: MountContext) -> FireworksMount:
    """The Fireworks mount (common/mount.py's contract)."""
    return FireworksMount(context)
