"""Whether a rule's condition holds for one subject now: pure functions of the facts.

Each returns a :class:`Condition` (a summary for people and the facts behind it) while
the condition holds, and None when it does not; the engine turns the changes between
the two into notices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from taskstream.monitor.alerts.facts import TaskFacts
from taskstream.monitor.alerts.rules import (
    ConsecutiveFailuresRule,
    DeadLetterRule,
    ExecutorLostRule,
    FailureRateRule,
    LongRunRule,
    MissedScheduleRule,
    TaskQuarantinedRule,
    TaskRule,
)
from taskstream.schemas import WorkerHeartbeat, format_duration
from taskstream.schemas.schedules import jitter_offset, next_slot

__all__ = ["Condition", "executor_condition", "task_condition"]

_LISTED = 10


@dataclass(frozen=True)
class Condition:
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


def _seconds(value: timedelta) -> float:
    return round(value.total_seconds(), 3)


def task_condition(rule: TaskRule, facts: TaskFacts, now: datetime) -> Condition | None:
    """The condition of a task rule for one task, or None (also for a deleted task)."""
    if facts.status == "deleted" or not rule.watches(facts.task_id, facts.name):
        return None
    name = facts.name or facts.task_id
    base = {"task_id": facts.task_id, "task_name": facts.name}
    if isinstance(rule, ConsecutiveFailuresRule):
        if facts.consecutive_failures < rule.threshold:
            return None
        return Condition(
            f"task {name}: {facts.consecutive_failures} failed attempts in a row",
            {**base, "count": facts.consecutive_failures, "last_failure": facts.last_failure},
        )
    if isinstance(rule, FailureRateRule):
        since = now - rule.window
        recent = [o for o in facts.outcomes if o.at > since]
        failed = sum(1 for o in recent if not o.ok)
        if len(recent) < rule.min_executions or failed / len(recent) < rule.threshold:
            return None
        return Condition(
            f"task {name}: {failed} of {len(recent)} attempts failed in the last "
            f"{format_duration(rule.window)}",
            {
                **base,
                "failed": failed,
                "ended": len(recent),
                "rate": round(failed / len(recent), 4),
                "window": format_duration(rule.window),
            },
        )
    if isinstance(rule, LongRunRule):
        overdue = sorted(
            (started, eid) for eid, started in facts.running.items() if now - started > rule.limit
        )
        if not overdue:
            return None
        started, longest = overdue[0]
        return Condition(
            f"task {name}: execution {longest} has run {format_duration(now - started)}, "
            f"over the limit of {format_duration(rule.limit)}",
            {
                **base,
                "execution_id": longest,
                "started_at": started.isoformat(),
                "running_seconds": _seconds(now - started),
                "limit": format_duration(rule.limit),
                "executions": [eid for _, eid in overdue[:_LISTED]],
            },
        )
    if isinstance(rule, MissedScheduleRule):
        return _missed(rule, facts, now, name, base)
    if isinstance(rule, TaskQuarantinedRule):
        if facts.status != "quarantined":
            return None
        quarantine = facts.quarantine or {}
        return Condition(
            f"task {name}: quarantined by the {quarantine.get('component', '?')} "
            f"({quarantine.get('reason', 'no reason recorded')}); it is not scheduled "
            "until it is changed",
            {**base, "quarantine": quarantine},
        )
    assert isinstance(rule, DeadLetterRule)
    if facts.dead_letters == 0:
        return None
    reason = (facts.last_dead_letter or {}).get("reason", "")
    return Condition(
        f"task {name}: {facts.dead_letters} execution(s) dead-lettered ({reason})",
        {**base, "count": facts.dead_letters, "last_dead_letter": facts.last_dead_letter},
    )


def _missed(
    rule: MissedScheduleRule, facts: TaskFacts, now: datetime, name: str, base: dict[str, Any]
) -> Condition | None:
    if facts.status != "active" or facts.schedule is None or facts.anchor is None:
        return None
    slot = next_slot(facts.schedule, anchor=facts.anchor, after=facts.last_slot)
    if slot is None:
        return None
    due = slot.at + jitter_offset(facts.task_id, slot.at, facts.schedule.jitter)
    late = now - due
    if late <= rule.grace:
        return None
    return Condition(
        f"task {name}: the slot due at {due.isoformat()} has not fired "
        f"({format_duration(late)} late, grace {format_duration(rule.grace)})",
        {
            **base,
            "due_at": due.isoformat(),
            "slot": slot.at.isoformat(),
            "late_seconds": _seconds(late),
            "grace": format_duration(rule.grace),
            "last_slot": facts.last_slot.isoformat() if facts.last_slot else None,
        },
    )


def executor_condition(
    rule: ExecutorLostRule,
    executor_id: str,
    heartbeat: WorkerHeartbeat | None,
    now: datetime,
    default_timeout: timedelta,
) -> Condition | None:
    """Lost: a last heartbeat older than the timeout. None also after a clean leave."""
    if heartbeat is None or not rule.watches(executor_id):
        return None
    timeout = rule.timeout or default_timeout
    silent = now - heartbeat.sent_at
    if silent < timeout:
        return None
    return Condition(
        f"executor {executor_id} on {heartbeat.host}: no heartbeat for "
        f"{format_duration(silent)} (timeout {format_duration(timeout)})",
        {
            "executor_id": executor_id,
            "host": heartbeat.host,
            "pid": heartbeat.pid,
            "queues": heartbeat.queues,
            "last_heartbeat_at": heartbeat.sent_at.isoformat(),
            "silent_seconds": _seconds(silent),
            "timeout": format_duration(timeout),
            "in_flight": heartbeat.in_flight,
        },
    )
