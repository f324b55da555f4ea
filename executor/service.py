"""Bootstrap of the executor service: settings in, running components out.

::

    QueueConsumer (one per queue) ──► Lanes (high, medium, low) ──► ExecutionPool slots
          ▲  offsets committed after delivery                          │ Executions.process
          └──────────── completions ◄──────────────────────────────────┘   (runner, outcomes,
    CancelListener ──► CancelRegistry ──► running executions                Publisher)
    StartedAnnouncer ──► ExecutionStarted of the runs past a threshold
    HeartbeatSender ──► workers topic
    LogShipper ──► execution-logs topic (what handlers log and print, per run)

Nothing connects to Kafka at import; :func:`bootstrap` wires and starts everything and
returns an :class:`ExecutorService` (tests call it with their own settings and registry).
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, datetime
from typing import Any

from taskstream.executor import capture
from taskstream.executor.cancellations import CancelListener, CancelRegistry
from taskstream.executor.consumer import QueueConsumer
from taskstream.executor.execution import Executions, Received
from taskstream.executor.heartbeat import HeartbeatSender
from taskstream.executor.lanes import Lanes
from taskstream.executor.log_shipping import LogShipper
from taskstream.executor.pool import ExecutionPool
from taskstream.executor.publisher import Publisher
from taskstream.executor.runner import HandlerRunner
from taskstream.executor.settings import ExecutorSettings
from taskstream.handlers import HandlerEnvironment, HandlerRegistry
from taskstream.infra.broker_health import BrokerHealth
from taskstream.infra.health import HealthBoard, HealthSource
from taskstream.infra.kafka import ensure_topics, producer_config, standard_topics
from taskstream.infra.logs import configure_logging
from taskstream.infra.ops_http import OpsServer
from taskstream.infra.shutdown import stop_in_order
from taskstream.infra.thread_health import EXIT_FATAL, Watchdog

__all__ = ["ExecutorService", "bootstrap", "run"]

logger = logging.getLogger(__name__)


class ExecutorService:
    """A running executor: consumers, pool, cancellations, heartbeats and ``/health``."""

    def __init__(self, settings: ExecutorSettings, registry: HandlerRegistry) -> None:
        self.settings = settings
        self.started_at = datetime.now(UTC)
        self.publisher = Publisher(settings)
        self.runner = HandlerRunner(
            registry,
            settings.executor_default_timeout.total_seconds(),
            shell_enabled=settings.executor_shell_enabled,
            environment=HandlerEnvironment(
                kafka_bootstrap_servers=settings.kafka_bootstrap_servers,
                topic_prefix=settings.topic_prefix,
                executor_id=settings.executor_id,
                shell_enabled=settings.executor_shell_enabled,
                kafka_producer_settings={
                    key: value
                    for key, value in producer_config(settings).items()
                    if key != "bootstrap.servers"
                },
            ),
            idle_threads=settings.executor_concurrency,
        )
        self.cancellations = CancelRegistry()
        self.lanes: Lanes[Received] = Lanes()
        self.logs = LogShipper(
            self.publisher,
            settings.topics.execution_logs,
            settings.executor_id,
            max_bytes=settings.executor_log_max_bytes,
            interval=settings.executor_log_flush_interval.total_seconds(),
            stall_after=settings.loop_stall_after,
        )
        self.executions = Executions(
            settings.topics,
            settings.executor_id,
            self.runner,
            self.publisher,
            self.cancellations,
            self.logs,
            started_after=settings.executor_started_event_after.total_seconds(),
            stall_after=settings.loop_stall_after,
        )
        self.announcer = self.executions.announcer
        self.pool = ExecutionPool(
            self.lanes, settings.executor_concurrency, self.executions.process
        )
        self.consumers = [
            QueueConsumer(settings, queue, self.lanes, self.publisher)
            for queue in settings.executor_queues
        ]
        self.cancel_listener = CancelListener(settings, self.cancellations, settings.executor_id)
        self.heartbeat = HeartbeatSender(
            self.publisher,
            settings.topics.workers,
            settings.executor_heartbeat_interval.total_seconds(),
            lambda: {"in_flight": self.pool.busy},
            executor_id=settings.executor_id,
            queues=settings.executor_queues,
            handlers=self.runner.handler_names(),
            capacity=settings.executor_concurrency,
            stall_after=settings.loop_stall_after,
        )
        self.broker = BrokerHealth(settings)
        self.board = HealthBoard("executor", self.health_sources())
        self.ops = OpsServer(
            settings.executor_host, settings.executor_port, self.board, self.details
        )
        self._stopped = False
        self._captured = False

    def start(self) -> None:
        self.ops.start()  # first: /health answers 503 until the consumers run
        self.broker.start()
        capture.install()
        self._captured = True
        self.logs.start()
        self.announcer.start()
        self.cancel_listener.start()
        self.pool.start()
        for consumer in self.consumers:
            consumer.start()
        self.heartbeat.start()

    def health_sources(self) -> list[HealthSource]:
        """Every component ``/health`` and ``/ready`` report, in the order they show."""
        return [
            self.broker,
            self.publisher,
            *self.consumers,
            self.cancel_listener,
            self.heartbeat,
            self.logs,
            self.announcer,
        ]

    @property
    def alive(self) -> bool:
        return self.board.snapshot().live

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Live or not, and the body of ``/health``."""
        snapshot = self.board.snapshot()
        return snapshot.live, snapshot.as_json(**self.details())

    def details(self) -> dict[str, Any]:
        statuses = [c.status() for c in self.consumers]
        commits = [s["last_commit"] for s in statuses if s["last_commit"]]
        return {
            "executor_id": self.settings.executor_id,
            "queues": self.settings.executor_queues,
            "handlers": self.runner.handler_names(),
            "capacity": self.settings.executor_concurrency,
            "in_flight": self.pool.busy,
            "waiting": self.lanes.waiting(),
            "paused_partitions": sum(s.get("paused_partitions", 0) for s in statuses),
            "last_commit": max(commits) if commits else None,
            "last_heartbeat": (
                self.heartbeat.last_sent.isoformat() if self.heartbeat.last_sent else None
            ),
            "consumers": statuses,
        }

    def stop(self) -> None:
        """Finish or drop running work, commit, say goodbye (tombstone), close."""
        if self._stopped:
            return
        self._stopped = True
        grace = self.settings.executor_shutdown_grace.total_seconds()
        for consumer in self.consumers:
            consumer.request_stop()
        for consumer in self.consumers:
            consumer.join(grace + 15)
        stop_in_order(
            [
                ("pool", lambda: self.pool.stop(timeout=1.0)),
                ("started announcer", self.announcer.stop),
                ("cancellation listener", self.cancel_listener.stop),
                ("heartbeat", self.heartbeat.stop),
                ("log shipping", self.logs.stop),
                ("publisher", self.publisher.close),
                ("broker health", self.broker.stop),
                ("handler runner", self.runner.close),
                ("log capture", capture.uninstall if self._captured else lambda: None),
                ("ops listener", self.ops.stop),
            ]
        )
        logger.info("executor %s stopped", self.settings.executor_id)


def bootstrap(
    settings: ExecutorSettings, registry: HandlerRegistry | None = None
) -> ExecutorService:
    """Create the executor's topics if missing, then build and start an executor."""
    ensure_topics(settings, standard_topics(settings, settings.executor_queues))
    service = ExecutorService(settings, registry or HandlerRegistry.from_entry_points())
    try:
        service.start()
    except BaseException:
        service.stop()
        raise
    return service


def run(settings: ExecutorSettings) -> None:
    """Run an executor until SIGINT or SIGTERM."""
    configure_logging("executor", settings.log_level, settings.log_format)
    service = bootstrap(settings)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    logger.info(
        "executor %s serving %s with %d slots; health on http://%s:%d/health",
        settings.executor_id,
        settings.executor_queues,
        settings.executor_concurrency,
        settings.executor_host,
        service.ops.port,
    )
    watchdog = Watchdog(service.board, lambda _: stop.set())
    while not stop.wait(0.5):
        watchdog.check()  # an essential component died: stop, then exit non-zero
    service.stop()
    if watchdog.fired is not None:
        raise SystemExit(EXIT_FATAL)
