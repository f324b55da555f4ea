"""The core's OpenAPI document: FastAPI's, with the bearer scheme on every ``/api/`` route.

The answers are the views of :mod:`taskstream.schemas.api` (declared on each route); a
token is asked only when ``TASKSTREAM_API_TOKENS`` is set, so each ``/api/`` operation
takes the bearer scheme or none.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import TypeAdapter

from taskstream.schemas.durations import Duration, format_duration

__all__ = ["BEARER", "install_openapi"]

BEARER = {"type": "http", "scheme": "bearer", "description": "one of TASKSTREAM_API_TOKENS"}


_DURATION_PATTERN = TypeAdapter(Duration).json_schema()["pattern"]
_TIMEDELTA: TypeAdapter[timedelta] = TypeAdapter(timedelta)


def _durations_as_written(node: Any) -> None:
    """Write the default of every duration as the API takes it (``"1s"``): request bodies
    are described in validation mode, where pydantic writes ISO 8601 (``"PT1S"``), which
    the duration's own pattern refuses."""
    if isinstance(node, dict):
        default = node.get("default")
        if node.get("pattern") == _DURATION_PATTERN and isinstance(default, str):
            if default.startswith("P"):
                node["default"] = format_duration(_TIMEDELTA.validate_python(default))
        for value in node.values():
            _durations_as_written(value)
    elif isinstance(node, list):
        for value in node:
            _durations_as_written(value)


def _document(app: FastAPI) -> dict[str, Any]:
    document = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    _durations_as_written(document)
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
