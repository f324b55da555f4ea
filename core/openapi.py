"""The core's OpenAPI document: FastAPI's, with the bearer scheme on every ``/api/`` route.

The answers are the views of :mod:`taskstream.schemas.api` (declared on each route); a
token is asked only when ``TASKSTREAM_API_TOKENS`` is set, so each ``/api/`` operation
takes the bearer scheme or none.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from taskstream.schemas.durations import durations_as_written

__all__ = ["BEARER", "install_openapi"]

BEARER = {"type": "http", "scheme": "bearer", "description": "one of TASKSTREAM_API_TOKENS"}


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
