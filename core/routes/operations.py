"""``/health``, ``/ready`` and ``/metrics``: for the orchestrator and Prometheus."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from taskstream.core.openapi import answers
from taskstream.core.routes.common import api_router
from taskstream.core.runtime import CoreRuntime
from taskstream.infra.health import health_answer, ready_answer
from taskstream.schemas.api import Health

__all__ = ["operations_router"]


def operations_router(runtime: CoreRuntime) -> APIRouter:
    router = api_router()

    def identity() -> dict[str, Any]:
        return {
            "instance": runtime.settings.instance_id,
            "owned_partitions": sorted(runtime.scheduler.owned_partitions),
        }

    @router.get(
        "/health",
        summary="Liveness: 503 names each failed or unavailable component (kafka, threads)",
        responses=answers((200, Health, "live"), (503, Health, "not live: error, message")),
    )
    def health() -> Response:
        status, body = health_answer(runtime.board.snapshot(), **identity())
        return JSONResponse(body, status_code=status)

    @router.get(
        "/ready",
        summary="Readiness: 200 only when every component is ok",
        responses=answers((200, Health, "ready"), (503, Health, "not ready: error, message")),
    )
    def ready() -> Response:
        status, body = ready_answer(runtime.board.snapshot(), **identity())
        return JSONResponse(body, status_code=status)

    @router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router
