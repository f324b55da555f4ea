"""What the dashboard shows of faults: the services' health and the quarantined tasks.

- ``GET /api/monitor/health``: always 200 (it reports, it is not a probe; ``/health`` is
  the probe): the monitor's own components and the ``/health`` of the core
  (``TASKSTREAM_MONITOR_CORE_URL``) and of each executor
  (``TASKSTREAM_MONITOR_EXECUTOR_URLS``), each asked within
  ``TASKSTREAM_MONITOR_PEER_HEALTH_TIMEOUT``; see :func:`monitor.peer_health.health_report`.
- ``GET /api/monitor/quarantined?limit=``: the tasks a component quarantined, the most
  recent first, with the reason and how to lift it; 503 ``recovering`` (or ``starting``)
  while the tables are restored, as the other data pages.

Both are behind the monitor's tokens like the rest of ``/api/``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import faust
from faust.web import Request, Response, View

from monitor.alerts.quarantine import QuarantinedTasks
from monitor.peer_health import Peer, ask_peers, health_report
from monitor.readiness import TablesReadiness
from monitor.settings import MonitorSettings
from taskstream.infra.health import HealthBoard

__all__ = ["MAX_QUARANTINED_LIMIT", "install_health_view", "peers"]

MAX_QUARANTINED_LIMIT = 1000


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

    @app.page("/api/monitor/health")
    async def services_health(self: View, request: Request) -> Response:
        answers = await ask_peers(others, timeout)
        return self.json(health_report(board.snapshot(), answers, datetime.now(UTC)))

    @app.page("/api/monitor/quarantined")
    async def quarantined_tasks(self: View, request: Request) -> Response:
        if not readiness.serving:
            status = readiness.health()
            return self.json(
                {
                    "error": status.state.value,
                    "message": f"the monitor is {status.state.value} ({status.reason}); "
                    "its data is incomplete until it is ready: retry in a few seconds "
                    "(GET /ready says when)",
                },
                status=503,
            )
        text = request.query.get("limit", "100")
        limit = int(text) if text.isdigit() else 0
        if not 1 <= limit <= MAX_QUARANTINED_LIMIT:
            return self.json(
                {
                    "error": "invalid_limit",
                    "message": f"limit must be an integer between 1 and {MAX_QUARANTINED_LIMIT}",
                },
                status=400,
            )
        total = 0 if quarantined is None else len(quarantined)
        items = [] if quarantined is None else quarantined.items(limit)
        return self.json({"total": total, "items": items})
