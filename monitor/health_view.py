"""What the dashboard shows of faults: the services' health and the quarantined tasks.

- ``GET /api/monitor/health``: always 200 (it reports, it is not a probe; ``/health`` is
  the probe): the monitor's own components and the ``/health`` of the core
  (``TASKSTREAM_MONITOR_CORE_URL``) and of each executor
  (``TASKSTREAM_MONITOR_EXECUTOR_URLS``), each asked within
  ``TASKSTREAM_MONITOR_PEER_HEALTH_TIMEOUT``; see
  :func:`taskstream.monitor.peer_health.health_report`.
- ``GET /api/monitor/quarantined?limit=``: the tasks a component quarantined, the most
  recent first, with the reason and how to lift it; 503 ``recovering`` (or ``starting``)
  while the tables are restored, as the other data pages.

Both are behind the monitor's tokens like the rest of ``/api/``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import faust
from faust.web import Request, Response, View

from taskstream.infra.health import HealthBoard
from taskstream.monitor.alerts.quarantine import QuarantinedTasks
from taskstream.monitor.contract import IntQuery, Operation, json_answer
from taskstream.monitor.peer_health import Peer, ask_peers, health_report
from taskstream.monitor.readiness import TablesReadiness, refuse_until_serving
from taskstream.monitor.settings import MonitorSettings

__all__ = ["MAX_QUARANTINED_LIMIT", "OPERATIONS", "install_health_view", "peers"]

MAX_QUARANTINED_LIMIT = 1000
_TAG = ("monitor",)
LIMIT = IntQuery(
    name="limit", default=100, low=1, high=MAX_QUARANTINED_LIMIT, description="most items"
)
_STATE = {"type": "string"}
SERVICES_HEALTH = Operation(
    method="get",
    path="/api/monitor/health",
    operation_id="getServicesHealth",
    summary="The health of the monitor, the core and every executor (always 200: a report)",
    responses={
        200: json_answer(
            "each service with its components; problems and waiting ones listed",
            {
                "type": "object",
                "required": ["generated_at", "state", "services", "problems", "waiting"],
                "properties": {
                    "generated_at": {"type": "string"},
                    "state": _STATE,
                    "services": {"type": "array", "items": {"type": "object"}},
                    "problems": {"type": "array", "items": {"type": "object"}},
                    "waiting": {"type": "array", "items": {"type": "object"}},
                },
            },
        )
    },
    tags=_TAG,
)
QUARANTINED = Operation(
    method="get",
    path="/api/monitor/quarantined",
    operation_id="getQuarantinedTasks",
    summary="Tasks a component quarantined, the most recent first, with how to lift it",
    parameters=(LIMIT,),
    responses={
        200: json_answer(
            "the quarantined tasks",
            {
                "type": "object",
                "required": ["total", "items"],
                "properties": {
                    "total": {"type": "integer"},
                    "items": {"type": "array", "items": {"type": "object"}},
                },
            },
        )
    },
    errors=(422, 503),
    tags=_TAG,
)
OPERATIONS = (SERVICES_HEALTH, QUARANTINED)


def peers(settings: MonitorSettings) -> list[Peer]:
    """The services whose ``/health`` the monitor asks, from its settings."""
    core = [Peer("core", settings.monitor_core_url)] if settings.monitor_core_url else []
    return core + [Peer("executor", url) for url in settings.monitor_executor_urls]


def install_health_view(
    app: faust.App,
    settings: MonitorSettings,
    board: HealthBoard,
    readiness: TablesReadiness,
    quarantined: QuarantinedTasks | None,
) -> None:
    """Register ``/api/monitor/health`` and ``/api/monitor/quarantined`` on ``app``."""
    others = peers(settings)
    timeout = settings.monitor_peer_health_timeout.total_seconds()

    @app.page(SERVICES_HEALTH.path)
    async def services_health(self: View, request: Request) -> Response:
        answers = await ask_peers(others, timeout)
        return self.json(health_report(board.snapshot(), answers, datetime.now(UTC)))

    @app.page(QUARANTINED.path)
    async def quarantined_tasks(self: View, request: Request) -> Response:
        limit = LIMIT.read(request)
        refuse_until_serving(readiness)
        total = 0 if quarantined is None else len(quarantined)
        items = [] if quarantined is None else quarantined.items(limit)
        return self.json({"total": total, "items": items})
