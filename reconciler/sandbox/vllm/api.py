"""The routes of one replica, as `vllm serve --enable-lora` with
VLLM_ALLOW_RUNTIME_LORA_UPDATING=True serves them (paths after /vllm/<i>):

    GET  /health                  200, empty body
    GET  /v1/models               the base model, then each loaded adapter
    POST /v1/load_lora_adapter    {lora_name, lora_path, load_inplace?} -> plain-text success
    POST /v1/unload_lora_adapter  {lora_name} -> plain-text success
    POST /v1/chat/completions     the base model or a loaded adapter (chat.py)

With an API key (vllm_api_key, vLLM's --api-key) every path starting with /v1 needs
`Authorization: Bearer <key>` and otherwise gets 401 `{"error": "Unauthorized"}`; /health
never does (vllm/entrypoints/openai/api_server.py, AuthenticationMiddleware). Any other path
is FastAPI's 404 `{"detail": "Not Found"}`, a known path with another method its 405.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from reconciler.sandbox.common.clock import Clock
from reconciler.sandbox.vllm.chat import Speaker, answer, completion, parse_chat, stream
from reconciler.sandbox.vllm.options import FleetOptions
from reconciler.sandbox.vllm.replica import Replica
from reconciler.sandbox.vllm.wire import (
    WireError,
    error,
    field_errors,
    json_body,
    send,
    send_json,
    validation_error,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

NONE = type(None)
ROUTES = {
    "/health": "GET",
    "/v1/models": "GET",
    "/v1/load_lora_adapter": "POST",
    "/v1/unload_lora_adapter": "POST",
    "/v1/chat/completions": "POST",
}
UNAUTHORIZED = WireError(401, {"error": "Unauthorized"})


def authorized(environ: WSGIEnvironment, api_key: str) -> bool:
    """vLLM's check: scheme `bearer` in any case, the rest compared by SHA-256 digest."""
    header = str(environ.get("HTTP_AUTHORIZATION", ""))
    scheme, _, given = header.partition(" ")
    if not header or scheme.lower() != "bearer":
        return False
    expected = hashlib.sha256(api_key.encode()).digest()
    return hmac.compare_digest(hashlib.sha256(given.encode()).digest(), expected)


def _card(model: str, root: str, parent: str | None, max_len: int | None, now: int) -> Any:
    """vLLM's ModelCard, with its one ModelPermission (fresh ids and times on every call)."""
    permission = {
        "id": f"modelperm-{uuid.uuid4().hex}",
        "object": "model_permission",
        "created": now,
        "allow_create_engine": False,
        "allow_sampling": True,
        "allow_logprobs": True,
        "allow_search_indices": False,
        "allow_view": True,
        "allow_fine_tuning": False,
        "organization": "*",
        "group": None,
        "is_blocking": False,
    }
    return {
        "id": model,
        "object": "model",
        "created": now,
        "owned_by": "vllm",
        "root": root,
        "parent": parent,
        "max_model_len": max_len,
        "permission": [permission],
    }


class ReplicaApi:
    def __init__(self, replica: Replica, options: FleetOptions, clock: Clock) -> None:
        self.replica, self.options, self.clock = replica, options, clock

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse, path: str
    ) -> Iterable[bytes]:
        """Answer one request (ReplicaGone and WireError propagate to the mount)."""
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        key = self.options.api_key
        if path.startswith("/v1") and key is not None and not authorized(environ, key):
            raise UNAUTHORIZED
        wanted = ROUTES.get(path)
        if wanted is None:
            raise WireError(404, {"detail": "Not Found"})
        if method != wanted:
            raise WireError(405, {"detail": "Method Not Allowed"})
        if path == "/health":
            return send(start_response, 200, b"", None)
        if path == "/v1/models":
            return send_json(start_response, 200, self.models())
        body = json_body(environ)
        if path == "/v1/load_lora_adapter":
            text = self.load(body)
        elif path == "/v1/unload_lora_adapter":
            text = self.unload(body)
        else:
            return self.chat(start_response, body)
        # FastAPI's Response(content=str) without a media type: no Content-Type header.
        return send(start_response, 200, text.encode(), None)

    def models(self) -> dict[str, Any]:
        now = int(self.clock.now())
        base = self.options.model
        cards = [_card(base, base, None, self.options.max_model_len, now)]
        cards += [_card(a.name, a.path, base, None, now) for a in self.replica.adapters()]
        return {"object": "list", "data": cards}

    def load(self, body: dict[str, Any]) -> str:
        fields = {"lora_name": (str,), "lora_path": (str,), "load_inplace": (bool,)}
        problems = field_errors(body, fields, required=("lora_name", "lora_path"))
        if problems:
            raise validation_error(problems)
        inplace = bool(body.get("load_inplace", False))
        return self.replica.load(body["lora_name"], body["lora_path"], inplace)

    def unload(self, body: dict[str, Any]) -> str:
        fields = {"lora_name": (str,), "lora_int_id": (int, NONE)}
        problems = field_errors(body, fields, required=("lora_name",))
        if problems:
            raise validation_error(problems)
        return self.replica.unload(body["lora_name"])

    def speaker(self, model: str | None) -> Speaker:
        base = self.options.model
        if not model or model == base:
            return Speaker(base, base.rsplit("/", 1)[-1], ())
        found = self.replica.serving(model)
        if found is None:
            raise error(404, "NotFoundError", f"The model `{model}` does not exist.", "model")
        adapter, digests = found
        return Speaker(adapter.name, adapter.name, (adapter.name, *digests))

    def chat(self, start_response: StartResponse, body: dict[str, Any]) -> Iterable[bytes]:
        request = parse_chat(body)
        speaker = self.speaker(request.model)
        reply = answer(self.options.model, speaker, request)
        created = int(self.clock.now())
        if request.stream:
            start_response("200 OK", [("Content-Type", "text/event-stream; charset=utf-8")])
            return stream(speaker.model, reply, request, created)
        return send_json(start_response, 200, completion(speaker.model, reply, request.n, created))
