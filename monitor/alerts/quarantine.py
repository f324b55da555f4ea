"""Which tasks are quarantined, as the alert facts know them, without scanning every task.

A task is quarantined when a component (the core's scheduler or projection) could not
evaluate it (``TaskQuarantined``; :mod:`taskstream.monitor.alerts.facts`). :class:`QuarantinedTasks`
keeps the quarantined ones in memory: :meth:`~QuarantinedTasks.note` is told of every
task whose facts a batch changed (a quarantine lifted by a change leaves), and
:meth:`~QuarantinedTasks.rebuild` reads the facts table once after faust restored it
(a restart or a rebalance), when the facts arrive without a batch. The gauge
``taskstream_monitor_quarantined_tasks`` counts them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from taskstream.monitor.alerts.facts import TaskFacts

__all__ = ["QuarantinedTasks", "lift_hint"]


def lift_hint(task_id: str, version: int) -> str:
    """How a user lifts a task's quarantine (the core's API and CLI)."""
    return (
        f"fix what it cannot evaluate (usually its schedule): PATCH /api/tasks/{task_id} "
        f'with If-Match: "{version}" and a new definition; or, if the cause is gone, resume '
        f"it: taskstream tasks resume {task_id} (PUT /api/tasks/{task_id}/status "
        '{"status": "active"})'
    )


def _entry(task_id: str, name: Any, version: Any, quarantine: Mapping[str, Any]) -> dict[str, Any]:
    version = int(version or 0)
    return {
        "task_id": task_id,
        "name": name,
        "version": version,
        "component": quarantine.get("component"),
        "reason": quarantine.get("reason"),
        "since": quarantine.get("at"),
        "hint": lift_hint(task_id, version),
    }


class QuarantinedTasks:
    def __init__(self, facts_table: Any, registry: CollectorRegistry | None = None) -> None:
        self._table = facts_table
        self._items: dict[str, dict[str, Any]] = {}
        self._gauge = Gauge(
            "taskstream_monitor_quarantined_tasks",
            "tasks a component set aside (quarantined) because it cannot evaluate them",
            registry=registry,
        )

    def note(self, facts: TaskFacts) -> None:
        """A task's facts changed: it is quarantined now, or it is not."""
        if facts.status == "quarantined" and facts.quarantine is not None:
            self._items[facts.task_id] = _entry(
                facts.task_id, facts.name, facts.version, facts.quarantine
            )
        else:
            self._items.pop(facts.task_id, None)
        self._gauge.set(len(self._items))

    async def rebuild(self) -> None:
        """Read the restored facts table (raw JSON: a task that is not quarantined costs
        one key lookup)."""
        found = {}
        for task_id, raw in list(self._table.items()):
            if isinstance(raw, Mapping) and raw.get("status") == "quarantined":
                quarantine = raw.get("quarantine")
                if isinstance(quarantine, Mapping):
                    found[task_id] = _entry(
                        task_id, raw.get("name"), raw.get("version"), quarantine
                    )
        self._items = found
        self._gauge.set(len(found))

    def __len__(self) -> int:
        return len(self._items)

    def items(self, limit: int) -> list[dict[str, Any]]:
        """The quarantined tasks, the most recent first, at most ``limit``."""
        ordered = sorted(self._items.values(), key=lambda e: str(e["since"] or ""), reverse=True)
        return ordered[:limit]
