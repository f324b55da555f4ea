"""The pure alert engine: facts from real events, each rule kind firing once, throttled,
reminded after the throttle, and resolved when its condition clears."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import pytest

from taskstream.monitor.alerts.engine import (
    AlertState,
    Transition,
    evaluate_executor,
    evaluate_task,
    expired,
)
from taskstream.monitor.alerts.facts import TaskFacts, fold
from taskstream.monitor.alerts.rules import Rule, parse_rule
from taskstream.schemas import (
    AlertStatus,
    Event,
    EventData,
    ExecutionCancelled,
    ExecutionDeadLettered,
    ExecutionFailed,
    ExecutionScheduled,
    ExecutionSkipped,
    ExecutionStarted,
    ExecutionSucceeded,
    ExecutionTimedOut,
    Priority,
    Schedule,
    SkipReason,
    TaskCreated,
    TaskDeleted,
    TaskPaused,
    TaskQuarantined,
    TaskResumed,
    TaskSpec,
    TaskUpdated,
    WorkerHeartbeat,
)

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
TASK = "task-1"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def rule(**fields: Any) -> Rule:
    return parse_rule({"id": "r", "throttle": "10m", **fields})


class Harness:
    """One task's facts and the alerts' states, moved along by events and evaluations."""

    def __init__(self, *rules: Rule) -> None:
        self.rules = list(rules)
        self.facts: TaskFacts | None = None
        self.states: dict[str, AlertState] = {}
        self.notices: list[tuple[str, str, int]] = []  # (rule id, status, repeat)
        self._ids = count()

    def event(self, data: EventData, seconds: float, event_id: str | None = None) -> None:
        event = Event.create(TASK, data, occurred_at=at(seconds), event_id=event_id)
        folded = fold(self.facts, event)
        if folded is not None:
            self.facts = folded
            self.evaluate(seconds)

    def evaluate(self, seconds: float) -> list[Transition]:
        assert self.facts is not None
        changes = evaluate_task(
            self.rules, self.facts, self.states, at(seconds), lambda: f"n{next(self._ids)}"
        )
        self._apply(changes)
        return changes

    def _apply(self, changes: Iterable[Transition]) -> None:
        for change in changes:
            self.states[change.key] = change.state
            if change.notice is not None:
                n = change.notice
                self.notices.append((n.rule_id, n.status.value, n.repeat))

    def ticks(self, start: float, stop: float, step: float = 1.0) -> None:
        seconds = start
        while seconds <= stop:
            self.evaluate(seconds)
            seconds += step


def spec(every: str = "1m", name: str = "job") -> TaskSpec:
    return TaskSpec(name=name, schedule=Schedule(every=every), handler="echo")  # type: ignore[arg-type]


def ended(kind: type[EventData], n: int, **extra: Any) -> EventData:
    common: dict[str, Any] = {
        "execution_id": f"e{n}",
        "attempt": 1,
        "scheduled_for": T0,
        "worker_id": "w",
        "duration_seconds": 1.0,
    }
    if kind is ExecutionFailed:
        common.update(error_type="ValueError", error_message="boom")
    if kind is ExecutionTimedOut:
        common.update(timeout_seconds=5.0)
    return kind(**common, **extra)


def started(n: int) -> ExecutionStarted:
    return ExecutionStarted(
        execution_id=f"e{n}", attempt=1, scheduled_for=T0, worker_id="w", handler="echo"
    )


def test_consecutive_failures_fire_once_and_resolve_on_a_success() -> None:
    h = Harness(rule(kind="consecutive_failures", threshold=3))
    h.event(TaskCreated(task=spec()), 0)
    h.event(ended(ExecutionFailed, 1), 1)
    h.event(ended(ExecutionTimedOut, 2), 2)
    assert h.notices == []
    h.event(ended(ExecutionFailed, 3), 3)
    assert h.notices == [("r", "firing", 0)]
    h.event(ended(ExecutionFailed, 4), 4)  # still failing, within the throttle
    h.ticks(5, 60)
    assert h.notices == [("r", "firing", 0)]
    h.event(ended(ExecutionSucceeded, 5), 61)
    assert h.notices == [("r", "firing", 0), ("r", "resolved", 0)]
    state = h.states["r|task-1"]
    assert state.status is AlertStatus.RESOLVED and state.summary.startswith("resolved after 58s")


def test_the_same_event_twice_counts_once() -> None:
    h = Harness(rule(kind="consecutive_failures", threshold=2))
    h.event(ended(ExecutionFailed, 1), 1, event_id="same")
    h.event(ended(ExecutionFailed, 1), 1, event_id="same")
    assert h.facts is not None and h.facts.consecutive_failures == 1
    assert h.notices == []


def test_a_condition_still_holding_is_reminded_after_the_throttle() -> None:
    h = Harness(rule(kind="consecutive_failures", threshold=1, throttle="1m"))
    h.event(ended(ExecutionFailed, 1), 0)
    h.ticks(1, 59)
    assert h.notices == [("r", "firing", 0)]
    h.ticks(60, 60)
    assert h.notices == [("r", "firing", 0), ("r", "firing", 1)]
    h.ticks(61, 119)
    assert len(h.notices) == 2
    h.ticks(120, 120)
    assert h.notices[-1] == ("r", "firing", 2)


def test_renotify_off_notifies_an_episode_once() -> None:
    h = Harness(rule(kind="consecutive_failures", threshold=1, throttle="1m", renotify=False))
    h.event(ended(ExecutionFailed, 1), 0)
    h.ticks(1, 600, step=30)
    assert h.notices == [("r", "firing", 0)]


def test_a_flapping_condition_is_throttled_and_its_silent_episode_not_resolved() -> None:
    h = Harness(rule(kind="consecutive_failures", threshold=1, throttle="1m"))
    h.event(ended(ExecutionFailed, 1), 0)
    h.event(ended(ExecutionSucceeded, 2), 10)
    h.event(ended(ExecutionFailed, 3), 20)  # fires again within the throttle: silent
    h.event(ended(ExecutionSucceeded, 4), 30)  # and resolves silently
    assert h.notices == [("r", "firing", 0), ("r", "resolved", 0)]
    h.event(ended(ExecutionFailed, 5), 40)
    h.ticks(41, 59)
    assert len(h.notices) == 2
    h.ticks(60, 60)  # still firing once the throttle has passed: notified now
    assert h.notices[-1] == ("r", "firing", 0)


def test_failure_rate_over_a_window() -> None:
    h = Harness(
        rule(kind="failure_rate", threshold=0.5, window="1m", min_executions=4, throttle="1h")
    )
    h.event(ended(ExecutionFailed, 1), 0)
    h.event(ended(ExecutionFailed, 2), 1)
    h.event(ended(ExecutionSucceeded, 3), 2)
    assert h.notices == []  # 3 < min_executions
    h.event(ended(ExecutionSucceeded, 4), 3)
    assert h.notices == [("r", "firing", 0)]
    h.ticks(4, 59)
    assert len(h.notices) == 1
    h.ticks(60, 61)  # the first failure leaves the window: 1 of 3
    assert h.notices == [("r", "firing", 0), ("r", "resolved", 0)]


def test_long_run_fires_on_the_timer_and_resolves_when_it_ends() -> None:
    h = Harness(rule(kind="long_run", limit="30s"))
    h.event(started(1), 0)
    h.ticks(1, 30)
    assert h.notices == []
    h.ticks(31, 100)
    assert h.notices == [("r", "firing", 0)]
    assert h.states["r|task-1"].details["execution_id"] == "e1"
    h.event(ended(ExecutionCancelled, 1, reason="requested"), 101)
    assert h.notices[-1] == ("r", "resolved", 0)


def test_missed_schedule_fires_after_the_grace_and_resolves_when_the_slot_fires() -> None:
    h = Harness(rule(kind="missed_schedule", grace="10s"))
    h.event(TaskCreated(task=spec(every="1m")), 0)  # first slot at 60s
    h.ticks(1, 70)
    assert h.notices == []
    h.ticks(71, 80)
    assert h.notices == [("r", "firing", 0)]
    assert h.states["r|task-1"].details["slot"] == at(60).isoformat()
    h.event(
        ExecutionScheduled(
            execution_id="e1",
            attempt=1,
            scheduled_for=at(60),
            topic="t",
            queue="default",
            priority=Priority.MEDIUM,
        ),
        81,
    )
    assert h.notices[-1] == ("r", "resolved", 0)
    h.ticks(82, 130)  # the next slot (120s) is within its grace
    assert len(h.notices) == 2


def test_missed_schedule_counts_skips_and_ignores_paused_and_deleted_tasks() -> None:
    h = Harness(rule(kind="missed_schedule", grace="5s"))
    h.event(TaskCreated(task=spec(every="1m")), 0)
    h.event(
        ExecutionSkipped(scheduled_for=at(60), reason=SkipReason.MISFIRE), 61
    )  # a skip records the slot
    h.ticks(62, 120)
    assert h.notices == []
    h.event(TaskPaused(), 121)
    h.ticks(122, 300, step=10)
    assert h.notices == []
    h.event(TaskResumed(), 301)  # the slots while paused were never recorded: missed
    assert h.notices == [("r", "firing", 0)]
    h.event(TaskDeleted(), 302)
    assert h.notices[-1] == ("r", "resolved", 0)


def test_a_stale_change_is_ignored_like_the_core_does() -> None:
    h = Harness()
    h.event(TaskCreated(task=spec()), 0)
    h.event(TaskPaused(expected_version=5), 1)
    assert h.facts is not None and h.facts.status == "active"
    h.event(TaskUpdated(task=spec(every="2m", name="renamed"), expected_version=1), 2)
    assert h.facts.name == "renamed" and h.facts.anchor == at(2) and h.facts.version == 2


def test_dead_letter_fires_and_resolves_when_a_later_run_succeeds() -> None:
    h = Harness(rule(kind="dead_letter"))
    letter = ExecutionDeadLettered(
        execution_id="e1", attempt=3, scheduled_for=T0, reason="max_attempts"
    )
    h.event(letter, 0)
    h.event(
        ExecutionDeadLettered(execution_id="e2", attempt=3, scheduled_for=T0, reason="permanent"),
        5,
    )
    assert h.notices == [("r", "firing", 0)]
    h.event(ended(ExecutionSucceeded, 3), 10)
    assert h.notices == [("r", "firing", 0), ("r", "resolved", 0)]


def test_a_rule_watches_only_its_tasks() -> None:
    h = Harness(rule(kind="dead_letter", tasks=["other", "job"]))
    h.event(TaskCreated(task=spec(name="job")), 0)
    h.event(ExecutionDeadLettered(execution_id="e1", attempt=1, scheduled_for=T0, reason="x"), 1)
    assert h.notices == [("r", "firing", 0)]  # matched by name
    h2 = Harness(rule(kind="dead_letter", tasks=["other"]))
    h2.event(ExecutionDeadLettered(execution_id="e1", attempt=1, scheduled_for=T0, reason="x"), 1)
    assert h2.notices == []


def heartbeat(sent: float) -> WorkerHeartbeat:
    return WorkerHeartbeat(
        executor_id="ex",
        host="h",
        pid=1,
        queues=["default"],
        handlers=["echo"],
        capacity=1,
        in_flight=0,
        cpu_percent=0,
        memory_rss_bytes=0,
        started_at=T0,
        sent_at=at(sent),
    )


def test_executor_lost_fires_once_and_resolves_on_a_heartbeat_or_a_clean_leave() -> None:
    lost = rule(kind="executor_lost", throttle="1h")
    states: dict[str, AlertState] = {}
    notices: list[str] = []

    def evaluate(beat: WorkerHeartbeat | None, now: float) -> None:
        for change in evaluate_executor([lost], "ex", beat, states, at(now), timedelta(seconds=20)):
            states[change.key] = change.state
            if change.notice is not None:
                notices.append(change.notice.status.value)

    for now in range(0, 20):
        evaluate(heartbeat(0), now)
    assert notices == []
    for now in range(20, 200):
        evaluate(heartbeat(0), now)
    assert notices == ["firing"]
    assert states["r|ex"].details["last_heartbeat_at"] == T0.isoformat()
    evaluate(heartbeat(200), 200)
    assert notices == ["firing", "resolved"]
    evaluate(heartbeat(200), 230)  # lost again within the throttle: silent
    evaluate(None, 231)  # it left cleanly (a tombstone): resolved, silently too
    assert notices == ["firing", "resolved"]
    assert states["r|ex"].status is AlertStatus.RESOLVED


def test_expired_states_are_those_of_gone_rules_and_old_resolutions() -> None:
    h = Harness(rule(kind="dead_letter", throttle="1m"))
    h.event(ExecutionDeadLettered(execution_id="e1", attempt=1, scheduled_for=T0, reason="x"), 0)
    state = h.states["r|task-1"]
    assert not expired(state, h.rules[0], at(3600))  # firing: kept
    assert expired(state, None, at(1))  # its rule was deleted
    h.event(ended(ExecutionSucceeded, 2), 10)
    resolved = h.states["r|task-1"]
    assert not expired(resolved, h.rules[0], at(69))
    assert expired(resolved, h.rules[0], at(70))


@pytest.mark.parametrize("disabled", [{"enabled": False}])
def test_a_disabled_rule_does_nothing(disabled: dict[str, Any]) -> None:
    h = Harness(rule(kind="dead_letter", **disabled))
    h.event(ExecutionDeadLettered(execution_id="e1", attempt=1, scheduled_for=T0, reason="x"), 0)
    assert h.notices == []


def _quarantined(change_event_id: str) -> TaskQuarantined:
    return TaskQuarantined(
        component="scheduler",
        error_type="CronSimError",
        error_message="computing its next slot: Bad day-of-month",
        change_event_id=change_event_id,
    )


def test_task_quarantined_fires_with_the_reason_and_resolves_when_a_change_lifts_it() -> None:
    h = Harness(rule(kind="task_quarantined"))
    h.event(TaskCreated(task=spec()), 0, event_id="created")
    h.event(_quarantined("created"), 1)
    assert h.notices == [("r", "firing", 0)]
    assert h.facts is not None and h.facts.status == "quarantined"
    details = h.states["r|task-1"].details
    assert details["quarantine"]["component"] == "scheduler"
    assert details["quarantine"]["reason"].startswith("CronSimError: ")
    h.event(TaskUpdated(task=spec(every="2m")), 2, event_id="updated")
    assert h.facts.status == "active" and h.facts.quarantine is None
    assert h.notices[-1] == ("r", "resolved", 0)


def test_a_quarantine_naming_an_older_change_is_ignored_and_resume_lifts_one() -> None:
    h = Harness(rule(kind="task_quarantined"))
    h.event(TaskCreated(task=spec()), 0, event_id="created")
    h.event(TaskUpdated(task=spec(every="2m")), 1, event_id="updated")
    h.event(_quarantined("created"), 2)  # decided before the update: stale
    assert h.facts is not None and h.facts.status == "active" and h.notices == []
    h.event(_quarantined("updated"), 3)
    assert h.facts.status == "quarantined"
    h.event(TaskResumed(), 4)
    assert h.facts.status == "active"
    assert [status for _, status, _ in h.notices] == ["firing", "resolved"]
