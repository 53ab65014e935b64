"""Fireworks' control-plane errors: gRPC status codes in the gRPC-gateway body.

Every control-plane error is `{"code": <int gRPC code>, "message": "...", "details": []}` with
the HTTP status of the code's google.rpc "HTTP Mapping" (byo-lora-providers.md 1.2, from the
`gatewayCode` enum in Fireworks' own OpenAPI fragments). The body's shape is inferred there
(the old SDK reads `message`; grpc-gateway writes code, message and details); no fragment
declares an error response.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class Code(IntEnum):
    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


HTTP_STATUS: dict[Code, int] = {
    Code.OK: 200,
    Code.CANCELLED: 499,
    Code.UNKNOWN: 500,
    Code.INVALID_ARGUMENT: 400,
    Code.DEADLINE_EXCEEDED: 504,
    Code.NOT_FOUND: 404,
    Code.ALREADY_EXISTS: 409,
    Code.PERMISSION_DENIED: 403,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.FAILED_PRECONDITION: 400,
    Code.ABORTED: 409,
    Code.OUT_OF_RANGE: 400,
    Code.UNIMPLEMENTED: 501,
    Code.INTERNAL: 500,
    Code.UNAVAILABLE: 503,
    Code.DATA_LOSS: 500,
    Code.UNAUTHENTICATED: 401,
}

# The code an injected fault of an HTTP status carries (faults.py picks the status). Sandbox
# choice where the mapping above is not one-to-one: 409 is ABORTED (a conflict worth retrying,
# as a fault means), 500 INTERNAL, 502/503 UNAVAILABLE, 408/504 DEADLINE_EXCEEDED.
_FAULT_CODES: dict[int, Code] = {
    400: Code.INVALID_ARGUMENT,
    401: Code.UNAUTHENTICATED,
    403: Code.PERMISSION_DENIED,
    404: Code.NOT_FOUND,
    408: Code.DEADLINE_EXCEEDED,
    409: Code.ABORTED,
    429: Code.RESOURCE_EXHAUSTED,
    499: Code.CANCELLED,
    500: Code.INTERNAL,
    501: Code.UNIMPLEMENTED,
    502: Code.UNAVAILABLE,
    503: Code.UNAVAILABLE,
    504: Code.DEADLINE_EXCEEDED,
}


def body(code: Code, message: str) -> dict[str, Any]:
    return {"code": int(code), "message": message, "details": []}


def fault_body(status: int) -> dict[str, Any]:
    """The body of an injected error with this HTTP status."""
    code = _FAULT_CODES.get(status, Code.UNKNOWN)
    return body(code, code.name.lower().replace("_", " "))


class FireworksError(Exception):
    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        return HTTP_STATUS[self.code]

    def body(self) -> dict[str, Any]:
        return body(self.code, self.message)


def invalid(message: str) -> FireworksError:
    return FireworksError(Code.INVALID_ARGUMENT, message)


def not_found(message: str) -> FireworksError:
    return FireworksError(Code.NOT_FOUND, message)


def precondition(message: str) -> FireworksError:
    return FireworksError(Code.FAILED_PRECONDITION, message)


def exists(message: str) -> FireworksError:
    return FireworksError(Code.ALREADY_EXISTS, message)


def denied(message: str) -> FireworksError:
    return FireworksError(Code.PERMISSION_DENIED, message)


def exhausted(message: str) -> FireworksError:
    return FireworksError(Code.RESOURCE_EXHAUSTED, message)


def unimplemented(message: str) -> FireworksError:
    return FireworksError(Code.UNIMPLEMENTED, message)
