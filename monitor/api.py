"""The monitor's JSON API (faust web pages), ``/health`` and ``/ready``.

Each page is declared once (an :class:`~taskstream.monitor.contract.Operation` in
:data:`OPERATIONS`): the declaration reads its parameters (422 ``validation_failed``
for a bad one) and is its part of ``/openapi.json``. Errors are the one shape
(:mod:`taskstream.monitor.http_errors`). The shapes are a contract: the dashboard reads them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import faust
from faust.web import Request, Response, View

from taskstream.infra.health import HealthBoard, health_answer, ready_answer
from taskstream.monitor.contract import ChoiceQuery, IntQuery, Operation, PathParam, model_answer
from taskstream.monitor.http_errors import Refusal
from taskstream.monitor.lag import ConsumerLag
from taskstream.monitor.readiness import TablesReadiness, refuse_until_serving
from taskstream.monitor.records import TERMINAL_STATUSES
from taskstream.monitor.settings import MonitorSettings
from taskstream.monitor.stats import COUNTED, LIVE, public_task_stats
from taskstream.monitor.tables import MonitorTables
from taskstream.schemas.api import Health
from taskstream.schemas.monitor_api import MonitorMetrics, RecentExecutions, TaskHistory, TaskStats

__all__ = ["MAX_MINUTES", "MAX_RECENT_LIMIT", "OPERATIONS", "install_api"]

MAX_MINUTES = 1440
MAX_RECENT_LIMIT = 500
MAX_PAGE = 1_000_000_000

_TAG = ("monitor",)
_DATA_ERRORS = (422, 503)
"""Every data page answers 503 (``starting``/``recovering``) until its tables are whole."""

PAGE = IntQuery(name="page", default=0, low=0, high=MAX_PAGE, description="page, from 0")
SIZE = IntQuery(name="size", default=20, low=1, high=1000, description="items per page")
LIMIT = IntQuery(name="limit", default=50, low=1, high=MAX_RECENT_LIMIT, description="most items")
STATUS = ChoiceQuery(
    name="status",
    choices=tuple(sorted(TERMINAL_STATUSES)),
    description="only executions that ended so (default: all)",
)
MINUTES = IntQuery(
    name="minutes",
    default=60,
    low=1,
    high=MAX_MINUTES,
    description="per-minute windows of the last this many minutes",
)
TASK_ID = PathParam(name="task_id", description="a task id")

TASK_EXECUTIONS = Operation(
    method="get",
    path="/api/monitor/tasks/{task_id}/executions",
    operation_id="getTaskExecutions",
    summary="A task's last executions, newest first",
    parameters=(TASK_ID, PAGE, SIZE),
    responses={200: model_answer("a page of the task's history", TaskHistory)},
    errors=_DATA_ERRORS,
    tags=_TAG,
)
TASK_STATS = Operation(
    method="get",
    path="/api/monitor/tasks/{task_id}/stats",
    operation_id="getTaskStats",
    summary="One task's counts, last outcome and durations",
    parameters=(TASK_ID,),
    responses={200: model_answer("the task's statistics", TaskStats)},
    errors=(404, 503),
    tags=_TAG,
)
RECENT_EXECUTIONS = Operation(
    method="get",
    path="/api/monitor/executions",
    operation_id="getRecentExecutions",
    summary="Recent finished executions of all tasks, newest first",
    parameters=(LIMIT, STATUS),
    responses={200: model_answer("the executions", RecentExecutions)},
    errors=_DATA_ERRORS,
    tags=_TAG,
)
METRICS = Operation(
    method="get",
    path="/api/monitor/metrics",
    operation_id="getMonitorMetrics",
    summary="Totals, per-minute windows and the monitor's lag",
    parameters=(MINUTES,),
    responses={
        200: model_answer("the totals and one window per minute, oldest first", MonitorMetrics)
    },
    errors=_DATA_ERRORS,
    tags=_TAG,
)
HEALTH = Operation(
    method="get",
    path="/health",
    operation_id="getHealth",
    summary="Liveness: 503 unhealthy names each failed or unavailable component",
    responses={
        200: model_answer("alive", Health),
        503: model_answer("a component failed or is unavailable", Health),
    },
    open=True,
    tags=("probes",),
)
READY = Operation(
    method="get",
    path="/ready",
    operation_id="getReady",
    summary="Readiness: 503 starting or recovering (wait), unavailable or failed (broken)",
    responses={
        200: model_answer("every component is ok", Health),
        503: model_answer("a component is not ok; error is the worst state", Health),
    },
    open=True,
    tags=("probes",),
)
OPERATIONS = (TASK_EXECUTIONS, TASK_STATS, RECENT_EXECUTIONS, METRICS, HEALTH, READY)


def install_api(
    app: faust.App,
    settings: MonitorSettings,
    tables: MonitorTables,
    lag: ConsumerLag,
    board: HealthBoard,
    readiness: TablesReadiness,
) -> None:
    """Register the pages of the API, ``/health`` and ``/ready`` on ``app``.

    While the tables are restored (see :mod:`taskstream.monitor.readiness`) the data pages answer
    503 ``recovering`` instead of the zeros the empty tables hold.
    """

    def recovering() -> None:
        refuse_until_serving(readiness)

    @app.page(TASK_EXECUTIONS.path)
    async def task_executions(self: View, request: Request, task_id: str) -> Response:
        page, size = PAGE.read(request), SIZE.read(request)
        recovering()
        ids = tables.task_executions(task_id)
        items = tables.public_executions(ids[page * size : (page + 1) * size])
        return self.json(
            {"task_id": task_id, "items": items, "page": page, "size": size, "total": len(ids)}
        )

    @app.page(TASK_STATS.path)
    async def task_stats(self: View, request: Request, task_id: str) -> Response:
        recovering()
        stats = tables.task_stats(task_id)
        if stats is None:
            message = f"the monitor has seen no execution of task {task_id}"
            raise Refusal(404, "unknown_task", message)
        return self.json(public_task_stats(stats))

    @app.page(RECENT_EXECUTIONS.path)
    async def recent_executions(self: View, request: Request) -> Response:
        limit, status = LIMIT.read(request), STATUS.read(request)
        recovering()
        return self.json({"items": tables.recent_executions(status, limit)})

    @app.page(METRICS.path)
    async def metrics(self: View, request: Request) -> Response:
        minutes = MINUTES.read(request)
        recovering()
        now = datetime.now(UTC)
        totals = tables.merged_totals()
        counts: dict[str, Any] = {status: totals["live"][status] for status in LIVE}
        counts.update((name, totals["counts"][name]) for name in COUNTED)
        return self.json(
            {
                "generated_at": now.isoformat(),
                "totals": counts,
                "windows": tables.window_series(now, minutes),
                "lag": {"task_events_records": lag.records},
            }
        )

    @app.page(HEALTH.path)
    async def health(self: View, request: Request) -> Response:
        status, body = health_answer(board.snapshot(), app_id=settings.app_id)
        return self.json(body, status=status)

    @app.page(READY.path)
    async def ready(self: View, request: Request) -> Response:
        status, body = ready_answer(board.snapshot(), app_id=settings.app_id)
        return self.json(body, status=status)
