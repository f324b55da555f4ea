"""The monitor's JSON API (faust web pages). Errors are ``{"error", "message"}`` with a 4xx.

The shapes are documented in the README ("Monitor API") and are a contract: the
dashboard reads them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import faust
from faust.web import Request, Response, View

from monitor.lag import ConsumerLag
from monitor.readiness import TablesReadiness
from monitor.records import TERMINAL_STATUSES
from monitor.settings import MonitorSettings
from monitor.stats import COUNTED, LIVE, public_task_stats
from monitor.tables import MonitorTables
from taskstream.infra.health import HealthBoard, health_answer, ready_answer

__all__ = ["MAX_MINUTES", "MAX_RECENT_LIMIT", "install_api"]

MAX_MINUTES = 1440
MAX_RECENT_LIMIT = 500


class _BadParameter(ValueError):
    pass


def _int_parameter(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query.get(name)
    try:
        value = default if text is None else int(text)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise _BadParameter(f"{name} must be an integer between {low} and {high}")
    return value


def _error(view: View, status: int, error: str, message: str) -> Response:
    return view.json({"error": error, "message": message}, status=status)


def install_api(
    app: faust.App,
    settings: MonitorSettings,
    tables: MonitorTables,
    lag: ConsumerLag,
    board: HealthBoard,
    readiness: TablesReadiness,
) -> None:
    """Register the pages of the API, ``/health`` and ``/ready`` on ``app``.

    While the tables are restored (see :mod:`monitor.readiness`) the data pages answer
    503 ``recovering`` instead of the zeros the empty tables hold.
    """

    def recovering(view: View) -> Response | None:
        if readiness.serving:
            return None
        status = readiness.health()
        body = {
            "error": status.state.value,
            "message": f"the monitor is {status.state.value} ({status.reason}); its data is "
            "incomplete until it is ready: retry in a few seconds (GET /ready says when)",
        }
        return view.json(body, status=503)

    @app.page("/api/monitor/tasks/{task_id}/executions")
    async def task_executions(self: View, request: Request, task_id: str) -> Response:
        if (refusal := recovering(self)) is not None:
            return refusal
        try:
            page = int(request.query.get("page", 0))
            size = int(request.query.get("size", 20))
            if page < 0 or not 1 <= size <= 1000:
                raise ValueError
        except ValueError:
            return _error(
                self, 400, "invalid_paging", "page must be >= 0 and size between 1 and 1000"
            )
        ids = tables.task_executions(task_id)
        items = tables.public_executions(ids[page * size : (page + 1) * size])
        return self.json(
            {"task_id": task_id, "items": items, "page": page, "size": size, "total": len(ids)}
        )

    @app.page("/api/monitor/tasks/{task_id}/stats")
    async def task_stats(self: View, request: Request, task_id: str) -> Response:
        if (refusal := recovering(self)) is not None:
            return refusal
        stats = tables.stats.get(task_id)
        if stats is None:
            return _error(
                self, 404, "unknown_task", f"the monitor has seen no execution of task {task_id}"
            )
        return self.json(public_task_stats(stats))

    @app.page("/api/monitor/executions")
    async def recent_executions(self: View, request: Request) -> Response:
        if (refusal := recovering(self)) is not None:
            return refusal
        status = request.query.get("status") or None
        try:
            limit = _int_parameter(request, "limit", 50, 1, MAX_RECENT_LIMIT)
        except _BadParameter as exc:
            return _error(self, 400, "invalid_limit", str(exc))
        if status is not None and status not in TERMINAL_STATUSES:
            known = ", ".join(sorted(TERMINAL_STATUSES))
            return _error(self, 400, "invalid_status", f"status must be one of {known}")
        return self.json({"items": tables.recent_executions(status, limit)})

    @app.page("/api/monitor/metrics")
    async def metrics(self: View, request: Request) -> Response:
        if (refusal := recovering(self)) is not None:
            return refusal
        try:
            minutes = _int_parameter(request, "minutes", 60, 1, MAX_MINUTES)
        except _BadParameter as exc:
            return _error(self, 400, "invalid_minutes", str(exc))
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

    @app.page("/health")
    async def health(self: View, request: Request) -> Response:
        status, body = health_answer(board.snapshot(), app_id=settings.app_id)
        return self.json(body, status=status)

    @app.page("/ready")
    async def ready(self: View, request: Request) -> Response:
        status, body = ready_answer(board.snapshot(), app_id=settings.app_id)
        return self.json(body, status=status)
