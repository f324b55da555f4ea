"""``/api/executions/{id}/logs``: what an execution's handler logged and printed."""

from __future__ import annotations

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from taskstream.core.http_errors import error_responses
from taskstream.core.refusals import Refusal, is_uuid
from taskstream.core.routes.common import UUID, api_router
from taskstream.core.runtime import CoreRuntime
from taskstream.schemas.api import ExecutionLogs

__all__ = ["executions_router"]


def executions_router(runtime: CoreRuntime) -> APIRouter:
    router = api_router()

    @router.get(
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
        execution_id: str = Path(json_schema_extra=UUID),
        output: str = Query("json", alias="format", pattern="^(json|text)$"),
    ) -> Response:
        log = runtime.logs.store.get(execution_id) if is_uuid(execution_id) else None
        if log is None:
            raise Refusal(
                404,
                "not_found",
                f"no logs of execution {execution_id!r}: it has not run yet, it logged "
                "nothing yet (lines arrive every few seconds), or they are older than "
                f"the retention of {runtime.settings.execution_log_retention}",
            )
        if output == "text":
            return PlainTextResponse(log.as_text())
        return JSONResponse(log.as_dict())

    return router
