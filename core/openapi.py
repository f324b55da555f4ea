"""The core's OpenAPI document: FastAPI's, with the bearer scheme on every ``/api/`` route.

The answers are the views of :mod:`taskstream.schemas.api` (declared on each route); a
token is asked only when ``TASKSTREAM_API_TOKENS`` is set, so each ``/api/`` operation
takes the bearer scheme or none.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from taskstream.schemas.api import Accepted
from taskstream.schemas.durations import durations_as_written

__all__ = ["ACCEPTED", "BEARER", "answers", "install_openapi"]

BEARER = {"type": "http", "scheme": "bearer", "description": "one of TASKSTREAM_API_TOKENS"}


def answers(*described: tuple[int, type[BaseModel], str]) -> dict[int | str, dict[str, Any]]:
    """A route's OpenAPI ``responses`` for answers of these models: ``(status, model,
    description)``."""
    return {status: {"model": model, "description": text} for status, model, text in described}


ACCEPTED = (202, Accepted, "written; the store does not show it yet")
"""A write on the log that this core's store did not show in time."""


def _document(app: FastAPI) -> dict[str, Any]:
    document = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    durations_as_written(document)  # request bodies are in validation mode: ISO defaults
    document.setdefault("components", {})["securitySchemes"] = {"bearer": BEARER}
    for path, operations in document["paths"].items():
        if not path.startswith("/api/"):
            continue
        for operation in operations.values():
            operation["security"] = [{"bearer": []}, {}]
    return document


def install_openapi(app: FastAPI) -> None:
    """Serve :func:`_document` at ``/openapi.json`` (built once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
