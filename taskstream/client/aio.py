"""``taskstream.AsyncClient``: the same calls as :class:`~taskstream.Client`, with asyncio."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import httpx
from tenacity import AsyncRetrying

from taskstream.client import operations as op
from taskstream.client.base import ClientBase
from taskstream.client.operations import Call, TaskBody
from taskstream.client.retrying import retry_policy
from taskstream.client.sync import unreachable
from taskstream.schemas.alert_rules import AlertRule, Rule
from taskstream.schemas.api import (
    Accepted,
    BackfillAccepted,
    BatchResult,
    CancelAccepted,
    ExecutionLogs,
    HandlerInfo,
    HandlerList,
    PatchTaskRequest,
    RunAccepted,
    SchedulePreview,
    Task,
    TaskPage,
    WorkerList,
)
from taskstream.schemas.monitor_api import (
    AlertList,
    MonitorMetrics,
    RecentExecutions,
    TaskHistory,
    TaskStats,
)
from taskstream.schemas.task import Schedule

__all__ = ["AsyncClient"]

T = TypeVar("T")


class AsyncClient(ClientBase[httpx.AsyncClient, httpx.AsyncBaseTransport]):
    """The core's and the monitor's APIs. Every answer is a schema model; every failure a
    :class:`~taskstream.client.errors.ClientError`.

    >>> async with AsyncClient("http://127.0.0.1:8080", token="...") as client:  # doctest: +SKIP
    ...     task = await client.create_task({"name": "nightly", "schedule": {"cron": "0 3 * * *"},
    ...                                "handler": "echo"})
    ...     await client.run_task(task.id)
    """

    HTTP = httpx.AsyncClient

    async def aclose(self) -> None:
        for http in self._http.values():
            await http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def send(self, call: Call[T]) -> T:
        """Send ``call`` (retried as :mod:`taskstream.client.retrying` says); its answer."""
        policy = retry_policy(repeatable=call.retry, retries=self.connection.retries)
        return await AsyncRetrying(**policy)(self._once, call)

    async def _once(self, call: Call[T]) -> T:
        try:
            response = await self._http[call.service].request(
                call.method,
                call.path,
                params=call.params or None,
                json=call.body,
                headers=call.headers or None,
            )
        except httpx.HTTPError as exc:
            raise unreachable(self.connection, call.service, exc) from None
        return call.answer(response)

    # -- tasks -----------------------------------------------------------------------------

    async def create_task(self, task: TaskBody) -> Task | Accepted:
        """Create a task; ``Accepted`` if it is written but the store did not show it in time."""
        return await self.send(op.create_task(task))

    async def create_tasks(self, tasks: list[TaskBody]) -> BatchResult:
        """Create up to 1,000 tasks in one request; each item says written or why refused."""
        return await self.send(op.create_tasks(tasks))

    async def get_task(self, task_id: str) -> Task:
        return await self.send(op.get_task(task_id))

    async def list_tasks(
        self,
        *,
        page: int = 0,
        size: int = 20,
        status: str | None = None,
        handler: str | None = None,
        queue: str | None = None,
    ) -> TaskPage:
        return await self.send(op.list_tasks(page, size, status, handler, queue))

    async def iter_tasks(
        self,
        *,
        size: int = 200,
        status: str | None = None,
        handler: str | None = None,
        queue: str | None = None,
    ) -> AsyncIterator[Task]:
        """Every matching task, a page at a time."""
        page = 0
        while True:
            answer = await self.list_tasks(
                page=page, size=size, status=status, handler=handler, queue=queue
            )
            for task in answer.items:
                yield task
            if not answer.items or (page + 1) * size >= answer.total:
                return
            page += 1

    async def replace_task(
        self, task_id: str, task: TaskBody, *, expected_version: int | None = None
    ) -> Task | Accepted:
        """Replace the whole definition (``Conflict`` if ``expected_version`` is stale)."""
        return await self.send(op.replace_task(task_id, task, expected_version))

    async def patch_task(
        self,
        task_id: str,
        changes: PatchTaskRequest | Mapping[str, Any],
        *,
        expected_version: int | None = None,
    ) -> Task | Accepted:
        """Change the top-level fields given, keep the others."""
        return await self.send(op.patch_task(task_id, changes, expected_version))

    async def pause_task(
        self, task_id: str, *, expected_version: int | None = None
    ) -> Task | Accepted:
        return await self.send(op.set_status(task_id, "paused", expected_version))

    async def resume_task(
        self, task_id: str, *, expected_version: int | None = None
    ) -> Task | Accepted:
        """Resume a paused task, or one a component quarantined."""
        return await self.send(op.set_status(task_id, "active", expected_version))

    async def delete_task(self, task_id: str, *, expected_version: int | None = None) -> None:
        await self.send(op.delete_task(task_id, expected_version))

    async def run_task(self, task_id: str) -> RunAccepted:
        """Run the task now, once, beside its schedule; the answer names the execution."""
        return await self.send(op.run_task(task_id))

    async def cancel(self, task_id: str, *, execution_id: str | None = None) -> CancelAccepted:
        """Cancel one unfinished execution of the task, or all of them."""
        return await self.send(op.cancel(task_id, execution_id))

    # -- executions and executors ----------------------------------------------------------

    async def execution_logs(self, execution_id: str) -> ExecutionLogs:
        """What the execution's handler logged and printed, run by run."""
        return await self.send(op.execution_logs(execution_id))

    async def execution_log_text(self, execution_id: str) -> str:
        return await self.send(op.execution_log_text(execution_id))

    async def next_slots(self, task_id: str, *, count: int = 10) -> SchedulePreview:
        """The task's next ``count`` slots, as its scheduler will fire them (DST included)."""
        return await self.send(op.next_slots(task_id, count))

    async def preview_schedule(
        self,
        schedule: Schedule | Mapping[str, Any],
        *,
        count: int = 10,
        after: datetime | None = None,
    ) -> SchedulePreview:
        """The first ``count`` slots of a schedule not created yet (from ``after``, or now);
        ``ValidationFailed`` if a create would refuse it."""
        return await self.send(op.preview_schedule(schedule, count, after))

    async def backfill(
        self,
        task_id: str,
        *,
        start: datetime,
        end: datetime,
        overlap: str = "allow",
        rate: float = 1.0,
    ) -> BackfillAccepted:
        """Run the task's schedule over ``[start, end]`` (past), ``rate`` slots a second at
        most; ``overlap="forbid"``: a slot starts once nothing of the task runs. Its
        progress is ``get_task(task_id).backfill``."""
        return await self.send(op.backfill(task_id, start, end, overlap, rate))

    async def cancel_backfill(self, task_id: str) -> BackfillAccepted:
        """Cancel the task's running backfill (slots fired already still run)."""
        return await self.send(op.cancel_backfill(task_id))

    async def handlers(self) -> HandlerList:
        """The handlers a task may name, their params' JSON Schema, where they are served."""
        return await self.send(op.handlers())

    async def handler(self, name: str) -> HandlerInfo:
        """One handler, by name or class path (``NotFound`` if the core has none)."""
        return await self.send(op.handler(name))

    async def workers(self, *, live: bool | None = None) -> WorkerList:
        """The executors known from their heartbeats (``live=True``: only live ones)."""
        return await self.send(op.workers(live))

    # -- the monitor -----------------------------------------------------------------------

    async def task_history(self, task_id: str, *, page: int = 0, size: int = 20) -> TaskHistory:
        """The task's last executions, newest first, as the monitor folded them."""
        return await self.send(op.task_history(task_id, page, size))

    async def task_stats(self, task_id: str) -> TaskStats:
        return await self.send(op.task_stats(task_id))

    async def recent_executions(
        self, *, limit: int = 50, status: str | None = None
    ) -> RecentExecutions:
        return await self.send(op.recent_executions(limit, status))

    async def monitor_metrics(self, *, minutes: int = 60) -> MonitorMetrics:
        return await self.send(op.monitor_metrics(minutes))

    async def alerts(self) -> AlertList:
        """The alerts firing now and the recent notices."""
        return await self.send(op.alerts())

    async def alert_rules(self) -> list[AlertRule]:
        return await self.send(op.alert_rules())

    async def alert_rule(self, rule_id: str) -> AlertRule:
        return await self.send(op.alert_rule(rule_id))

    async def put_alert_rule(self, rule: Rule | Mapping[str, Any]) -> AlertRule:
        """Create or replace an API rule (its ``id`` names it)."""
        return await self.send(op.put_alert_rule(rule))

    async def delete_alert_rule(self, rule_id: str) -> None:
        await self.send(op.delete_alert_rule(rule_id))
