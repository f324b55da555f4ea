"""Every answer of the monitor's web server that is not a success, in one shape.

``{"error": <code>, "message": <what was wrong and how to fix it>, ...}`` (the core's
shape, :data:`taskstream.infra.error_shape.ERROR_SCHEMA`): a view refuses a request by
raising :class:`Refusal`; :func:`error_middleware` (the outermost aiohttp middleware, so
the token check's 401 passes through it unchanged) answers it, and turns aiohttp's own
answers into the shape too: an unknown route (404), a method the path does not serve
(405, keeping aiohttp's ``Allow`` header: every method of every route of that path), a
body over :data:`MAX_BODY_BYTES` (413), and an unexpected failure (500, logged; the
contract tests count one as a bug).
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from faust.web import Request

from taskstream.infra.strict_json import BadJson, loads_strict
from taskstream.schemas.errors import TaskstreamError

__all__ = ["MAX_BODY_BYTES", "Refusal", "error_middleware", "invalid", "read_json"]

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
"""The largest request body the monitor reads: an alert rule is a few hundred bytes, and
it is stored as one changelog record, well under the broker's limit."""


class Refusal(TaskstreamError):
    """Raised by a view: answer ``status`` with ``{"error", "message", **extra}``."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": error, "message": message, **extra}
        self.headers = headers or {}

    def response(self) -> web.Response:
        return web.json_response(self.body, status=self.status, headers=self.headers)


def invalid(errors: list[dict[str, Any]]) -> Refusal:
    """422 ``validation_failed`` naming each bad field (``{"field", "message", "type"}``)."""
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return Refusal(422, "validation_failed", summary, errors=errors)


async def read_json(request: Request) -> Any:
    """The request's body, parsed strictly (NaN, Infinity and NUL refused), or a
    :class:`Refusal` (400 ``malformed_json`` or 422 ``validation_failed``)."""
    raw = await request.read()  # over the limit: aiohttp raises HTTPRequestEntityTooLarge
    try:
        return loads_strict(raw)
    except BadJson as exc:
        body = exc.body
        raise Refusal(exc.status, body.pop("error"), body.pop("message"), **body) from None


def _from_http_exception(request: web.Request, exc: web.HTTPException) -> web.Response:
    status = exc.status
    headers = {k: v for k, v in exc.headers.items() if k.lower() not in _BODY_HEADERS}
    if status == 404:
        error, message = (
            "not_found",
            f"no route {request.method} {request.path}: the monitor's API is described "
            "at /openapi.json",
        )
    elif status == 405 and isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        headers["Allow"] = allowed
        error, message = (
            "method_not_allowed",
            f"{request.path} does not serve {request.method}; it serves {allowed}",
        )
    elif status == 413:
        error, message = (
            "payload_too_large",
            f"the request body is over {MAX_BODY_BYTES} bytes, the most the monitor reads: "
            "send a smaller body (an alert rule is a few hundred bytes)",
        )
    else:
        phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
        error = phrase.lower().replace(" ", "_").replace("-", "_") or "http_error"
        message = exc.text or phrase or f"HTTP {status}"
    return web.json_response({"error": error, "message": message}, status=status, headers=headers)


_BODY_HEADERS = frozenset({"content-type", "content-length"})


def error_middleware() -> Middleware:
    """The aiohttp middleware that answers every error in the one shape (install first)."""

    @web.middleware
    async def shape_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except Refusal as exc:
            return exc.response()
        except web.HTTPException as exc:
            if exc.status < 400:  # a redirect or another non-error answer: as it is
                raise
            return _from_http_exception(request, exc)
        except Exception as exc:
            logger.exception("%s %s failed", request.method, request.path)
            return web.json_response(
                {
                    "error": "internal_error",
                    "message": f"the monitor failed on this request ({type(exc).__name__}); "
                    "it is logged: please report it",
                },
                status=500,
            )

    return shape_errors
