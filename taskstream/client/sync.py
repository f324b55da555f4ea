"""``taskstream.Client``: the REST APIs of the core and the monitor, typed, synchronous."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import httpx
from tenacity import Retrying

from taskstream.client import operations as op
from taskstream.client.base import ClientBase
from taskstream.client.connection import Connection
from taskstream.client.errors import ServiceUnreachable
from taskstream.client.operations import Call, Service, TaskBody
from taskstream.client.retrying import retry_policy
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

__all__ = ["Client"]

T = TypeVar("T")


def unreachable(
    connection: Connection, service: Service, exc: httpx.HTTPError
) -> ServiceUnreachable:
    """Why ``service`` gave no answer, and what to check."""
    url = connection.url(service)
    if isinstance(exc, httpx.ConnectError):
        return ServiceUnreachable(
            f"cannot reach the {service} API at {url}: is it running? (taskstream dev starts it)",
            sent=False,
        )
    if isinstance(exc, httpx.TimeoutException):
        return ServiceUnreachable(
            f"the {service} API at {url} did not answer within {connection.timeout:g}s",
            sent=True,
        )
    return ServiceUnreachable(f"cannot talk to the {service} API at {url}: {exc}", sent=True)


class Client(ClientBase[httpx.Client, httpx.BaseTransport]):
    """The core's and the monitor's APIs. Every answer is a schema model; every failure a
    :class:`~taskstream.client.errors.ClientError`.

    >>> with Client("http://127.0.0.1:8080", token="...") as client:  # doctest: +SKIP
    ...     task = client.create_task({"name": "nightly", "schedule": {"cron": "0 3 * * *"},
    ...                                "handler": "echo"})
    ...     client.run_task(task.id)
    """

    HTTP = httpx.Client

    def close(self) -> None:
        for http in self._http.values():
            http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def send(self, call: Call[T]) -> T:
        """Send ``call`` (retried as :mod:`taskstream.client.retrying` says); its answer."""
        policy = retry_policy(repeatable=call.retry, retries=self.connection.retries)
        answer: T = Retrying(**policy)(self._once, call)
        return answer

    def _once(self, call: Call[T]) -> T:
        try:
            response = self._http[call.service].request(
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

    def create_task(self, task: TaskBody) -> Task | Accepted:
        """Create a task; ``Accepted`` if it is written but the store did not show it in time."""
        return self.send(op.create_task(task))

    def create_tasks(self, tasks: list[TaskBody]) -> BatchResult:
        """Create up to 1,000 tasks in one request; each item says written or why refused."""
        return self.send(op.create_tasks(tasks))

    def get_task(self, task_id: str) -> Task:
        return self.send(op.get_task(task_id))

    def list_tasks(
        self,
        *,
        page: int = 0,
        size: int = 20,
        status: str | None = None,
        handler: str | None = None,
        queue: str | None = None,
    ) -> TaskPage:
        return self.send(op.list_tasks(page, size, status, handler, queue))

    def iter_tasks(
        self,
        *,
        size: int = 200,
        status: str | None = None,
        handler: str | None = None,
        queue: str | None = None,
    ) -> Iterator[Task]:
        """Every matching task, a page at a time."""
        page = 0
        while True:
            answer = self.list_tasks(
                page=page, size=size, status=status, handler=handler, queue=queue
            )
            yield from answer.items
            if not answer.items or (page + 1) * size >= answer.total:
                return
            page += 1

    def replace_task(
        self, task_id: str, task: TaskBody, *, expected_version: int | None = None
    ) -> Task | Accepted:
        """Replace the whole definition (``Conflict`` if ``expected_version`` is stale)."""
        return self.send(op.replace_task(task_id, task, expected_version))

    def patch_task(
        self,
        task_id: str,
        changes: PatchTaskRequest | Mapping[str, Any],
        *,
        expected_version: int | None = None,
    ) -> Task | Accepted:
        """Change the top-level fields given, keep the others."""
        return self.send(op.patch_task(task_id, changes, expected_version))

    def pause_task(self, task_id: str, *, expected_version: int | None = None) -> Task | Accepted:
        return self.send(op.set_status(task_id, "paused", expected_version))

    def resume_task(self, task_id: str, *, expected_version: int | None = None) -> Task | Accepted:
        """Resume a paused task, or one a component quarantined."""
        return self.send(op.set_status(task_id, "active", expected_version))

    def delete_task(self, task_id: str, *, expected_version: int | None = None) -> None:
        self.send(op.delete_task(task_id, expected_version))

    def run_task(self, task_id: str) -> RunAccepted:
        """Run the task now, once, beside its schedule; the answer names the execution."""
        return self.send(op.run_task(task_id))

    def cancel(self, task_id: str, *, execution_id: str | None = None) -> CancelAccepted:
        """Cancel one unfinished execution of the task, or all of them."""
        return self.send(op.cancel(task_id, execution_id))

    # -- executions and executors ----------------------------------------------------------

    def execution_logs(self, execution_id: str) -> ExecutionLogs:
        """What the execution's handler logged and printed, run by run."""
        return self.send(op.execution_logs(execution_id))

    def execution_log_text(self, execution_id: str) -> str:
        return self.send(op.execution_log_text(execution_id))

    def next_slots(self, task_id: str, *, count: int = 10) -> SchedulePreview:
        """The task's next ``count`` slots, as its scheduler will fire them (DST included)."""
        return self.send(op.next_slots(task_id, count))

    def preview_schedule(
        self,
        schedule: Schedule | Mapping[str, Any],
        *,
        count: int = 10,
        after: datetime | None = None,
    ) -> SchedulePreview:
        """The first ``count`` slots of a schedule not created yet (from ``after``, or now);
        ``ValidationFailed`` if a create would refuse it."""
        return self.send(op.preview_schedule(schedule, count, after))

    def backfill(
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
        return self.send(op.backfill(task_id, start, end, overlap, rate))

    def cancel_backfill(self, task_id: str) -> BackfillAccepted:
        """Cancel the task's running backfill (slots fired already still run)."""
        return self.send(op.cancel_backfill(task_id))

    def handlers(self) -> HandlerList:
        """The handlers a task may name, their params' JSON Schema, where they are served."""
        return self.send(op.handlers())

    def handler(self, name: str) -> HandlerInfo:
        """One handler, by name or class path (``NotFound`` if the core has none)."""
        return self.send(op.handler(name))

    def workers(self, *, live: bool | None = None) -> WorkerList:
        """The executors known from their heartbeats (``live=True``: only live ones)."""
        return self.send(op.workers(live))

    # -- the monitor -----------------------------------------------------------------------

    def task_history(self, task_id: str, *, page: int = 0, size: int = 20) -> TaskHistory:
        """The task's last executions, newest first, as the monitor folded them."""
        return self.send(op.task_history(task_id, page, size))

    def task_stats(self, task_id: str) -> TaskStats:
        return self.send(op.task_stats(task_id))

    def recent_executions(self, *, limit: int = 50, status: str | None = None) -> RecentExecutions:
        return self.send(op.recent_executions(limit, status))

    def monitor_metrics(self, *, minutes: int = 60) -> MonitorMetrics:
        return self.send(op.monitor_metrics(minutes))

    def alerts(self) -> AlertList:
        """The alerts firing now and the recent notices."""
        return self.send(op.alerts())

    def alert_rules(self) -> list[AlertRule]:
        return self.send(op.alert_rules())

    def alert_rule(self, rule_id: str) -> AlertRule:
        return self.send(op.alert_rule(rule_id))

    def put_alert_rule(self, rule: Rule | Mapping[str, Any]) -> AlertRule:
        """Create or replace an API rule (its ``id`` names it)."""
        return self.send(op.put_alert_rule(rule))

    def delete_alert_rule(self, rule_id: str) -> None:
        self.send(op.delete_alert_rule(rule_id))
