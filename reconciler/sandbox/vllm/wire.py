"""What goes over the wire to a vLLM client: vLLM's bodies, and reading JSON requests as
FastAPI and pydantic read them for vLLM.

- Errors are vLLM's ErrorResponse, `{"error": {"message", "type", "param", "code"}}`, `code`
  being the HTTP status (vllm/entrypoints/openai/engine/protocol.py, ErrorInfo).
- A body that does not validate (bad JSON, a missing or mistyped field, a content type other
  than application/json) is 400 with type "Bad Request" and a message listing pydantic's
  errors, as vLLM's validation_exception_handler writes it.
- The load and unload successes are plain text with no Content-Type (FastAPI's `Response`
  without a media type); /health is 200 with an empty body.
- JSON is written compact, as Starlette's JSONResponse writes it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from werkzeug.wsgi import get_input_stream

from reconciler.sandbox.common.bodies import parse_json

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

MAX_BODY = 16 * 1024 * 1024  # a sandbox limit: far above any load or chat request


class WireError(Exception):
    """An answer that ends the request early: status, and a JSON body or none."""

    def __init__(self, status: int, body: Any = None) -> None:
        super().__init__(status)
        self.status, self.body = status, body


def error(status: int, err_type: str, message: str, param: str | None = None) -> WireError:
    body = {"error": {"message": message, "type": err_type, "param": param, "code": status}}
    return WireError(status, body)


def _status_line(status: int) -> str:
    return f"{status} {HTTPStatus(status).phrase}"


def send(
    start_response: StartResponse,
    status: int,
    payload: bytes,
    content_type: str | None,
    headers: Sequence[tuple[str, str]] = (),
) -> Iterable[bytes]:
    head = [("Content-Length", str(len(payload))), *headers]
    if content_type is not None:
        head.insert(0, ("Content-Type", content_type))
    start_response(_status_line(status), head)
    return [payload]


def send_json(start_response: StartResponse, status: int, body: Any) -> Iterable[bytes]:
    payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return send(start_response, status, payload, "application/json")


def send_error(start_response: StartResponse, exc: WireError) -> Iterable[bytes]:
    if exc.body is None:
        return send(start_response, exc.status, b"", None)
    return send_json(start_response, exc.status, exc.body)


def validation_error(errors: Sequence[Mapping[str, Any]]) -> WireError:
    """pydantic's errors, as vLLM's RequestValidationError handler reports them."""
    label = "error" if len(errors) == 1 else "errors"
    message = f"{len(errors)} validation {label}:\n" + "".join(f"  {dict(e)}\n" for e in errors)
    param = None
    loc = errors[0].get("loc") if errors else None
    if isinstance(loc, tuple) and loc:
        param = ".".join(str(part) for part in loc)
    return error(400, HTTPStatus.BAD_REQUEST.phrase, message.rstrip(), param)


_INPUT = "reconciler.sandbox.vllm.input"


def _input(environ: WSGIEnvironment) -> Any:
    """The request body's stream, made once: a second LimitedStream over the same socket would
    wait for bytes the first one already read."""
    if _INPUT not in environ:
        environ[_INPUT] = get_input_stream(environ, max_content_length=None)
    return environ[_INPUT]


def read_body(environ: WSGIEnvironment) -> bytes:
    """The body, or its first MAX_BODY + 1 bytes (the rest is drained, never kept)."""
    raw = bytes(_input(environ).read(MAX_BODY + 1))
    if len(raw) > MAX_BODY:
        drain(environ)
    return raw


def drain(environ: WSGIEnvironment) -> None:
    """Read what is left of the request, so that closing the connection is a clean EOF."""
    stream = _input(environ)
    while stream.read(1 << 16):
        pass


def json_body(environ: WSGIEnvironment) -> dict[str, Any]:
    """The request's JSON object, or the 400 vLLM gives (validate_json_request, then pydantic)."""
    content_type = str(environ.get("CONTENT_TYPE", "")).lower().split(";", 1)[0].strip()
    if content_type != "application/json":
        raise validation_error(
            [{"msg": "Unsupported Media Type: Only 'application/json' is allowed"}]
        )
    raw = read_body(environ)
    if len(raw) > MAX_BODY:
        raise error(413, "BadRequestError", "The request body is too large for the sandbox.")
    try:
        body = parse_json(raw)  # bounded depth; NaN and lone surrogates refused
    except (ValueError, UnicodeDecodeError) as exc:
        where = exc.pos if isinstance(exc, json.JSONDecodeError) else 0
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise validation_error(
            [
                {
                    "type": "json_invalid",
                    "loc": ("body", where),
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": {"error": reason},
                }
            ]
        ) from None
    if not isinstance(body, dict):
        raise validation_error(
            [
                {
                    "type": "model_attributes_type",
                    "loc": ("body",),
                    "msg": "Input should be a valid dictionary or object to extract fields from",
                    "input": body,
                }
            ]
        )
    return body


def field_errors(
    body: Mapping[str, Any], fields: Mapping[str, tuple[type, ...]], required: Iterable[str]
) -> list[dict[str, Any]]:
    """pydantic's errors for missing or mistyped fields (strict about types: a sandbox choice,
    where pydantic's lax mode would also take "1" for an int). A field that may be null lists
    type(None) among its kinds."""
    problems: list[dict[str, Any]] = []
    for name in required:
        if name not in body:
            problems.append(
                {"type": "missing", "loc": ("body", name), "msg": "Field required", "input": body}
            )
    for name, kinds in fields.items():
        if name not in body:
            continue
        value = body[name]
        wrong_bool = isinstance(value, bool) and bool not in kinds
        if wrong_bool or not isinstance(value, kinds):
            kind = kinds[0].__name__
            word = {"str": "string", "int": "integer", "bool": "boolean", "float": "number"}
            problems.append(
                {
                    "type": f"{kind}_type",
                    "loc": ("body", name),
                    "msg": f"Input should be a valid {word.get(kind, kind)}",
                    "input": value,
                }
            )
    return problems
