"""The monitor's view of executors, folded from their heartbeats on the ``workers`` topic.

The topic is compacted and keyed by executor id; a value is a
:class:`~taskstream.schemas.WorkerHeartbeat`, a tombstone (null) means the executor left cleanly
and removes it. An executor is live while its last heartbeat's ``sent_at`` is younger
than ``TASKSTREAM_MONITOR_WORKER_TIMEOUT`` (liveness and the record reading are
:mod:`taskstream.schemas.workers`, shared with the core); :func:`install_workers` adds
the agent, its changelogged table (``executor-heartbeats``) and
``GET /api/workers[?live=true]`` to a faust app.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import faust
from faust.web import Request, Response, View

from taskstream.monitor.contract import ChoiceQuery, Operation, json_answer
from taskstream.monitor.settings import MonitorSettings
from taskstream.schemas import EventDecodeError, WorkerHeartbeat
from taskstream.schemas.workers import read_workers_record, worker_view

__all__ = [
    "OPERATIONS",
    "WorkerBook",
    "install_workers",
]

LIVE_ONLY = ChoiceQuery(
    name="live", choices=("true", "false"), description="true: only the live executors"
)
WORKERS = Operation(
    method="get",
    path="/api/workers",
    operation_id="listWorkers",
    summary="The executors the monitor knows from their heartbeats, by id",
    parameters=(LIVE_ONLY,),
    responses={
        200: json_answer(
            "each executor's last heartbeat, live and last_seen_seconds",
            {
                "type": "object",
                "required": ["items"],
                "properties": {
                    "items": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/Worker"},
                    }
                },
            },
        )
    },
    errors=(422,),
    tags=("executors",),
)
OPERATIONS = (WORKERS,)

logger = logging.getLogger(__name__)

OnChange = Callable[[str, WorkerHeartbeat | None], Awaitable[None]]


class WorkerBook:
    """Read access to the heartbeat table (executor id -> heartbeat JSON)."""

    def __init__(self, table: Any, timeout: timedelta) -> None:
        self._table = table
        self.timeout = timeout

    def get(self, executor_id: str) -> WorkerHeartbeat | None:
        raw = self._table.get(executor_id)
        return None if raw is None else WorkerHeartbeat.model_validate(raw)

    def all(self) -> dict[str, WorkerHeartbeat]:
        return {
            str(name): WorkerHeartbeat.model_validate(raw)
            for name, raw in sorted(self._table.items())
        }


def install_workers(
    app: faust.App, settings: MonitorSettings, on_change: OnChange | None = None
) -> WorkerBook:
    """Fold the ``workers`` topic into a table and serve it; ``on_change`` hears each record."""
    topic = app.topic(
        settings.topics.workers,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=1,
        allow_empty=True,
    )
    table = app.Table("executor-heartbeats", partitions=1, use_partitioner=True)
    book = WorkerBook(table, settings.monitor_worker_timeout)

    @app.agent(topic, concurrency=1, name=f"{settings.app_id}.executor-heartbeats")
    async def heartbeats(stream: Any) -> None:
        async for event in stream.events():
            try:
                executor_id, heartbeat = read_workers_record(event.key, event.value)
            except EventDecodeError as exc:
                logger.error("skipping undecodable workers record: %s", exc)
                continue
            if heartbeat is None:
                table.pop(executor_id, None)
            else:
                table[executor_id] = heartbeat.model_dump(mode="json")
            if on_change is not None:
                await on_change(executor_id, heartbeat)

    @app.page(WORKERS.path)
    async def list_workers(self: View, request: Request) -> Response:
        live_only = LIVE_ONLY.read(request) == "true"
        now = datetime.now(UTC)
        items = [worker_view(beat, now, book.timeout) for beat in book.all().values()]
        if live_only:
            items = [item for item in items if item["live"]]
        return self.json({"items": items})

    return book
