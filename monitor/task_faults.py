"""Faults of one task, isolated: logged with the task, counted, and the monitor goes on.

An exception raised while folding one task's events into the tables, folding its alert
facts or evaluating a rule for it is caught at that task by the caller, which hands it
to :meth:`TaskFaults.record` and skips that task's part of the work. A fault is logged
and counted once per stage, task and error (the alert timer would otherwise meet the same
fault at every check), in ``taskstream_monitor_task_errors_total``.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from prometheus_client import CollectorRegistry, Counter

from taskstream.infra.logs import fields

__all__ = ["STAGES", "TaskFaults"]

logger = logging.getLogger(__name__)

STAGES = ("projection", "alert_facts", "alert_rules")
"""Where a fault was met: folding the tables, folding alert facts, evaluating rules."""
_REMEMBERED = 10_000


class TaskFaults:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._counter = Counter(
            "taskstream_monitor_task_errors",
            "exceptions raised for one task (its events or its alert rules), isolated: the "
            "task's part was skipped and the monitor went on",
            ["stage"],
            registry=registry,
        )
        for stage in STAGES:
            self._counter.labels(stage)
        self._seen: OrderedDict[tuple[str, str, str], None] = OrderedDict()

    def record(self, stage: str, task_id: str, exc: Exception, event_id: str | None = None) -> None:
        """One task's part failed; log and count it (once per stage, task and error)."""
        key = (stage, task_id, f"{type(exc).__name__}: {exc}")
        if key in self._seen:
            self._seen.move_to_end(key)
            return
        self._seen[key] = None
        if len(self._seen) > _REMEMBERED:
            self._seen.popitem(last=False)
        self._counter.labels(stage).inc()
        logger.error(
            "skipping task %s in %s (event %s): %s",
            task_id,
            stage,
            event_id or "-",
            key[2],
            exc_info=exc,
            extra=fields(task_id=task_id, action="task_skipped"),
        )

    def count(self, stage: str) -> float:
        return float(self._counter.labels(stage)._value.get())
