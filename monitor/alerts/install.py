"""``install_alerts``: the alerts and the executors' view, added to the monitor's faust app.

It adds, beside whatever else the app does:

- a subscriber to the monitor's ``task-events`` batches (:class:`TaskEventsFeed`: the
  events are read and decoded once, by the projection's agent) folding what the rules
  need into the table ``alert-task-facts`` (task id -> :class:`TaskFacts`, idempotent by
  event id; each task written once per batch), and evaluating the task rules for every
  change of a task's facts, in order;
- the ``workers`` agent and ``GET /api/workers`` (:mod:`taskstream.monitor.workers`), evaluating
  ``executor_lost`` on every heartbeat and tombstone;
- a timer (``TASKSTREAM_MONITOR_ALERT_CHECK_INTERVAL``, on the leader) that evaluates
  every rule for every subject: long runs, missed schedules, lost executors, windows;
- a background task that sends the notices (:class:`Dispatcher`);
- the alerts API (:mod:`taskstream.monitor.alerts.web`) and three metrics on the monitor's registry;
- the quarantined tasks (:class:`QuarantinedTasks`, ``book.quarantined``), for the
  dashboard, and their gauge.

Nothing is evaluated before faust has restored the tables, so a restart does not fire
again what had fired. The monitor runs as one worker: the tables the timer and the API
write have one partition.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

import faust
from prometheus_client import CollectorRegistry, Counter, Gauge

from taskstream.infra.broker_health import BrokerHealth
from taskstream.monitor.alerts.book import AlertBook
from taskstream.monitor.alerts.channels import Dispatcher
from taskstream.monitor.alerts.config import build_channels, load_rules_file, unconfigured
from taskstream.monitor.alerts.quarantine import QuarantinedTasks
from taskstream.monitor.alerts.web import install_views
from taskstream.monitor.confirmed_table import confirmed_table
from taskstream.monitor.projection import TaskEventsFeed
from taskstream.monitor.settings import MonitorSettings
from taskstream.monitor.workers import install_workers
from taskstream.schemas import Event, WorkerHeartbeat

__all__ = ["install_alerts"]

logger = logging.getLogger(__name__)


def install_alerts(
    app: faust.App,
    settings: MonitorSettings,
    registry: CollectorRegistry,
    task_events: TaskEventsFeed,
    broker: BrokerHealth | None = None,
) -> AlertBook:
    """Add alerts and ``GET /api/workers`` to ``app``; raise ``RuleError`` for a bad rules file.

    ``broker``: rule writes are refused (503 ``kafka_unavailable``) while it is unreachable."""
    file_rules = (
        load_rules_file(settings.monitor_alert_rules_file)
        if settings.monitor_alert_rules_file
        else []
    )
    fired = Counter(
        "taskstream_monitor_alerts_fired",
        "firing alert notices delivered, by rule and channel",
        ["rule", "channel"],
        registry=registry,
    )
    failed = Counter(
        "taskstream_monitor_alert_notifications_failed",
        "alert notices a channel could not deliver after its retries",
        ["channel"],
        registry=registry,
    )
    active = Gauge("taskstream_monitor_alerts_active", "alerts firing now", registry=registry)
    alerts_topic = app.topic(
        settings.topics.alerts,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=1,
    )

    async def publish(key: bytes, value: bytes) -> None:
        delivery = await alerts_topic.send(key=key, value=value)
        await delivery

    channels = build_channels(settings, publish)
    for warning in unconfigured(file_rules, channels):
        logger.warning("%s", warning)
    dispatcher = Dispatcher(channels, fired=fired, failed=failed)

    def ready() -> bool:
        recovery = cast(Any, app.tables).recovery
        return bool(recovery.completed.is_set() and not app.rebalancing and not app.in_recovery)

    async def heartbeat_seen(executor_id: str, heartbeat: WorkerHeartbeat | None) -> None:
        if ready():
            book.on_executor(executor_id, datetime.now(UTC))

    workers = install_workers(app, settings, on_change=heartbeat_seen)
    partitions = settings.task_events_partitions
    facts_table = confirmed_table(app, "alert-task-facts", batched=True, partitions=partitions)
    rules_table = confirmed_table(app, "alert-rules", partitions=1, use_partitioner=True)
    quarantined = QuarantinedTasks(facts_table, registry)
    facts_table.on_recover(quarantined.rebuild)  # restored facts come without a batch
    book = AlertBook(
        file_rules=file_rules,
        rules_table=rules_table,
        states_table=app.Table("alert-state", partitions=1, use_partitioner=True),
        recent_table=app.Table("alert-recent", partitions=1, use_partitioner=True),
        facts_table=facts_table,
        workers=workers,
        dispatcher=dispatcher,
        active=active,
        recent_size=settings.monitor_alert_recent_size,
        faults=task_events.faults,
        quarantined=quarantined,
    )

    def fold_facts(events: Sequence[Event], partition: int, now: datetime) -> None:
        book.fold_events(events, now, evaluate=ready())

    task_events.subscribe(fold_facts, facts_table)  # its records go with the batch's

    @app.timer(  # type: ignore[untyped-decorator]
        interval=settings.monitor_alert_check_interval.total_seconds(),
        on_leader=True,
        name=f"{settings.app_id}.alert-check",
    )
    async def check_alerts() -> None:
        if ready():
            book.check(datetime.now(UTC))

    @app.task  # type: ignore[untyped-decorator]
    async def send_notices() -> None:
        await dispatcher.run()

    install_views(
        app,
        book,
        ready,
        str(settings.monitor_alert_rules_file or "(none)"),
        rules_table=rules_table,
        broker=broker,
        write_timeout=settings.kafka_write_timeout.total_seconds(),
    )
    return book
