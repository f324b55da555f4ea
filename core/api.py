"""The REST API: create and read tasks, health and metrics.

Writes validate, append one event to ``task-events`` and wait (bounded) until the
store shows it, so a GET right after a successful write sees the write. A rejected
request writes nothing and gets a JSON body naming each bad field.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest

from core.projection import Projection
from core.publisher import EventPublisher, PublishError
from core.requests import CreateTaskRequest
from core.scheduler import Scheduler
from core.settings import CoreSettings
from core.store import TaskStore, task_as_dict
from handlers import HandlerRegistry, UnknownHandlerError
from schemas import Event, TaskCreated

__all__ = ["CoreRuntime", "create_api"]

SUBMISSIONS = Counter("taskstream_task_submissions_total", "tasks accepted by the API")
REJECTIONS = Counter(
    "taskstream_task_rejections_total", "task requests rejected by the API", ["reason"]
)


@dataclass(frozen=True)
class CoreRuntime:
    """The parts the API talks to, wired by :func:`core.service.bootstrap`."""

    settings: CoreSettings
    store: TaskStore
    publisher: EventPublisher
    projection: Projection
    scheduler: Scheduler
    registry: HandlerRegistry


def _error(status: int, error: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": error, "message": message, **extra}, status_code=status)


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for item in exc.errors():
        location = [str(part) for part in item.get("loc", ()) if part != "body"]
        message = str(item.get("msg", "invalid value")).removeprefix("Value error, ")
        errors.append(
            {"field": ".".join(location) or "body", "message": message, "type": item.get("type")}
        )
    return errors


def create_api(runtime: CoreRuntime) -> FastAPI:
    app = FastAPI(
        title="taskstream core",
        version="1",
        description="Create and inspect scheduled tasks; every change is an event on Kafka.",
    )
    settings = runtime.settings

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _field_errors(exc)
        if any(error["type"] == "json_invalid" for error in errors):
            REJECTIONS.labels("malformed_json").inc()
            return _error(
                400,
                "malformed_json",
                "the request body is not valid JSON: send a JSON object",
                errors=errors,
            )
        REJECTIONS.labels("validation").inc()
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return _error(422, "validation_failed", summary, errors=errors)

    @app.post("/api/tasks", status_code=201, summary="Create a task")
    async def create_task(body: CreateTaskRequest) -> Response:
        try:
            handler = runtime.registry.canonical_name(body.handler)
        except UnknownHandlerError as exc:
            REJECTIONS.labels("unknown_handler").inc()
            return _error(
                422,
                "validation_failed",
                f"handler: {exc}",
                errors=[{"field": "handler", "message": str(exc), "type": "unknown_handler"}],
            )
        if body.queue not in settings.queues:
            REJECTIONS.labels("unknown_queue").inc()
            message = f"unknown queue {body.queue!r}; this deployment serves {settings.queues}"
            return _error(
                422,
                "validation_failed",
                f"queue: {message}",
                errors=[{"field": "queue", "message": message, "type": "unknown_queue"}],
            )
        spec = body.to_spec(handler)
        event = Event.create(_new_task_id(), TaskCreated(task=spec))
        try:
            position = await asyncio.wrap_future(runtime.publisher.publish(event))
        except PublishError as exc:
            return _error(503, "kafka_unavailable", f"{exc}; retry the request")
        SUBMISSIONS.inc()
        seen = await asyncio.to_thread(
            runtime.projection.wait_applied,
            position.partition,
            position.offset,
            settings.read_your_writes_timeout,
        )
        row = runtime.store.get(event.task_id) if seen else None
        headers = {"Location": f"/api/tasks/{event.task_id}"}
        if row is None:
            return JSONResponse(
                {"id": event.task_id, "status": "accepted"}, status_code=202, headers=headers
            )
        return JSONResponse(_jsonable(task_as_dict(row)), status_code=201, headers=headers)

    @app.get("/api/tasks/{task_id}", summary="Get a task")
    def get_task(task_id: str) -> Response:
        row = runtime.store.get(task_id)
        if row is None:
            return _error(404, "not_found", f"no task with id {task_id!r}")
        return JSONResponse(_jsonable(task_as_dict(row)))

    @app.get("/api/tasks", summary="List tasks, a page at a time")
    def list_tasks(page: int = Query(0, ge=0), size: int = Query(20, ge=1, le=1000)) -> Response:
        rows, total = runtime.store.list_tasks(page=page, size=size)
        return JSONResponse(
            {
                "items": [_jsonable(task_as_dict(row)) for row in rows],
                "page": page,
                "size": size,
                "total": total,
            }
        )

    @app.get("/health", summary="Liveness of the API, the store projection and the scheduler")
    def health() -> Response:
        components = {
            "projection": "ok"
            if runtime.projection.alive
            else f"failed: {runtime.projection.error!r}",
            "scheduler": "ok"
            if runtime.scheduler.alive
            else f"failed: {runtime.scheduler.error!r}",
        }
        healthy = all(value == "ok" for value in components.values())
        return JSONResponse(
            {
                "status": "ok" if healthy else "failing",
                "service": "core",
                "instance": settings.instance_id,
                "components": components,
                "owned_partitions": sorted(runtime.scheduler.owned_partitions),
            },
            status_code=200 if healthy else 503,
        )

    @app.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


def _new_task_id() -> str:
    return str(uuid.uuid4())


def _jsonable(document: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = jsonable_encoder(document)
    return result
