"""Bootstrap of the core service: wire settings, Kafka, the store and the API."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn

from taskstream.core.api import CoreRuntime, create_api
from taskstream.core.event_size import EventSizeLimit
from taskstream.core.execution_logs import ExecutionLogStore, LogProjection
from taskstream.core.projection import Projection
from taskstream.core.publisher import EventPublisher
from taskstream.core.scheduler import Scheduler
from taskstream.core.security import check_exposure, core_exposure
from taskstream.core.settings import CoreSettings
from taskstream.core.store import TaskStore, make_engine
from taskstream.core.workers import WorkerDirectory
from taskstream.handlers import HandlerRegistry
from taskstream.infra.broker_health import BrokerHealth
from taskstream.infra.health import HealthBoard, HealthSnapshot, HealthSource
from taskstream.infra.kafka import ensure_topics, standard_topics
from taskstream.infra.logs import configure_logging
from taskstream.infra.shutdown import stop_in_order
from taskstream.infra.thread_health import EXIT_FATAL, Watchdog

__all__ = ["bootstrap", "health_sources", "run", "shutdown"]

logger = logging.getLogger(__name__)


def bootstrap(settings: CoreSettings, registry: HandlerRegistry | None = None) -> CoreRuntime:
    """Create the topics and the store; start the projection, scheduler and directory."""
    check_exposure(core_exposure(settings))
    broker = BrokerHealth(settings)
    broker.start()
    ensure_topics(settings, standard_topics(settings, settings.queues))
    event_limit = EventSizeLimit.from_broker(settings)
    logger.info("events on %s take at most %d bytes", event_limit.topic, event_limit.max_bytes)
    store = TaskStore(make_engine(settings.database_url), settings.topics.task_events)
    store.create_schema()
    publisher = EventPublisher(settings)
    projection = Projection(settings, store, settings.instance_id, quarantine=publisher.publish)
    projection.start()
    scheduler = Scheduler(settings, store)
    scheduler.start()
    logs = LogProjection(
        settings,
        ExecutionLogStore(store.engine, settings.topics.execution_logs),
        settings.instance_id,
    )
    logs.start()
    workers = WorkerDirectory(settings)
    workers.start()
    board = HealthBoard(
        "core", health_sources(broker, publisher, projection, scheduler, logs, workers)
    )
    return CoreRuntime(
        settings=settings,
        store=store,
        publisher=publisher,
        projection=projection,
        scheduler=scheduler,
        logs=logs,
        workers=workers,
        registry=registry or HandlerRegistry.from_entry_points(),
        event_limit=event_limit,
        broker=broker,
        board=board,
    )


def health_sources(
    broker: BrokerHealth,
    publisher: EventPublisher,
    projection: Projection,
    scheduler: Scheduler,
    logs: LogProjection,
    workers: WorkerDirectory,
) -> list[HealthSource]:
    """Every component ``/health`` and ``/ready`` report, in the order they show."""
    return [broker, publisher, projection, scheduler, logs, workers]


def shutdown(runtime: CoreRuntime) -> None:
    """Stop everything; the scheduler first leaves its group, so its partitions move now.

    Each component stops even if one before it fails to (a fenced scheduler's producer
    refuses to flush, say): the failure is logged and the rest still close.
    """
    began = time.monotonic()
    stop_in_order([("scheduler", runtime.scheduler.stop)])
    logger.info("scheduler stopped: left the group in %.2fs", time.monotonic() - began)
    stop_in_order(
        [
            ("worker directory", runtime.workers.stop),
            ("log projection", runtime.logs.stop),
            ("projection", runtime.projection.stop),
            ("publisher", runtime.publisher.close),
            ("broker health", runtime.broker.stop),
            ("store", runtime.store.engine.dispose),
        ]
    )
    logger.info("core stopped in %.2fs", time.monotonic() - began)


def run(settings: CoreSettings) -> None:
    """Run the core service until SIGINT or SIGTERM."""
    configure_logging("core", settings.log_level, settings.log_format)
    runtime = bootstrap(settings)
    runtime.board.register_metrics()  # once per process (the registry is global)
    app = create_api(runtime)
    stopped = threading.Event()

    def stop_once() -> None:
        if not stopped.is_set():
            stopped.set()
            shutdown(runtime)

    @asynccontextmanager
    async def lifespan(_: object) -> AsyncIterator[None]:
        yield
        # uvicorn re-raises SIGTERM/SIGINT once it has stopped serving, which ends the
        # process before code after server.run(): leave the group while uvicorn waits.
        await asyncio.to_thread(stop_once)

    app.router.lifespan_context = lifespan
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.api_host,
            port=settings.api_port,
            log_config=None,
            access_log=False,
            lifespan="on",
        )
    )

    def died(_: HealthSnapshot) -> None:
        server.should_exit = True  # uvicorn stops serving; run() then exits non-zero

    watchdog = Watchdog(runtime.board, died)
    watchdog.start()
    logger.info("core API listening on http://%s:%d", settings.api_host, settings.api_port)
    try:
        server.run()
    finally:
        watchdog.stop()
        stop_once()  # when uvicorn ended without a signal (e.g. the port was taken)
    if watchdog.fired is not None:
        raise SystemExit(EXIT_FATAL)
