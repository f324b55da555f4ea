"""Every answer of the core API that is not a success, in one shape, and strict bodies.

``{"error": <code>, "message": <what was wrong and how to fix it>, ...}``: unknown
routes (404), a method a path does not serve (405, with an ``Allow`` header listing the
methods of *every* route of that path), bodies that are not JSON (400), NUL in a string
(422), and an unexpected failure (500, which the contract tests count as a bug).

:class:`StrictJsonRoute` makes FastAPI read JSON bodies with
:func:`taskstream.infra.strict_json.loads_strict` instead of Python's ``json``, so
``NaN``, ``Infinity``, lone surrogates and NUL never reach a model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from taskstream.infra.error_shape import ERROR_SCHEMA
from taskstream.infra.strict_json import BadJson, loads_strict

__all__ = ["ERROR_SCHEMA", "StrictJsonRoute", "error_responses", "install_error_handlers"]

logger = logging.getLogger(__name__)

_DESCRIPTIONS = {
    400: "the body is not JSON (NaN and Infinity are not JSON numbers)",
    401: "a bearer token is required (TASKSTREAM_API_TOKENS) and was missing or wrong",
    404: "no such task, execution or route",
    409: "the task changed meanwhile (version conflict) or is in the wrong state",
    413: "the body, or the event it makes, is larger than the API or the broker takes",
    422: "a field, parameter or header is invalid; each is named in errors",
    503: "Kafka did not take the event; retry",
}


def error_responses(
    *statuses: int, also: Mapping[int | str, dict[str, Any]] | None = None
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses``: ``statuses`` in the one error shape, plus the ``also`` ones."""
    responses: dict[int | str, dict[str, Any]] = dict(also or {})
    for status in statuses:
        responses[status] = {
            "description": _DESCRIPTIONS[status],
            "content": {"application/json": {"schema": ERROR_SCHEMA}},
        }
    return responses


class _StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                self._json = loads_strict(await self.body())
            except BadJson as exc:
                raise HTTPException(exc.status, detail=exc.body) from None
        return self._json


class StrictJsonRoute(APIRoute):
    """An ``APIRoute`` whose request reads JSON with :func:`loads_strict`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(_StrictJsonRequest(request.scope, request.receive))

        return strict


def _allowed(app: FastAPI, request: Request) -> list[str]:
    """Every method some route of the request's path serves."""
    methods: set[str] = set()
    for context in iter_route_contexts(app.router.routes):  # the routes of routers too
        route = context.original_route  # no router has a prefix: its path is the app's
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


def install_error_handlers(app: FastAPI) -> None:
    """Answer HTTP errors and unexpected failures of ``app`` in the one shape."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers or {})
        if isinstance(exc.detail, dict) and "error" in exc.detail:
            return JSONResponse(exc.detail, status_code=exc.status_code, headers=headers)
        status = exc.status_code
        if status == 404:
            body = {
                "error": "not_found",
                "message": f"no route {request.method} {request.url.path}: the API is "
                "described at /openapi.json and /docs",
            }
        elif status == 405:
            allowed = _allowed(app, request)
            headers["Allow"] = ", ".join(allowed)
            body = {
                "error": "method_not_allowed",
                "message": f"{request.url.path} does not serve {request.method}; it serves "
                f"{', '.join(allowed)}",
            }
        else:
            phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
            body = {
                "error": phrase.lower().replace(" ", "_") or "http_error",
                "message": str(exc.detail),
            }
        return JSONResponse(body, status_code=status, headers=headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        logger.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse(
            {
                "error": "internal_error",
                "message": f"the core failed on this request ({type(exc).__name__}); "
                "it is logged: please report it",
            },
            status_code=500,
        )
