"""From conditions to notices: deduplication, throttling and resolution. Pure, no I/O.

An alert is one key, ``<rule id>|<subject>`` (a task id or an executor id), with an
:class:`AlertState`. :func:`step` compares the state with the rule's condition now:

- the condition starts to hold: the alert fires, with a ``firing`` notice, unless the
  previous firing notice of this key is younger than the rule's ``throttle`` (a flapping
  condition): then it fires silently, and is notified once the throttle has passed;
- it keeps holding: nothing, until ``throttle`` has passed since the last notice; then,
  with ``renotify``, a reminder (``repeat`` + 1);
- it stops holding: the alert resolves, with a ``resolved`` notice if its firing was
  notified (and the rule has ``notify_resolved``).

So a condition seen again and again (the same event twice, every timer tick) notifies
once per throttle at most, and never twice for one change.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from taskstream.monitor.alerts.conditions import Condition, executor_condition, task_condition
from taskstream.monitor.alerts.facts import TaskFacts
from taskstream.monitor.alerts.rules import ExecutorLostRule, Rule, TaskRule
from taskstream.schemas import (
    AlertNotification,
    AlertStatus,
    WorkerHeartbeat,
    format_duration,
)
from taskstream.schemas.alerts import AlertState

__all__ = [
    "AlertState",
    "Transition",
    "alert_key",
    "evaluate_executor",
    "evaluate_task",
    "expired",
    "step",
]


def alert_key(rule_id: str, subject: str) -> str:
    return f"{rule_id}|{subject}"


@dataclass(frozen=True)
class Transition:
    """A new state for ``key``, and the notice to send (None: a silent change)."""

    key: str
    state: AlertState
    notice: AlertNotification | None


def _notice(state: AlertState, now: datetime, new_id: Callable[[], str]) -> AlertNotification:
    return AlertNotification(
        id=new_id(),
        key=state.key,
        rule_id=state.rule_id,
        kind=state.kind,
        status=state.status,
        severity=state.severity,
        subject_type=state.subject_type,
        subject=state.subject,
        summary=state.summary,
        details=state.details,
        started_at=state.started_at,
        resolved_at=state.resolved_at,
        sent_at=now,
        repeat=state.repeat,
    )


def _uuid() -> str:
    return str(uuid.uuid4())


def step(
    rule: Rule,
    subject: str,
    state: AlertState | None,
    condition: Condition | None,
    now: datetime,
    new_id: Callable[[], str] = _uuid,
) -> Transition | None:
    """The alert's change for ``condition`` (None: it does not hold) at ``now``."""
    key = alert_key(rule.id, subject)
    firing = state is not None and state.status is AlertStatus.FIRING
    if condition is None:
        if state is None or not firing:
            return None
        resolved = state.model_copy(
            update={
                "status": AlertStatus.RESOLVED,
                "resolved_at": now,
                "summary": f"resolved after {format_duration(now - state.started_at)}: "
                f"{state.summary}",
            }
        )
        notify = state.notified and rule.notify_resolved
        return Transition(key, resolved, _notice(resolved, now, new_id) if notify else None)
    last = state.last_notice_at if state is not None else None
    throttle_passed = last is None or now - last >= rule.throttle
    if state is None or not firing:
        started = AlertState(
            key=key,
            rule_id=rule.id,
            kind=rule.kind,
            subject_type=rule.SUBJECT,
            subject=subject,
            severity=rule.severity,
            status=AlertStatus.FIRING,
            started_at=now,
            last_notice_at=now if throttle_passed else last,
            notified=throttle_passed,
            summary=condition.summary,
            details=condition.details,
        )
        return Transition(key, started, _notice(started, now, new_id) if throttle_passed else None)
    if not throttle_passed or (state.notified and not rule.renotify):
        return None
    again = state.model_copy(
        update={
            "last_notice_at": now,
            "notified": True,
            "repeat": state.repeat + 1 if state.notified else 0,
            "severity": rule.severity,
            "summary": condition.summary,
            "details": condition.details,
        }
    )
    return Transition(key, again, _notice(again, now, new_id))


def expired(state: AlertState, rule: Rule | None, now: datetime) -> bool:
    """True if the state can be forgotten: its rule is gone or off, or it resolved and
    its throttle has passed (a new firing would be notified anyway)."""
    if rule is None or not rule.enabled or rule.kind != state.kind:
        return True
    if state.status is AlertStatus.FIRING:
        return False
    since = max(t for t in (state.last_notice_at, state.resolved_at, state.started_at) if t)
    return now - since >= rule.throttle


def evaluate_task(
    rules: Iterable[Rule],
    facts: TaskFacts,
    states: Mapping[str, AlertState],
    now: datetime,
    new_id: Callable[[], str] = _uuid,
) -> list[Transition]:
    """Every change of the task rules' alerts for one task."""
    changes = []
    for rule in rules:
        if not isinstance(rule, TaskRule) or not rule.enabled:
            continue
        state = states.get(alert_key(rule.id, facts.task_id))
        change = step(rule, facts.task_id, state, task_condition(rule, facts, now), now, new_id)
        if change is not None:
            changes.append(change)
    return changes


def evaluate_executor(
    rules: Iterable[Rule],
    executor_id: str,
    heartbeat: WorkerHeartbeat | None,
    states: Mapping[str, AlertState],
    now: datetime,
    default_timeout: timedelta,
    new_id: Callable[[], str] = _uuid,
) -> list[Transition]:
    """Every change of the ``executor_lost`` alerts for one executor (None: it left)."""
    changes = []
    for rule in rules:
        if not isinstance(rule, ExecutorLostRule) or not rule.enabled:
            continue
        state = states.get(alert_key(rule.id, executor_id))
        condition = executor_condition(rule, executor_id, heartbeat, now, default_timeout)
        change = step(rule, executor_id, state, condition, now, new_id)
        if change is not None:
            changes.append(change)
    return changes
