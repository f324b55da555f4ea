"""Bootstrap of the executor service."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from executor.runner import HandlerRunner
from executor.settings import ExecutorSettings
from executor.worker import Worker
from handlers import HandlerRegistry
from taskstream.infra.kafka import ensure_topics, standard_topics
from taskstream.infra.logs import configure_logging
from taskstream.infra.ops_http import OpsServer

__all__ = ["bootstrap", "run"]

logger = logging.getLogger(__name__)


def bootstrap(
    settings: ExecutorSettings, registry: HandlerRegistry | None = None
) -> tuple[Worker, OpsServer]:
    ensure_topics(settings, standard_topics(settings, settings.executor_queues))
    registry = registry or HandlerRegistry.from_entry_points()
    runner = HandlerRunner(registry, settings.executor_default_timeout.total_seconds())
    worker = Worker(settings, runner)

    def health() -> tuple[bool, dict[str, Any]]:
        return worker.alive, {
            "service": "executor",
            "executor_id": settings.executor_id,
            "queues": settings.executor_queues,
            "handlers": registry.names(),
            "error": repr(worker.error) if worker.error else None,
        }

    ops = OpsServer(settings.executor_host, settings.executor_port, health)
    worker.start()
    ops.start()
    return worker, ops


def run(settings: ExecutorSettings) -> None:
    """Run an executor until SIGINT or SIGTERM."""
    configure_logging("executor", settings.log_level, settings.log_format)
    worker, ops = bootstrap(settings)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    logger.info(
        "executor %s serving %s; health on http://%s:%d/health",
        settings.executor_id,
        settings.executor_queues,
        settings.executor_host,
        ops.port,
    )
    while not stop.wait(0.5):
        if not worker.alive:
            logger.error("executor loop died; exiting")
            break
    worker.stop()
    ops.stop()
