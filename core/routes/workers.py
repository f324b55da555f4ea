"""``/api/workers``: the executors known from their heartbeats."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

from taskstream.core.http_errors import error_responses
from taskstream.core.openapi import answers
from taskstream.core.routes.common import api_router
from taskstream.core.runtime import CoreRuntime
from taskstream.schemas.api import WorkerList
from taskstream.schemas.workers import worker_view

__all__ = ["workers_router"]


def workers_router(runtime: CoreRuntime) -> APIRouter:
    router = api_router()

    @router.get(
        "/api/workers",
        summary="The executors known from their heartbeats",
        responses=error_responses(
            401, 422, also=answers((200, WorkerList, "the executors, live or not"))
        ),
    )
    def list_workers(
        live: bool | None = Query(None, description="true: only live executors"),
    ) -> Response:
        now = datetime.now(UTC)
        items = [
            worker_view(beat, now, runtime.workers.timeout) for beat in runtime.workers.known()
        ]
        if live is not None:
            items = [item for item in items if item["live"] == live]
        return JSONResponse({"items": items, "ready": runtime.workers.ready})

    return router
