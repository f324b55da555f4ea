"""What the routers share: their route class, and the OpenAPI pieces of a path."""

from __future__ import annotations

from fastapi import APIRouter

from taskstream.core.http_errors import StrictJsonRoute

__all__ = ["UUID", "WRITE_ERRORS", "api_router"]

UUID = {"format": "uuid"}
"""A path parameter that is a UUID, for the OpenAPI document."""
WRITE_ERRORS = (400, 401, 404, 409, 413, 422, 503)
"""The errors a change of a task may answer."""


def api_router() -> APIRouter:
    """A router whose routes parse JSON bodies strictly (see :mod:`taskstream.core.http_errors`)."""
    return APIRouter(route_class=StrictJsonRoute)
