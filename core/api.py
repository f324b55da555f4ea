"""The REST API: tasks (create, change, read, run now, cancel), execution logs, workers,
handlers, health, metrics; one router per resource in :mod:`taskstream.core.routes`.

Every write validates, appends one event to ``task-events`` and waits (bounded) until
the store shows it, so a GET right after a successful write sees the write
(:mod:`taskstream.core.task_writes`). Changes are conditional on the task's version (the
client's ``expected_version`` / ``If-Match``, or the version the API read): a stale one
gets 409, and a change that loses a race to a concurrent one is rejected by every
consumer of the log alike, and answered 409. A rejected request gets a JSON body naming
each bad field (:mod:`taskstream.core.refusals`).

``POST /api/tasks/batch`` creates up to :data:`MAX_BATCH` tasks in one request: each item
is validated on its own (a refused item does not stop the others), the accepted ones are
produced together and waited for as one, and the answer lists each item's id or error.

A create or change whose handler no live executor serves on the task's queue is answered
per ``TASKSTREAM_UNSERVED_HANDLER``: written with a ``warnings`` list and a ``Warning``
header (``warn``), refused with 422 ``handler_unserved`` (``reject``), or not checked.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline

from taskstream.core.http_errors import StrictJsonRoute, install_error_handlers
from taskstream.core.openapi import install_openapi
from taskstream.core.refusals import Refusal, field_errors, invalid
from taskstream.core.routes.backfills import backfills_router
from taskstream.core.routes.batch import batch_router
from taskstream.core.routes.executions import executions_router
from taskstream.core.routes.handlers import handlers_router
from taskstream.core.routes.operations import operations_router
from taskstream.core.routes.schedules import schedules_router
from taskstream.core.routes.tasks import tasks_router
from taskstream.core.routes.workers import workers_router
from taskstream.core.runtime import CoreRuntime
from taskstream.core.security import SETTINGS_PREFIX, BodySizeLimit, TokenAuth, load_tokens
from taskstream.core.task_writes import TaskWrites
from taskstream.schemas.api import MAX_BATCH

__all__ = ["MAX_BATCH", "CoreRuntime", "create_api"]


def create_api(runtime: CoreRuntime) -> FastAPI:
    """The core's API over ``runtime``: its routers, its one error shape, its tokens."""
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
        errors = field_errors(list(exc.errors()))
        if any(error["type"] == "json_invalid" for error in errors):
            return Refusal(
                400,
                "malformed_json",
                "the request body is not valid JSON: send a JSON object",
                errors=errors,
            ).response
        return invalid(errors).response

    @app.exception_handler(Refusal)
    async def refused(request: Request, exc: Refusal) -> JSONResponse:
        return exc.response

    writes = TaskWrites(runtime)
    for router in (
        batch_router(writes),
        tasks_router(writes),
        schedules_router(writes),
        backfills_router(writes),
        executions_router(runtime),
        workers_router(runtime),
        handlers_router(runtime),
        operations_router(runtime),
    ):
        app.include_router(router)

    tokens = load_tokens(settings.api_tokens, settings.api_tokens_file, SETTINGS_PREFIX)
    app.add_middleware(TokenAuth, tokens=tokens)
    app.add_middleware(BodySizeLimit, limit=settings.api_max_body_bytes)
    return app
