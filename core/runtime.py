"""The parts of a running core that the API talks to, wired by `core.service.bootstrap`."""

from __future__ import annotations

from dataclasses import dataclass

from taskstream.core.event_size import EventSizeLimit
from taskstream.core.execution_logs import LogProjection
from taskstream.core.projection import Projection
from taskstream.core.publisher import EventPublisher
from taskstream.core.scheduler import Scheduler
from taskstream.core.settings import CoreSettings
from taskstream.core.store import TaskStore
from taskstream.core.workers import WorkerDirectory
from taskstream.handlers import HandlerRegistry
from taskstream.infra.broker_health import BrokerHealth
from taskstream.infra.health import HealthBoard

__all__ = ["CoreRuntime"]


@dataclass(frozen=True)
class CoreRuntime:
    """The parts the API talks to, wired by :func:`taskstream.core.service.bootstrap`."""

    settings: CoreSettings
    store: TaskStore
    publisher: EventPublisher
    projection: Projection
    scheduler: Scheduler
    logs: LogProjection
    workers: WorkerDirectory
    registry: HandlerRegistry
    event_limit: EventSizeLimit
    broker: BrokerHealth
    board: HealthBoard
