"""The monitor's faust app: tables of executions built from ``task-events``, and its web API.

One agent (concurrency 1, see docs/architecture.md) reads ``task-events`` and keeps two
tables: ``executions`` (execution id -> record) and ``history`` (task id -> the last N
execution ids, newest first). Tables are changelogged in Kafka and rebuilt on restart.
"""

from __future__ import annotations

import logging
from typing import Any

import faust
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest

from monitor.alerts import install_alerts
from monitor.dashboard import install_dashboard
from monitor.records import apply_event, execution_id_of, public_record, push_history
from monitor.settings import MonitorSettings
from schemas import Event, EventDecodeError, decode_event

__all__ = ["create_app"]

logger = logging.getLogger(__name__)


def create_app(settings: MonitorSettings, registry: CollectorRegistry | None = None) -> faust.App:
    """Build the faust app (nothing connects until a worker starts it)."""
    metrics = registry or CollectorRegistry()
    events_seen = Counter(
        "taskstream_monitor_events_total",
        "task-events records read by the monitor",
        ["type"],
        registry=metrics,
    )
    undecodable = Counter(
        "taskstream_monitor_undecodable_total",
        "task-events records the monitor could not decode",
        registry=metrics,
    )
    partitions = settings.task_events_partitions
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{server}" for server in settings.kafka_bootstrap_servers.split(",")],
        store=settings.monitor_store,
        datadir=str(settings.monitor_data_dir),
        web_host=settings.monitor_host,
        web_port=settings.monitor_port,
        web_enabled=True,
        topic_partitions=partitions,
        topic_replication_factor=settings.replication_factor,
        consumer_auto_offset_reset="earliest",
        table_cleanup_interval=30.0,
    )
    source = app.topic(
        settings.topics.task_events,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
    )
    executions = app.Table("executions", partitions=partitions)
    history = app.Table("history", partitions=partitions)

    @app.agent(source, concurrency=1)
    async def project(stream: Any) -> None:
        async for value in stream:
            try:
                event = decode_event(value)
            except EventDecodeError as exc:
                undecodable.inc()
                logger.error("skipping undecodable task-events record: %s", exc)
                continue
            events_seen.labels(event.type).inc()
            record_execution(event)

    def record_execution(event: Event) -> None:
        execution_id = execution_id_of(event)
        if execution_id is None:
            return
        record = apply_event(executions.get(execution_id), event)
        if record is None:
            return
        executions[execution_id] = record
        updated = push_history(
            history.get(event.task_id), execution_id, settings.monitor_history_size
        )
        if updated is not None:
            history[event.task_id] = updated

    @app.page("/api/monitor/tasks/{task_id}/executions")
    async def task_executions(self: View, request: Request, task_id: str) -> Response:
        try:
            page = int(request.query.get("page", 0))
            size = int(request.query.get("size", 20))
            if page < 0 or not 1 <= size <= 1000:
                raise ValueError
        except ValueError:
            return self.json(
                {
                    "error": "invalid_paging",
                    "message": "page must be >= 0 and size between 1 and 1000",
                },
                status=400,
            )
        ids: list[str] = history.get(task_id) or []
        chosen = [executions.get(eid) for eid in ids[page * size : (page + 1) * size]]
        items = [public_record(record) for record in chosen if record]
        return self.json(
            {"task_id": task_id, "items": items, "page": page, "size": size, "total": len(ids)}
        )

    install_alerts(app, settings, metrics)  # alerts and GET /api/workers: monitor/alerts/

    @app.page("/health")
    async def health(self: View, request: Request) -> Response:
        return self.json({"status": "ok", "service": "monitor", "app_id": settings.app_id})

    @app.page("/metrics")
    async def prometheus(self: View, request: Request) -> Response:
        return self.bytes(generate_latest(metrics), headers={"Content-Type": CONTENT_TYPE_LATEST})

    install_dashboard(app)
    return app
