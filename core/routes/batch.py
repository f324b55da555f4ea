"""``POST /api/tasks/batch``: up to :data:`MAX_BATCH` tasks in one request.

Each item is validated on its own (a refused item does not stop the others), the
accepted ones are produced together and waited for as one, and the answer lists each
item's id or error.
"""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import Future
from typing import Any

from confluent_kafka import KafkaException
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from taskstream.core.http_errors import error_responses
from taskstream.core.openapi import answers
from taskstream.core.publisher import RecordPosition, confirmed
from taskstream.core.refusals import (
    Refusal,
    field_errors,
    invalid,
    invalid_field,
    validated,
    warnings_field,
)
from taskstream.core.routes.common import api_router
from taskstream.core.task_writes import SUBMISSIONS, TaskWrites, settled_all
from taskstream.schemas import Event, TaskCreated
from taskstream.schemas.api import MAX_BATCH, BatchResult, CreateTaskRequest

__all__ = ["batch_router"]

_BATCH_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_BATCH,
                "items": {"$ref": "#/components/schemas/CreateTaskRequest"},
            }
        }
    },
}

Prepared = Refusal | tuple[Event, list[str]]
"""One batch item: its ``TaskCreated`` and warnings, or why it is refused."""


def batch_router(writes: TaskWrites) -> APIRouter:
    router = api_router()
    runtime = writes.runtime

    @router.post(
        "/api/tasks/batch",
        status_code=201,
        summary=f"Create up to {MAX_BATCH} tasks: a JSON list of task bodies",
        response_model=None,
        openapi_extra={"requestBody": _BATCH_BODY},
        responses=error_responses(
            400,
            401,
            413,
            422,
            503,
            also=answers(
                (201, BatchResult, "every task written, and shown by the store"),
                (202, BatchResult, "every task written; the store does not show them yet"),
                (207, BatchResult, "some items written, others refused: see each item"),
            ),
        ),
    )
    async def create_tasks(request: Request) -> Response:
        items = await request.json()  # strict: see core.http_errors
        if not isinstance(items, list):
            raise invalid_field(
                "body", "send a JSON list of task bodies, as POST /api/tasks takes", "list_type"
            )
        if not 1 <= len(items) <= MAX_BATCH:
            raise invalid_field(
                "body", f"a batch holds 1 to {MAX_BATCH} tasks, got {len(items)}", "batch_size"
            )
        prepared = await asyncio.to_thread(lambda: [prepare(item) for item in items])
        return await create_batch(prepared)

    def prepare(item: Any) -> Prepared:
        try:
            try:
                body = CreateTaskRequest.model_validate(item)
            except ValidationError as exc:
                raise invalid(field_errors(list(exc.errors()))) from None
            spec = writes.check_spec(validated(lambda: body.to_spec(body.handler)))
            task_id = str(uuid.uuid4())
            warnings = writes.served(spec, task_id)
            event = Event.create(task_id, TaskCreated(task=spec))
            writes.sized(event)
        except Refusal as refusal:
            return refusal
        return event, warnings

    async def create_batch(prepared: list[Prepared]) -> Response:
        results: list[dict[str, Any]] = [{"index": n} for n in range(len(prepared))]
        pending: dict[int, tuple[Event, list[str], Future[RecordPosition]]] = {}
        down = runtime.broker.unreachable()
        for index, item in enumerate(prepared):
            if isinstance(item, Refusal):
                results[index].update(status=item.status, **item.body)
                continue
            event, warnings = item
            if down is not None:
                unavailable = Refusal(503, "kafka_unavailable", f"Kafka is {down}; retry the task")
                results[index].update(status=503, **unavailable.body)
                continue
            try:
                pending[index] = (event, warnings, runtime.publisher.publish(event))
            except (BufferError, KafkaException) as exc:
                unavailable = Refusal(503, "kafka_unavailable", f"{exc}; retry the task")
                results[index].update(status=503, **unavailable.body)
        delivered = await asyncio.gather(
            *(confirmed(future, runtime.publisher.timeout) for _, _, future in pending.values()),
            return_exceptions=True,
        )
        written: dict[int, tuple[Event, list[str]]] = {}
        ends: dict[int, int] = {}
        for (index, (event, warnings, _)), position in zip(pending.items(), delivered, strict=True):
            if isinstance(position, BaseException):
                unavailable = Refusal(503, "kafka_unavailable", f"{position}; retry the task")
                results[index].update(status=503, **unavailable.body)
                continue
            written[index] = (event, warnings)
            ends[position.partition] = max(ends.get(position.partition, -1), position.offset)
        seen = await settled_all(
            [runtime.projection.applied(p, offset) for p, offset in ends.items()],
            runtime.settings.read_your_writes_timeout,
        )
        for index, (event, warnings) in written.items():
            writes.log_warnings(event.task_id, warnings)
            results[index].update(
                status=201 if seen else 202,
                id=event.task_id,
                location=f"/api/tasks/{event.task_id}",
                **warnings_field(warnings),
            )
        SUBMISSIONS.inc(len(written))
        refused = len(prepared) - len(written)
        document = {"items": results, "created": len(written), "refused": refused}
        if not refused:
            return JSONResponse(document, status_code=201 if seen else 202)
        if written:
            return JSONResponse(document, status_code=207)
        statuses = {int(result["status"]) for result in results}
        status = 503 if 503 in statuses else 422
        return JSONResponse(
            {
                "error": "kafka_unavailable" if status == 503 else "batch_refused",
                "message": f"none of the {refused} tasks was written; see each item's error",
                **document,
            },
            status_code=status,
        )

    return router
