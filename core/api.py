"""The REST API: tasks (create, change, read, run now, cancel), execution logs, health, metrics.

Every write validates, appends one event to ``task-events`` and waits (bounded) until
the store shows it, so a GET right after a successful write sees the write. Changes are
conditional on the task's version (the client's ``expected_version`` / ``If-Match``, or
the version the API read): a stale one gets 409, and a change that loses a race to a
concurrent one is rejected by every consumer of the log alike, and answered 409. A
rejected request gets a JSON body naming each bad field.

``POST /api/tasks/batch`` creates up to :data:`MAX_BATCH` tasks in one request: each item
is validated on its own (a refused item does not stop the others), the accepted ones are
produced together and waited for as one, and the answer lists each item's id or error.

A create or change whose handler no live executor serves on the task's queue is answered
per ``TASKSTREAM_UNSERVED_HANDLER``: written with a ``warnings`` list and a ``Warning``
header (``warn``), refused with 422 ``handler_unserved`` (``reject``), or not checked.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from confluent_kafka import KafkaException
from fastapi import FastAPI, Header, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from pydantic import ValidationError

from taskstream.core.admission import admission_errors, params_errors
from taskstream.core.aggregate import TaskStatus
from taskstream.core.event_size import EventSizeLimit, EventTooLarge
from taskstream.core.execution_logs import LogProjection
from taskstream.core.http_errors import StrictJsonRoute, error_responses, install_error_handlers
from taskstream.core.openapi import ACCEPTED, answers, install_openapi
from taskstream.core.projection import Projection
from taskstream.core.publisher import EventPublisher, PublishError, RecordPosition, confirmed
from taskstream.core.scheduler import Scheduler
from taskstream.core.security import SETTINGS_PREFIX, BodySizeLimit, TokenAuth, load_tokens
from taskstream.core.settings import CoreSettings
from taskstream.core.store import TaskRow, TaskStore, task_as_dict
from taskstream.core.workers import (
    WorkerDirectory,
    loading_message,
    unserved_message,
)
from taskstream.handlers import HandlerRegistry, UnknownHandlerError
from taskstream.infra.broker_health import BrokerHealth
from taskstream.infra.health import HealthBoard, health_answer, ready_answer
from taskstream.infra.logs import fields
from taskstream.schemas import (
    CancelRequested,
    Event,
    EventData,
    RunRequested,
    TaskCreated,
    TaskDeleted,
    TaskPaused,
    TaskResumed,
    TaskSpec,
    TaskUpdated,
    execution_id,
    recorded,
)
from taskstream.schemas.api import (
    MAX_BATCH,
    BatchResult,
    CancelAccepted,
    CreateTaskRequest,
    ExecutionLogs,
    Health,
    PatchTaskRequest,
    ReplaceTaskRequest,
    RunAccepted,
    StatusRequest,
    Task,
    TaskPage,
    WorkerList,
)
from taskstream.schemas.errors import TaskstreamError
from taskstream.schemas.workers import worker_view

__all__ = ["MAX_BATCH", "CoreRuntime", "create_api"]

logger = logging.getLogger(__name__)

MAX_PAGE = 1_000_000_000
"""The highest page ``GET /api/tasks`` takes (its offset must fit the store's integers)."""
_UUID = {"format": "uuid"}
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
_WRITE_ERRORS = (400, 401, 404, 409, 413, 422, 503)

SUBMISSIONS = Counter("taskstream_task_submissions_total", "tasks accepted by the API")
CHANGES = Counter("taskstream_task_changes_total", "task changes accepted by the API", ["kind"])
REJECTIONS = Counter(
    "taskstream_task_rejections_total", "task requests rejected by the API", ["reason"]
)


@dataclass(frozen=True)
class CoreRuntime:
    """The parts the API talks to, wired by :func:`taskstream.core.service.bootstrap`."""

    settings: CoreSettings
    store: TaskStore
    publisher: EventPublisher
    projection: Projection
    scheduler: Scheduler
    logs: LogProjection
    workers: WorkerDirectory
    registry: HandlerRegistry
    event_limit: EventSizeLimit
    broker: BrokerHealth
    board: HealthBoard


class _Refusal(TaskstreamError):
    """A request refused before anything was written."""

    def __init__(self, status: int, error: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"error": error, "message": message, **extra}
        REJECTIONS.labels(error).inc()

    @property
    def response(self) -> JSONResponse:
        return JSONResponse(self.body, status_code=self.status)


def _field_errors(errors: list[Any], prefix: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    result = []
    for item in errors:
        location = [*prefix, *(str(part) for part in item.get("loc", ()) if part != "body")]
        message = str(item.get("msg", "invalid value")).removeprefix("Value error, ")
        result.append(
            {"field": ".".join(location) or "body", "message": message, "type": item.get("type")}
        )
    return result


def _invalid(errors: list[dict[str, Any]]) -> _Refusal:
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return _Refusal(422, "validation_failed", summary, errors=errors)


def _invalid_field(field: str, message: str, kind: str) -> _Refusal:
    return _invalid([{"field": field, "message": message, "type": kind}])


def _task_body(row: TaskRow, status: int = 200, warnings: Sequence[str] = ()) -> JSONResponse:
    document: dict[str, Any] = jsonable_encoder(task_as_dict(row))
    return _warned(
        JSONResponse(
            document | _warnings_field(warnings),
            status_code=status,
            headers={"ETag": f'"{row.version}"', "Location": f"/api/tasks/{row.id}"},
        ),
        warnings,
    )


def _warned(response: JSONResponse, warnings: Sequence[str]) -> JSONResponse:
    """Add one ``Warning: 199 - "..."`` header per warning (RFC 7234 miscellaneous)."""
    for warning in warnings:
        quoted = warning.replace("\\", "\\\\").replace('"', '\\"')
        text = quoted.encode("ascii", "backslashreplace").decode()
        response.headers.append("Warning", f'199 - "{text}"')
    return response


def _if_match(value: str | None) -> int | None:
    if value is None:
        return None
    text = value.strip().removeprefix("W/").strip('"')
    if not text.isdigit():
        raise _invalid_field(
            "If-Match", 'If-Match must be a task version such as "3"', "invalid_version"
        )
    return int(text)


def _is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text.lower()
    except ValueError:
        return False


def create_api(runtime: CoreRuntime) -> FastAPI:
    settings = runtime.settings
    app = FastAPIOffline(  # /docs and /redoc from the package's own files: they work offline
        title="taskstream core",
        version="1",
        description="Create and manage scheduled tasks; every change is an event on Kafka. "
        'Errors are {"error", "message", ...}. With TASKSTREAM_API_TOKENS set, every '
        "/api/ operation needs Authorization: Bearer <token> (401 otherwise).",
    )
    install_openapi(app)
    app.router.route_class = StrictJsonRoute
    install_error_handlers(app)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _field_errors(list(exc.errors()))
        if any(error["type"] == "json_invalid" for error in errors):
            return _Refusal(
                400,
                "malformed_json",
                "the request body is not valid JSON: send a JSON object",
                errors=errors,
            ).response
        return _invalid(errors).response

    @app.exception_handler(_Refusal)
    async def refused(request: Request, exc: _Refusal) -> JSONResponse:
        return exc.response

    # -- helpers ------------------------------------------------------------------------

    def check_spec(spec: TaskSpec, current: TaskSpec | None = None) -> TaskSpec:
        """``spec`` with its handler's canonical name, or 422 naming what is refused."""
        refused = admission_errors(
            spec,
            now=datetime.now(UTC),
            min_interval=settings.min_interval,
            schedule_changed=current is None or current.schedule != spec.schedule,
        )
        if refused:
            raise _invalid(refused)
        try:
            handler = runtime.registry.canonical_name(spec.handler)
            model = runtime.registry.resolve(spec.handler).params_model
        except UnknownHandlerError as exc:
            raise _invalid_field("handler", str(exc), "unknown_handler") from None
        changed = current is None or (current.handler, current.params) != (handler, spec.params)
        if model is not None and changed and (wrong := params_errors(model, spec.params)):
            raise _invalid(wrong)
        if spec.queue not in settings.queues:
            raise _invalid_field(
                "queue",
                f"unknown queue {spec.queue!r}; this deployment serves {settings.queues}",
                "unknown_queue",
            )
        return spec if handler == spec.handler else spec.model_copy(update={"handler": handler})

    def served(spec: TaskSpec, task_id: str, *, introduced: bool = True) -> list[str]:
        """Warnings about ``spec``'s handler, or 422 if no live executor serves it.

        Only a write that introduces the handler on the queue (a create, or a change of
        either) is rejected; a change of other fields of such a task is warned about.
        """
        if settings.unserved_handler == "ignore":
            return []
        logged = fields(task_id=task_id, action="unserved_handler")
        if not runtime.workers.ready:  # never reject on a partial view
            message = loading_message(spec.handler, spec.queue)
        else:
            found = unserved_message(spec.handler, spec.queue, runtime.workers.live())
            if found is None:
                return []
            message = found
            if settings.unserved_handler == "reject" and introduced:
                logger.info("refused: %s", message, extra=logged)
                raise _Refusal(
                    422, "handler_unserved", message, handler=spec.handler, queue=spec.queue
                )
        return [message]  # logged once the write is on the log (see log_warnings)

    def log_warnings(task_id: str, warnings: Sequence[str]) -> None:
        logged = fields(task_id=task_id, action="unserved_handler")
        for message in warnings:
            logger.warning("task %s: %s", task_id, message, extra=logged)

    def live_task(task_id: str) -> TaskRow:
        if not _is_uuid(task_id):
            raise _Refusal(
                404, "not_found", f"no task {task_id!r}: task ids are UUIDs (lower case)"
            )
        row = runtime.store.get(task_id)
        if row is None or row.status == TaskStatus.DELETED.value:
            gone = "was deleted" if row is not None else "does not exist"
            raise _Refusal(404, "not_found", f"task {task_id!r} {gone}")
        return row

    def writable() -> None:
        """503 at once while the broker is unreachable: nothing is queued for it."""
        down = runtime.broker.unreachable()
        if down is not None:
            raise _Refusal(
                503,
                "kafka_unavailable",
                f"Kafka is {down}; nothing was written: retry once /health answers 200",
            )

    async def publish(event: Event) -> TaskRow | None:
        """Append ``event``; return the task once the store shows the event (or None)."""
        sized(event)
        writable()
        try:
            position = await confirmed(runtime.publisher.publish(event), runtime.publisher.timeout)
        except PublishError as exc:
            raise _Refusal(
                503,
                "kafka_unavailable",
                f"{exc}; the write most likely was not written (read task "
                f"{event.task_id!r} to be sure), retry the request",
                task_id=event.task_id,
            ) from None
        seen = await _settled(
            runtime.projection.applied(position.partition, position.offset),
            settings.read_your_writes_timeout,
        )
        return runtime.store.get(event.task_id) if seen else None

    def sized(event: Event) -> None:
        """413 if the broker would refuse ``event`` for its size."""
        try:
            runtime.event_limit.check(event)
        except EventTooLarge as exc:
            raise _Refusal(
                413, "event_too_large", str(exc), limit_bytes=runtime.event_limit.max_bytes
            ) from None

    async def change(
        task_id: str, data: EventData, kind: str, warnings: Sequence[str] = ()
    ) -> Response:
        event = Event.create(task_id, data)
        row = await publish(event)
        log_warnings(task_id, warnings)
        if row is None:
            accepted = {"id": task_id, "status": "accepted", "event_id": event.id}
            return _warned(
                JSONResponse(accepted | _warnings_field(warnings), status_code=202), warnings
            )
        if row.last_change_event_id != event.id:
            raise _Refusal(
                409,
                "conflict",
                f"task {task_id!r} was changed concurrently (now version "
                f"{row.version}); read it again and retry",
                current_version=row.version,
            )
        CHANGES.labels(kind).inc()
        return _task_body(row, warnings=warnings)

    def versioned(task_id: str, given: int | None, if_match: str | None) -> tuple[TaskRow, int]:
        """The live task and the version a change to it expects (409 if stale)."""
        row = live_task(task_id)
        return row, expected(row, given or _if_match(if_match))

    def expected(row: TaskRow, given: int | None) -> int:
        if given is not None and given != row.version:
            raise _Refusal(
                409,
                "version_conflict",
                f"task {row.id!r} is at version {row.version}, not {given}; "
                "read it again and retry",
                current_version=row.version,
            )
        return row.version

    # -- tasks --------------------------------------------------------------------------

    @app.post(
        "/api/tasks",
        status_code=201,
        summary="Create a task",
        responses=error_responses(
            400, 401, 413, 422, 503, also=answers((201, Task, "the task"), ACCEPTED)
        ),
    )
    async def create_task(body: CreateTaskRequest) -> Response:
        spec = check_spec(_validated(lambda: body.to_spec(body.handler)))
        task_id = str(uuid.uuid4())
        warnings = served(spec, task_id)
        event = Event.create(task_id, TaskCreated(task=spec))
        row = await publish(event)
        log_warnings(task_id, warnings)
        SUBMISSIONS.inc()
        if row is None:
            accepted = {"id": task_id, "status": "accepted"} | _warnings_field(warnings)
            return _warned(
                JSONResponse(
                    accepted, status_code=202, headers={"Location": f"/api/tasks/{task_id}"}
                ),
                warnings,
            )
        return _task_body(row, 201, warnings)

    @app.post(
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
            raise _invalid_field(
                "body", "send a JSON list of task bodies, as POST /api/tasks takes", "list_type"
            )
        if not 1 <= len(items) <= MAX_BATCH:
            raise _invalid_field(
                "body", f"a batch holds 1 to {MAX_BATCH} tasks, got {len(items)}", "batch_size"
            )
        prepared = await asyncio.to_thread(lambda: [prepare(item) for item in items])
        return await create_batch(prepared)

    def prepare(item: Any) -> _Refusal | tuple[Event, list[str]]:
        """One batch item: its ``TaskCreated`` and warnings, or why it is refused."""
        try:
            try:
                body = CreateTaskRequest.model_validate(item)
            except ValidationError as exc:
                raise _invalid(_field_errors(list(exc.errors()))) from None
            spec = check_spec(_validated(lambda: body.to_spec(body.handler)))
            task_id = str(uuid.uuid4())
            warnings = served(spec, task_id)
            event = Event.create(task_id, TaskCreated(task=spec))
            sized(event)
        except _Refusal as refusal:
            return refusal
        return event, warnings

    async def create_batch(prepared: list[_Refusal | tuple[Event, list[str]]]) -> Response:
        results: list[dict[str, Any]] = [{"index": n} for n in range(len(prepared))]
        pending: dict[int, tuple[Event, list[str], Future[RecordPosition]]] = {}
        down = runtime.broker.unreachable()
        for index, item in enumerate(prepared):
            if isinstance(item, _Refusal):
                results[index].update(status=item.status, **item.body)
                continue
            event, warnings = item
            if down is not None:
                unavailable = _Refusal(503, "kafka_unavailable", f"Kafka is {down}; retry the task")
                results[index].update(status=503, **unavailable.body)
                continue
            try:
                pending[index] = (event, warnings, runtime.publisher.publish(event))
            except (BufferError, KafkaException) as exc:
                unavailable = _Refusal(503, "kafka_unavailable", f"{exc}; retry the task")
                results[index].update(status=503, **unavailable.body)
        delivered = await asyncio.gather(
            *(confirmed(future, runtime.publisher.timeout) for _, _, future in pending.values()),
            return_exceptions=True,
        )
        written: dict[int, tuple[Event, list[str]]] = {}
        ends: dict[int, int] = {}
        for (index, (event, warnings, _)), position in zip(pending.items(), delivered, strict=True):
            if isinstance(position, BaseException):
                unavailable = _Refusal(503, "kafka_unavailable", f"{position}; retry the task")
                results[index].update(status=503, **unavailable.body)
                continue
            written[index] = (event, warnings)
            ends[position.partition] = max(ends.get(position.partition, -1), position.offset)
        seen = await _settled_all(
            [runtime.projection.applied(p, offset) for p, offset in ends.items()],
            settings.read_your_writes_timeout,
        )
        for index, (event, warnings) in written.items():
            log_warnings(event.task_id, warnings)
            results[index].update(
                status=201 if seen else 202,
                id=event.task_id,
                location=f"/api/tasks/{event.task_id}",
                **_warnings_field(warnings),
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

    @app.get(
        "/api/tasks/{task_id}",
        summary="Get a task",
        responses=error_responses(401, 404, also=answers((200, Task, "the task"))),
    )
    def get_task(task_id: str = Path(json_schema_extra=_UUID)) -> Response:
        return _task_body(live_task(task_id))

    @app.get(
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
        rows, total = runtime.store.list_tasks(
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

    @app.put(
        "/api/tasks/{task_id}",
        summary="Replace a task's definition",
        responses=error_responses(
            *_WRITE_ERRORS, also=answers((200, Task, "the task, changed"), ACCEPTED)
        ),
    )
    async def replace_task(
        body: ReplaceTaskRequest,
        task_id: str = Path(json_schema_extra=_UUID),
        if_match: str | None = Header(None),
    ) -> Response:
        row, version = versioned(task_id, body.expected_version, if_match)
        current = _stored_spec(row)
        spec = check_spec(_validated(lambda: body.to_spec(body.handler)), current)
        warnings = served(spec, task_id, introduced=_moves(row, spec))
        updated = TaskUpdated(task=spec, expected_version=version)
        return await change(task_id, updated, "update", warnings)

    @app.patch(
        "/api/tasks/{task_id}",
        summary="Change some fields of a task",
        responses=error_responses(
            *_WRITE_ERRORS, also=answers((200, Task, "the task, changed"), ACCEPTED)
        ),
    )
    async def patch_task(
        body: PatchTaskRequest,
        task_id: str = Path(json_schema_extra=_UUID),
        if_match: str | None = Header(None),
    ) -> Response:
        row, version = versioned(task_id, body.expected_version, if_match)
        current = _stored_spec(row)
        merged = _validated(lambda: TaskSpec.model_validate(body.merged(current)))
        spec = check_spec(merged, current)
        warnings = served(spec, task_id, introduced=_moves(row, spec))
        updated = TaskUpdated(task=spec, expected_version=version)
        return await change(task_id, updated, "update", warnings)

    @app.put(
        "/api/tasks/{task_id}/status",
        summary="Pause or resume a task",
        responses=error_responses(
            *_WRITE_ERRORS, also=answers((200, Task, "the task, changed"), ACCEPTED)
        ),
    )
    async def set_status(
        body: StatusRequest,
        task_id: str = Path(json_schema_extra=_UUID),
        if_match: str | None = Header(None),
    ) -> Response:
        row, version = versioned(task_id, body.expected_version, if_match)
        if row.status == body.status:
            return _task_body(row)
        if body.status == "paused":
            if row.status != TaskStatus.ACTIVE.value:
                raise _Refusal(409, "invalid_state", f"cannot pause a {row.status} task")
            return await change(task_id, TaskPaused(expected_version=version), "pause")
        if row.status not in (TaskStatus.PAUSED.value, TaskStatus.QUARANTINED.value):
            raise _Refusal(409, "invalid_state", f"cannot resume a {row.status} task")
        return await change(task_id, TaskResumed(expected_version=version), "resume")

    @app.delete(
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
        task_id: str = Path(json_schema_extra=_UUID), if_match: str | None = Header(None)
    ) -> Response:
        row = live_task(task_id)
        version = expected(row, _if_match(if_match))
        response = await change(task_id, TaskDeleted(expected_version=version), "delete")
        return Response(status_code=204) if response.status_code == 200 else response

    @app.post(
        "/api/tasks/{task_id}/run",
        status_code=202,
        summary="Run a task now",
        responses=error_responses(
            401, 404, 503, also=answers((202, RunAccepted, "requested; its execution id"))
        ),
    )
    async def run_now(task_id: str = Path(json_schema_extra=_UUID)) -> Response:
        live_task(task_id)
        event = Event.create(task_id, RunRequested())
        await publish(event)
        CHANGES.labels("run").inc()
        return JSONResponse(
            {
                "task_id": task_id,
                "execution_id": execution_id(task_id, event.occurred_at, 1),
                "requested_at": event.occurred_at.isoformat(),
            },
            status_code=202,
        )

    @app.post(
        "/api/tasks/{task_id}/cancel",
        status_code=202,
        summary="Cancel a task's unfinished executions (or one of them)",
        responses=error_responses(
            401, 404, 422, 503, also=answers((202, CancelAccepted, "the request is on the log"))
        ),
    )
    async def cancel(
        task_id: str = Path(json_schema_extra=_UUID),
        execution_uuid: Annotated[uuid.UUID | None, Query(alias="execution_id")] = None,
    ) -> Response:
        live_task(task_id)
        execution = None if execution_uuid is None else str(execution_uuid)
        await publish(Event.create(task_id, CancelRequested(execution_id=execution)))
        CHANGES.labels("cancel").inc()
        return JSONResponse({"task_id": task_id, "execution_id": execution}, status_code=202)

    # -- executions ---------------------------------------------------------------------

    @app.get(
        "/api/executions/{execution_id}/logs",
        summary="What an execution's handler logged and printed",
        response_model=None,
        responses=error_responses(
            401,
            404,
            422,
            also={
                200: {
                    "model": ExecutionLogs,
                    "description": "every run of the execution kept, oldest first",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        ),
    )
    def execution_logs(
        execution_id: str = Path(json_schema_extra=_UUID),
        output: str = Query("json", alias="format", pattern="^(json|text)$"),
    ) -> Response:
        log = runtime.logs.store.get(execution_id) if _is_uuid(execution_id) else None
        if log is None:
            raise _Refusal(
                404,
                "not_found",
                f"no logs of execution {execution_id!r}: it has not run yet, it logged "
                "nothing yet (lines arrive every few seconds), or they are older than "
                f"the retention of {settings.execution_log_retention}",
            )
        if output == "text":
            return PlainTextResponse(log.as_text())
        return JSONResponse(log.as_dict())

    # -- executors ----------------------------------------------------------------------

    @app.get(
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

    # -- operations ---------------------------------------------------------------------

    def identity() -> dict[str, Any]:
        return {
            "instance": settings.instance_id,
            "owned_partitions": sorted(runtime.scheduler.owned_partitions),
        }

    @app.get(
        "/health",
        summary="Liveness: 503 names each failed or unavailable component (kafka, threads)",
        responses=answers((200, Health, "live"), (503, Health, "not live: error, message")),
    )
    def health() -> Response:
        status, body = health_answer(runtime.board.snapshot(), **identity())
        return JSONResponse(body, status_code=status)

    @app.get(
        "/ready",
        summary="Readiness: 200 only when every component is ok",
        responses=answers((200, Health, "ready"), (503, Health, "not ready: error, message")),
    )
    def ready() -> Response:
        status, body = ready_answer(runtime.board.snapshot(), **identity())
        return JSONResponse(body, status_code=status)

    @app.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    tokens = load_tokens(settings.api_tokens, settings.api_tokens_file, SETTINGS_PREFIX)
    app.add_middleware(TokenAuth, tokens=tokens)
    app.add_middleware(BodySizeLimit, limit=settings.api_max_body_bytes)
    return app


def _stored_spec(row: TaskRow) -> TaskSpec:
    """The task's spec as the store holds it (read as recorded: see
    :mod:`taskstream.schemas.recorded`)."""
    with recorded():
        return TaskSpec.model_validate(row.spec)


def _warnings_field(warnings: Sequence[str]) -> dict[str, Any]:
    return {"warnings": list(warnings)} if warnings else {}


def _moves(row: TaskRow, spec: TaskSpec) -> bool:
    """True if ``spec`` runs the task with another handler or on another queue."""
    return (row.handler, row.queue) != (spec.handler, spec.queue)


async def _settled_all(futures: Sequence[Future[bool]], timeout: float) -> bool:
    """True if every future turned True within ``timeout`` seconds (the rest are cancelled)."""
    if not futures:
        return True
    waiting = [asyncio.wrap_future(future) for future in futures]
    try:
        return all(await asyncio.wait_for(asyncio.gather(*waiting), timeout))
    except TimeoutError:
        return False


async def _settled(future: Future[bool], timeout: float) -> bool:
    """The future's result, or False once ``timeout`` seconds have passed (it is cancelled)."""
    try:
        return await asyncio.wait_for(asyncio.wrap_future(future), timeout)
    except TimeoutError:
        return False


def _validated(build: Callable[[], TaskSpec]) -> TaskSpec:
    try:
        spec: TaskSpec = build()
    except ValidationError as exc:
        raise _invalid(_field_errors(list(exc.errors()))) from None
    return spec
