"""``/api/tasks``: create, read, list, replace, patch, pause and resume, delete, run now, cancel."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response

from taskstream.core.aggregate import TaskStatus
from taskstream.core.http_errors import error_responses
from taskstream.core.openapi import ACCEPTED, answers
from taskstream.core.refusals import (
    Refusal,
    if_match_version,
    task_answer,
    validated,
    warned,
    warnings_field,
)
from taskstream.core.routes.common import UUID, WRITE_ERRORS, api_router
from taskstream.core.store import TaskRow, task_as_dict
from taskstream.core.task_writes import CHANGES, SUBMISSIONS, TaskWrites, moves, stored_spec
from taskstream.schemas import (
    CancelRequested,
    Event,
    RunRequested,
    TaskCreated,
    TaskDeleted,
    TaskPaused,
    TaskResumed,
    TaskSpec,
    TaskUpdated,
    execution_id,
)
from taskstream.schemas.api import (
    CancelAccepted,
    CreateTaskRequest,
    PatchTaskRequest,
    ReplaceTaskRequest,
    RunAccepted,
    StatusRequest,
    Task,
    TaskPage,
)

__all__ = ["MAX_PAGE", "tasks_router"]

MAX_PAGE = 1_000_000_000
"""The highest page ``GET /api/tasks`` takes (its offset must fit the store's integers)."""


def tasks_router(writes: TaskWrites) -> APIRouter:
    router = api_router()
    store = writes.runtime.store

    async def update(row: TaskRow, version: int, spec: TaskSpec) -> Response:
        """Replace the task's definition by ``spec``, checked against the one it has."""
        checked = writes.check_spec(spec, stored_spec(row))
        warnings = writes.served(checked, row.id, introduced=moves(row, checked))
        updated = TaskUpdated(task=checked, expected_version=version)
        return await writes.change(row.id, updated, "update", warnings)

    @router.post(
        "/api/tasks",
        status_code=201,
        summary="Create a task",
        responses=error_responses(
            400, 401, 413, 422, 503, also=answers((201, Task, "the task"), ACCEPTED)
        ),
    )
    async def create_task(body: CreateTaskRequest) -> Response:
        spec = writes.check_spec(validated(lambda: body.to_spec(body.handler)))
        task_id = str(uuid.uuid4())
        warnings = writes.served(spec, task_id)
        event = Event.create(task_id, TaskCreated(task=spec))
        row = await writes.publish(event)
        writes.log_warnings(task_id, warnings)
        SUBMISSIONS.inc()
        if row is None:
            accepted = {"id": task_id, "status": "accepted"} | warnings_field(warnings)
            return warned(
                JSONResponse(
                    accepted, status_code=202, headers={"Location": f"/api/tasks/{task_id}"}
                ),
                warnings,
            )
        return task_answer(row, 201, warnings)

    @router.get(
        "/api/tasks/{task_id}",
        summary="Get a task",
        responses=error_responses(401, 404, also=answers((200, Task, "the task"))),
    )
    def get_task(task_id: str = Path(json_schema_extra=UUID)) -> Response:
        return task_answer(writes.live_task(task_id))

    @router.get(
        "/api/tasks",
        summary="List tasks, a page at a time, with filters",
        responses=error_responses(401, 422, also=answers((200, TaskPage, "a page of tasks"))),
    )
    def list_tasks(
        page: int = Query(0, ge=0, le=MAX_PAGE),
        size: int = Query(20, ge=1, le=1000),
        status: str | None = Query(None, pattern="^(active|paused|completed|deleted|quarantined)$"),
        handler: str | None = Query(None, max_length=300, pattern="^[^\\x00]*$"),
        queue: str | None = Query(None, max_length=300, pattern="^[^\\x00]*$"),
    ) -> Response:
        rows, total = store.list_tasks(
            page=page, size=size, status=status, handler=handler, queue=queue
        )
        return JSONResponse(
            {
                "items": [jsonable_encoder(task_as_dict(row)) for row in rows],
                "page": page,
                "size": size,
                "total": total,
            }
        )

    @router.put(
        "/api/tasks/{task_id}",
        summary="Replace a task's definition",
        responses=error_responses(
            *WRITE_ERRORS, also=answers((200, Task, "the task, changed"), ACCEPTED)
        ),
    )
    async def replace_task(
        body: ReplaceTaskRequest,
        task_id: str = Path(json_schema_extra=UUID),
        if_match: str | None = Header(None),
    ) -> Response:
        row, version = writes.versioned(task_id, body.expected_version, if_match)
        return await update(row, version, validated(lambda: body.to_spec(body.handler)))

    @router.patch(
        "/api/tasks/{task_id}",
        summary="Change some fields of a task",
        responses=error_responses(
            *WRITE_ERRORS, also=answers((200, Task, "the task, changed"), ACCEPTED)
        ),
    )
    async def patch_task(
        body: PatchTaskRequest,
        task_id: str = Path(json_schema_extra=UUID),
        if_match: str | None = Header(None),
    ) -> Response:
        row, version = writes.versioned(task_id, body.expected_version, if_match)
        current = stored_spec(row)
        return await update(
            row, version, validated(lambda: TaskSpec.model_validate(body.merged(current)))
        )

    @router.put(
        "/api/tasks/{task_id}/status",
        summary="Pause or resume a task",
        responses=error_responses(
            *WRITE_ERRORS, also=answers((200, Task, "the task, changed"), ACCEPTED)
        ),
    )
    async def set_status(
        body: StatusRequest,
        task_id: str = Path(json_schema_extra=UUID),
        if_match: str | None = Header(None),
    ) -> Response:
        row, version = writes.versioned(task_id, body.expected_version, if_match)
        if row.status == body.status:
            return task_answer(row)
        if body.status == "paused":
            if row.status != TaskStatus.ACTIVE.value:
                raise Refusal(409, "invalid_state", f"cannot pause a {row.status} task")
            return await writes.change(task_id, TaskPaused(expected_version=version), "pause")
        if row.status not in (TaskStatus.PAUSED.value, TaskStatus.QUARANTINED.value):
            raise Refusal(409, "invalid_state", f"cannot resume a {row.status} task")
        return await writes.change(task_id, TaskResumed(expected_version=version), "resume")

    @router.delete(
        "/api/tasks/{task_id}",
        status_code=204,
        summary="Delete a task",
        responses=error_responses(
            401,
            404,
            409,
            422,
            503,
            also=answers(ACCEPTED) | {204: {"description": "deleted"}},
        ),
    )
    async def delete_task(
        task_id: str = Path(json_schema_extra=UUID), if_match: str | None = Header(None)
    ) -> Response:
        row = writes.live_task(task_id)
        version = writes.expected(row, if_match_version(if_match))
        response = await writes.change(task_id, TaskDeleted(expected_version=version), "delete")
        return Response(status_code=204) if response.status_code == 200 else response

    @router.post(
        "/api/tasks/{task_id}/run",
        status_code=202,
        summary="Run a task now",
        responses=error_responses(
            401, 404, 503, also=answers((202, RunAccepted, "requested; its execution id"))
        ),
    )
    async def run_now(task_id: str = Path(json_schema_extra=UUID)) -> Response:
        writes.live_task(task_id)
        event = Event.create(task_id, RunRequested())
        await writes.publish(event)
        CHANGES.labels("run").inc()
        return JSONResponse(
            {
                "task_id": task_id,
                "execution_id": execution_id(task_id, event.occurred_at, 1),
                "requested_at": event.occurred_at.isoformat(),
            },
            status_code=202,
        )

    @router.post(
        "/api/tasks/{task_id}/cancel",
        status_code=202,
        summary="Cancel a task's unfinished executions (or one of them)",
        responses=error_responses(
            401, 404, 422, 503, also=answers((202, CancelAccepted, "the request is on the log"))
        ),
    )
    async def cancel(
        task_id: str = Path(json_schema_extra=UUID),
        execution_uuid: Annotated[uuid.UUID | None, Query(alias="execution_id")] = None,
    ) -> Response:
        writes.live_task(task_id)
        execution = None if execution_uuid is None else str(execution_uuid)
        await writes.publish(Event.create(task_id, CancelRequested(execution_id=execution)))
        CHANGES.labels("cancel").inc()
        return JSONResponse({"task_id": task_id, "execution_id": execution}, status_code=202)

    return router
