"""``/api/handlers``: the handlers installed where the core runs, with their params' schema.

What a task may name in ``handler``, the JSON Schema its ``params`` are checked against
at POST (for a handler with a params model), and where a live executor serves it now.
"""

from __future__ import annotations

import inspect
from typing import Any

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse, Response

from taskstream.core.http_errors import error_responses
from taskstream.core.openapi import answers
from taskstream.core.refusals import Refusal
from taskstream.core.routes.common import api_router
from taskstream.core.runtime import CoreRuntime
from taskstream.handlers import TaskHandler, UnknownHandlerError
from taskstream.handlers.registry import class_path
from taskstream.schemas.api import HandlerInfo, HandlerList
from taskstream.schemas.workers import WorkerHeartbeat

__all__ = ["handlers_router"]


def handlers_router(runtime: CoreRuntime) -> APIRouter:
    router = api_router()
    registry = runtime.registry

    @router.get(
        "/api/handlers",
        summary="The handlers a task may name, their params' JSON Schema, who serves them",
        responses=error_responses(401, also=answers((200, HandlerList, "every handler"))),
    )
    def list_handlers() -> Response:
        live = runtime.workers.live()
        items = [_info(name, cls, live) for name, cls in registry.by_name().items()]
        return JSONResponse({"items": items, "workers_ready": runtime.workers.ready})

    @router.get(
        "/api/handlers/{name}",
        summary="One handler, by name or class path",
        responses=error_responses(401, 404, also=answers((200, HandlerInfo, "the handler"))),
    )
    def get_handler(name: str = Path(max_length=300)) -> Response:
        try:
            cls = registry.resolve(name)
        except UnknownHandlerError as exc:
            raise Refusal(404, "not_found", str(exc)) from None
        canonical = registry.canonical_name(name)
        return JSONResponse(_info(canonical, cls, runtime.workers.live()))

    return router


def _info(name: str, cls: type[TaskHandler[Any]], live: list[WorkerHeartbeat]) -> dict[str, Any]:
    model = cls.params_model
    doc = inspect.getdoc(cls) or ""
    queues = sorted({queue for beat in live if name in beat.handlers for queue in beat.queues})
    return HandlerInfo(
        name=name,
        class_path=class_path(cls),
        description=doc.split("\n", 1)[0],
        params_schema=model.model_json_schema(by_alias=True) if model is not None else None,
        queues=queues,
    ).model_dump(mode="json")
