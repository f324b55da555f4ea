"""The monitor's OpenAPI 3.1 document, served at ``GET /openapi.json`` (no token needed).

Built from the routes' own declarations (the ``OPERATIONS`` of :mod:`taskstream.monitor.api`,
:mod:`taskstream.monitor.alerts.web`, :mod:`taskstream.monitor.workers`,
:mod:`taskstream.monitor.metrics`, :mod:`taskstream.monitor.dashboard.contract` and this module), so
a parameter's bounds or a route's path are written once; a test compares the routes faust serves
with it. Every path that serves GET also serves HEAD (aiohttp adds it), not listed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import faust
from faust.web import Request, Response, View
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from taskstream.infra.error_shape import ERROR_SCHEMA
from taskstream.monitor import api, api_docs, health_view, metrics, workers
from taskstream.monitor.alerts import web as alerts_web
from taskstream.monitor.contract import Operation, json_answer
from taskstream.monitor.dashboard import contract as dashboard_contract
from taskstream.schemas.api import Health, Worker
from taskstream.schemas.monitor_api import (
    AlertList,
    MonitorMetrics,
    RecentExecutions,
    TaskHistory,
    TaskStats,
)

__all__ = ["ANSWER_MODELS", "OPENAPI", "OPERATIONS", "install_openapi", "openapi_document"]

ANSWER_MODELS: tuple[type[BaseModel], ...] = (
    TaskHistory,
    TaskStats,
    RecentExecutions,
    MonitorMetrics,
    AlertList,
    Health,
    Worker,
)
"""The answers described by a model (:func:`~taskstream.monitor.contract.model_answer`):
their JSON Schemas are components of the document."""


def _model_components() -> dict[str, Any]:
    _, schema = models_json_schema(
        [(model, "serialization") for model in ANSWER_MODELS],
        ref_template="#/components/schemas/{model}",
    )
    components: dict[str, Any] = schema.get("$defs", {})
    return components


OPENAPI = Operation(
    method="get",
    path="/openapi.json",
    operation_id="getOpenApi",
    summary="This document",
    responses={200: json_answer("the OpenAPI document", {"type": "object"})},
    open=True,
    tags=("probes",),
)


def _all_operations() -> tuple[Operation, ...]:
    return (
        *api.OPERATIONS,
        *alerts_web.OPERATIONS,
        *workers.OPERATIONS,
        *metrics.OPERATIONS,
        *dashboard_contract.OPERATIONS,
        *health_view.OPERATIONS,
        *api_docs.OPERATIONS,
        OPENAPI,
    )


OPERATIONS = _all_operations()


def openapi_document(operations: Iterable[Operation] = OPERATIONS) -> dict[str, Any]:
    """The document; ``ValueError`` if two operations share a method and path or an id."""
    paths: dict[str, dict[str, Any]] = {}
    ids: set[str] = set()
    for operation in operations:
        methods = paths.setdefault(operation.path, {})
        if operation.method in methods or operation.operation_id in ids:
            raise ValueError(f"declared twice: {operation.method} {operation.path}")
        ids.add(operation.operation_id)
        methods[operation.method] = operation.openapi()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "taskstream monitor",
            "version": "1",
            "description": "The monitor's JSON API, alerts, probes and dashboard. Errors are "
            '{"error", "message", ...}. With TASKSTREAM_MONITOR_TOKENS set, every operation '
            "not marked open needs Authorization: Bearer <token> (401 otherwise, before any "
            "404). Every path that serves GET serves HEAD too.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {"Error": ERROR_SCHEMA, **alerts_web.SCHEMAS, **_model_components()},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def install_openapi(app: faust.App) -> dict[str, Any]:
    """Serve the document at ``/openapi.json``; return it."""
    document = openapi_document()

    @app.page(OPENAPI.path)
    async def openapi(self: View, request: Request) -> Response:
        return self.json(document)

    return document
