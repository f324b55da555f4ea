"""One task the scheduler cannot evaluate is quarantined; the others keep firing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from taskstream.core.aggregate import TaskStatus
from taskstream.core.shard import Plan, Shard
from taskstream.core.store import Snapshot
from taskstream.infra.settings import Topics
from taskstream.schemas import (
    Event,
    ExecutionScheduled,
    Schedule,
    TaskCreated,
    TaskQuarantined,
    TaskResumed,
    TaskSpec,
    TaskUpdated,
    quarantine_event_id,
)
from tests.support import recorded_schedule

T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
PARTITION = 0
NEVER = recorded_schedule(cron="0 0 30 2 *")
"""The scheduler's parser raises CronError for it (there is no 30 February)."""


def _spec(schedule: Schedule) -> TaskSpec:
    return TaskSpec(name="n", handler="noop", schedule=schedule)


def _created(task_id: str, schedule: Schedule) -> Event:
    return Event.create(task_id, TaskCreated(task=_spec(schedule)), occurred_at=T0)


def _commit(shard: Shard, plan: Plan) -> Plan:
    for event in plan.events:
        shard.apply(event, plan.partitions[event.task_id])
    return plan


def _quarantines(plan: Plan) -> list[Event]:
    return [e for e in plan.events if isinstance(e.data, TaskQuarantined)]


def _fired(plan: Plan, task_id: str) -> list[datetime]:
    return [
        e.data.scheduled_for
        for e in plan.events
        if e.task_id == task_id and isinstance(e.data, ExecutionScheduled)
    ]


def _ready(*events: Event, snapshot: Snapshot | None = None) -> Shard:
    shard = Shard(Topics("t."), snapshot)
    for event in events:
        shard.apply(event, PARTITION)
    shard.mark_ready(PARTITION)  # arms every task: the poison one raised here
    return shard


def test_a_schedule_that_cannot_be_evaluated_quarantines_its_task_and_the_others_fire() -> None:
    good = _created("good", Schedule(every=timedelta(seconds=1)))
    poison = _created("poison", NEVER)
    shard = _ready(good, poison)

    plan = _commit(shard, shard.due(T0 + timedelta(seconds=1), limit=100))
    assert _fired(plan, "good") == [T0 + timedelta(seconds=1)]
    [quarantine] = _quarantines(plan)
    assert quarantine.task_id == "poison"
    assert quarantine.id == quarantine_event_id("poison", poison.id, "scheduler")
    data = quarantine.data
    assert isinstance(data, TaskQuarantined)
    assert (data.component, data.error_type, data.change_event_id) == (
        "scheduler",
        "CronError",
        poison.id,
    )
    assert "next slot" in data.error_message
    state = shard.state("poison")
    assert state is not None and state.status is TaskStatus.QUARANTINED
    assert shard.quarantined == 1

    for second in (2, 3, 4):
        later = _commit(shard, shard.due(T0 + timedelta(seconds=second), limit=100))
        assert _fired(later, "good") == [T0 + timedelta(seconds=second)]
        assert not _quarantines(later), "published once"


def test_an_interval_that_overflows_is_quarantined_too() -> None:
    shard = _ready(_created("huge", recorded_schedule(every="100000000d")))
    [quarantine] = _quarantines(shard.due(T0, limit=100))
    assert isinstance(quarantine.data, TaskQuarantined)
    assert quarantine.data.error_type == "OverflowError"


def test_a_restart_that_meets_the_same_record_writes_the_same_quarantine() -> None:
    poison = _created("poison", NEVER)
    first = _quarantines(_ready(poison).due(T0, limit=100))
    again = _quarantines(_ready(poison).due(T0, limit=100))
    assert [e.id for e in first] == [e.id for e in again] and len(first) == 1


def test_a_task_restored_quarantined_is_not_evaluated_again() -> None:
    poison = _created("poison", NEVER)
    shard = _ready(poison)
    _commit(shard, shard.due(T0, limit=100))
    state = shard.state("poison")
    assert state is not None and state.status is TaskStatus.QUARANTINED

    restarted = _ready(snapshot=Snapshot(offsets={}, tasks=[state], active=[], runs=[]))
    assert not restarted.due(T0 + timedelta(days=1), limit=100)
    assert restarted.quarantined == 1


def test_a_good_update_lifts_the_quarantine_and_the_task_fires() -> None:
    poison = _created("poison", NEVER)
    shard = _ready(poison)
    _commit(shard, shard.due(T0, limit=100))
    fixed = Event.create(
        "poison", TaskUpdated(task=_spec(Schedule(every=timedelta(seconds=10)))), occurred_at=T0
    )
    shard.apply(fixed, PARTITION)
    state = shard.state("poison")
    assert state is not None and state.status is TaskStatus.ACTIVE
    assert shard.quarantined == 0
    plan = shard.due(T0 + timedelta(seconds=10), limit=100)
    assert _fired(plan, "poison") == [T0 + timedelta(seconds=10)]


def test_a_bad_update_quarantines_again_naming_the_new_change() -> None:
    shard = _ready(_created("task", Schedule(every=timedelta(seconds=10))))
    bad = Event.create("task", TaskUpdated(task=_spec(NEVER)), occurred_at=T0)
    shard.apply(bad, PARTITION)
    [quarantine] = _quarantines(shard.due(T0, limit=100))
    assert isinstance(quarantine.data, TaskQuarantined)
    assert quarantine.data.change_event_id == bad.id


def test_resume_lifts_the_quarantine_and_the_scheduler_evaluates_the_task_again() -> None:
    poison = _created("poison", NEVER)
    shard = _ready(poison)
    _commit(shard, shard.due(T0, limit=100))
    resumed = Event.create("poison", TaskResumed(), occurred_at=T0)
    shard.apply(resumed, PARTITION)
    [again] = _quarantines(shard.due(T0, limit=100))  # still cannot: a second, new quarantine
    assert isinstance(again.data, TaskQuarantined)
    assert again.data.change_event_id == resumed.id


def test_a_quarantine_that_names_an_older_change_is_ignored() -> None:
    shard = _ready(_created("task", Schedule(every=timedelta(seconds=10))))
    stale = Event.create(
        "task",
        TaskQuarantined(
            component="scheduler", error_type="X", error_message="m", change_event_id="old"
        ),
    )
    shard.apply(stale, PARTITION)
    state = shard.state("task")
    assert state is not None and state.status is TaskStatus.ACTIVE


def test_an_uncommitted_quarantine_is_planned_again() -> None:
    shard = _ready(_created("poison", NEVER))
    plan = shard.due(T0, limit=100)
    assert _quarantines(plan)
    shard.rearm(plan)  # the transaction failed
    assert [e.id for e in _quarantines(shard.due(T0, limit=100))] == [
        e.id for e in _quarantines(plan)
    ]
