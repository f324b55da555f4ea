"""The scheduler's decisions, without I/O: fires, skips, misfire and overlap policies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from taskstream.core.aggregate import TaskState
from taskstream.core.aggregate import apply as aggregate_apply
from taskstream.core.shard import IGNORED_EVENT_TYPES, Plan, Shard
from taskstream.infra.settings import Topics
from taskstream.schemas import (
    CancelRequested,
    Event,
    ExecutionCancelled,
    ExecutionFailed,
    ExecutionScheduled,
    ExecutionSkipped,
    ExecutionStarted,
    ExecutionSucceeded,
    ExecutionTimedOut,
    RetryScheduled,
    RunRequested,
    Schedule,
    TaskCreated,
    TaskPaused,
    TaskSpec,
    Trigger,
    decode_event,
    decode_work_order,
    encode_event,
    encode_work_order,
    execution_id,
)
from taskstream.schemas.schedules import jitter_offset

T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
PARTITION = 0


def _shard() -> Shard:
    shard = Shard(Topics("t."))
    shard.mark_ready(PARTITION)
    return shard


def _create(shard: Shard, task_id: str = "task", at: datetime = T0, **spec: Any) -> None:
    spec.setdefault("schedule", Schedule(every=timedelta(seconds=1)))
    event = Event.create(
        task_id, TaskCreated(task=TaskSpec(name="n", handler="noop", **spec)), occurred_at=at
    )
    shard.apply(event, PARTITION)


def _commit(shard: Shard, plan: Plan) -> Plan:
    for event in plan.events:
        shard.apply(event, plan.partitions[event.task_id])
    return plan


def _run(shard: Shard, now: datetime) -> Plan:
    return _commit(shard, shard.due(now, limit=10_000))


def _fired(plan: Plan) -> list[datetime]:
    return [e.data.scheduled_for for e in plan.events if isinstance(e.data, ExecutionScheduled)]


def _skipped(plan: Plan) -> list[tuple[str, int]]:
    return [
        (e.data.reason.value, e.data.count)
        for e in plan.events
        if isinstance(e.data, ExecutionSkipped)
    ]


def test_each_slot_fires_once_with_a_deterministic_id() -> None:
    shard = _shard()
    _create(shard)
    assert not shard.due(T0 + timedelta(milliseconds=999), limit=100)
    plan = _run(shard, T0 + timedelta(seconds=1, milliseconds=3))
    assert _fired(plan) == [T0 + timedelta(seconds=1)]
    assert [o.execution_id for o in plan.orders] == [
        execution_id("task", T0 + timedelta(seconds=1), 1)
    ]
    assert plan.orders[0].priority.value == "medium"
    assert not shard.due(T0 + timedelta(seconds=1, milliseconds=500), limit=100), "fired once"
    assert _fired(_run(shard, T0 + timedelta(seconds=2))) == [T0 + timedelta(seconds=2)]


def test_replaying_its_own_events_does_not_fire_again() -> None:
    shard = _shard()
    _create(shard)
    plan = _run(shard, T0 + timedelta(seconds=1))
    _commit(shard, plan)  # the same events read back from the log
    assert not shard.due(T0 + timedelta(seconds=1, milliseconds=900), limit=100)


@pytest.mark.parametrize(
    ("policy", "fired", "skipped"),
    [
        ("fire_once", [30], [("misfire", 29)]),
        ("skip", [], [("misfire", 30)]),
        ("fire_all", list(range(1, 31)), []),
    ],
)
def test_misfire_policies_after_30_seconds_of_downtime(
    policy: str, fired: list[int], skipped: list[tuple[str, int]]
) -> None:
    shard = _shard()
    _create(shard, misfire=policy)
    plan = _run(shard, T0 + timedelta(seconds=30, milliseconds=500))
    assert _fired(plan) == [T0 + timedelta(seconds=n) for n in fired]
    assert _skipped(plan) == skipped
    # and then it carries on with the next slot
    assert _fired(_run(shard, T0 + timedelta(seconds=31))) == [T0 + timedelta(seconds=31)]


@pytest.mark.parametrize(
    ("policy", "fired", "skipped"),
    [("fire_once", [10], []), ("skip", [], [("misfire", 1)]), ("fire_all", [10], [])],
)
@pytest.mark.parametrize("jitter", [None, timedelta(seconds=2)])
def test_a_one_shot_missed_by_30_seconds_follows_its_misfire_policy(
    policy: str, fired: list[int], skipped: list[tuple[str, int]], jitter: timedelta | None
) -> None:
    shard = _shard()
    schedule = Schedule(at=T0 + timedelta(seconds=10), jitter=jitter)
    _create(shard, "one-shot", schedule=schedule, misfire=policy)
    plan = _run(shard, T0 + timedelta(seconds=40))
    assert _fired(plan) == [T0 + timedelta(seconds=n) for n in fired]
    assert _skipped(plan) == skipped
    assert not _run(shard, T0 + timedelta(seconds=100)).events, "a one-shot fires no more"


def test_a_jittered_one_shot_is_late_from_its_offset_not_from_its_slot() -> None:
    shard = _shard()
    slot = T0 + timedelta(seconds=10)
    jitter = timedelta(minutes=5)
    offset = jitter_offset("jittered", slot, jitter)
    assert offset > timedelta(seconds=2), "this id's offset is more than the grace left"
    grace = {"misfire": "skip", "misfire_grace": timedelta(seconds=5)}
    _create(shard, "jittered", schedule=Schedule(at=slot, jitter=jitter), **grace)
    _create(shard, "plain", schedule=Schedule(at=slot), **grace)
    plan = _run(shard, slot + offset + timedelta(seconds=4))
    assert {e.task_id: type(e.data).__name__ for e in plan.events} == {
        "jittered": "ExecutionScheduled",  # 4 s after its jittered time: within the grace
        "plain": "ExecutionSkipped",  # more than 5 s after its slot: a misfire
    }


def test_fire_all_stops_at_the_catch_up_window() -> None:
    shard = _shard()
    _create(shard, misfire="fire_all", catch_up_window=timedelta(seconds=10))
    plan = _run(shard, T0 + timedelta(seconds=30))
    assert _fired(plan) == [T0 + timedelta(seconds=n) for n in range(20, 31)]
    assert _skipped(plan) == [("misfire", 19)]


def test_a_slot_within_the_grace_is_not_a_misfire() -> None:
    shard = _shard()
    _create(shard, misfire="skip", misfire_grace=timedelta(seconds=5))
    assert _fired(_run(shard, T0 + timedelta(seconds=4))) == [T0 + timedelta(seconds=1)]


def test_paused_slots_are_skipped_and_recorded() -> None:
    shard = _shard()
    _create(shard)
    shard.apply(Event.create("task", TaskPaused(expected_version=1)), PARTITION)
    plan = _run(shard, T0 + timedelta(seconds=1))
    assert _fired(plan) == []
    assert _skipped(plan) == [("paused", 1)]


def _finish(shard: Shard, plan: Plan) -> None:
    for order in plan.orders:
        shard.apply(
            Event.create(
                order.task_id,
                ExecutionSucceeded(
                    execution_id=order.execution_id,
                    attempt=1,
                    scheduled_for=order.scheduled_for,
                    worker_id="w",
                    duration_seconds=0.1,
                ),
            ),
            PARTITION,
        )


def test_overlap_forbid_skips_while_the_last_run_is_unfinished() -> None:
    shard = _shard()
    _create(shard, overlap="forbid")
    first = _run(shard, T0 + timedelta(seconds=1))
    second = _run(shard, T0 + timedelta(seconds=2))
    assert _fired(second) == [] and _skipped(second) == [("overlap", 1)]
    _finish(shard, first)
    assert _fired(_run(shard, T0 + timedelta(seconds=3))) == [T0 + timedelta(seconds=3)]


def test_overlap_replace_cancels_the_running_one() -> None:
    shard = _shard()
    _create(shard, overlap="replace")
    first = _run(shard, T0 + timedelta(seconds=1))
    second = _run(shard, T0 + timedelta(seconds=2))
    cancels = [e.data for e in second.events if isinstance(e.data, CancelRequested)]
    assert [c.execution_id for c in cancels] == [first.orders[0].execution_id]
    assert _fired(second) == [T0 + timedelta(seconds=2)]


def test_run_now_and_retries_fire_when_due_and_once() -> None:
    shard = _shard()
    _create(shard, schedule=Schedule(cron="0 0 1 1 *"))
    request = Event.create("task", RunRequested(), occurred_at=T0 + timedelta(seconds=5))
    shard.apply(request, PARTITION)
    plan = _run(shard, T0 + timedelta(seconds=5))
    [event] = [e.data for e in plan.events if isinstance(e.data, ExecutionScheduled)]
    assert event.trigger is Trigger.MANUAL
    assert event.execution_id == execution_id("task", T0 + timedelta(seconds=5), 1)
    shard.apply(request, PARTITION)  # read back again: already fired
    assert not shard.due(T0 + timedelta(seconds=6), limit=10)

    shard.apply(_failure(event.execution_id, event.scheduled_for), PARTITION)
    retry = RetryScheduled(
        execution_id="e-2",
        failed_execution_id=event.execution_id,
        attempt=2,
        scheduled_for=event.scheduled_for,
        due_at=T0 + timedelta(seconds=9),
    )
    shard.apply(Event.create("task", retry), PARTITION)
    assert not shard.due(T0 + timedelta(seconds=8), limit=10)
    plan = _run(shard, T0 + timedelta(seconds=9))
    assert [(o.execution_id, o.attempt) for o in plan.orders] == [("e-2", 2)]
    # the schedule lag counts from the retry's due time, not from the slot it retries
    assert plan.due == {"e-2": T0 + timedelta(seconds=9)}
    assert plan.orders[0].scheduled_for == event.scheduled_for


def _failure(exec_id: str, slot: datetime, attempt: int = 1) -> Event:
    return Event.create(
        "task",
        ExecutionFailed(
            execution_id=exec_id,
            attempt=attempt,
            scheduled_for=slot,
            worker_id="w",
            duration_seconds=0.1,
            error_type="E",
            error_message="m",
        ),
    )


def _retry_of(exec_id: str, slot: datetime) -> Event:
    return Event.create(
        "task",
        RetryScheduled(
            execution_id=execution_id("task", slot, 2),
            failed_execution_id=exec_id,
            attempt=2,
            scheduled_for=slot,
            due_at=T0 + timedelta(seconds=30),
        ),
    )


def test_a_late_copy_of_a_retry_that_ran_does_not_fire_it_again() -> None:
    """An executor killed after reporting a failure, before committing, leaves the order
    to another: its rerun writes the failure and the retry again, after the retry ran."""
    shard = _shard()
    _create(shard, schedule=Schedule(cron="0 0 1 1 *"))
    shard.apply(Event.create("task", RunRequested(), occurred_at=T0), PARTITION)
    [first] = _run(shard, T0).orders
    shard.apply(_failure(first.execution_id, first.scheduled_for), PARTITION)
    shard.apply(_retry_of(first.execution_id, first.scheduled_for), PARTITION)
    plan = _run(shard, T0 + timedelta(seconds=30))
    assert [o.attempt for o in plan.orders] == [2]
    _finish(shard, plan)
    # the rerun of attempt 1: the same failure and the same retry, with new event ids
    shard.apply(_failure(first.execution_id, first.scheduled_for), PARTITION)
    shard.apply(_retry_of(first.execution_id, first.scheduled_for), PARTITION)
    assert not shard.due(T0 + timedelta(minutes=5), limit=10), "the retry ran already"


def test_a_retry_of_an_execution_never_seen_failing_is_not_fired() -> None:
    shard = _shard()
    _create(shard, schedule=Schedule(cron="0 0 1 1 *"))
    shard.apply(_retry_of("never-scheduled", T0), PARTITION)
    assert not shard.due(T0 + timedelta(minutes=5), limit=10)


@pytest.mark.parametrize("ending", ["timed_out", "cancelled"])
def test_a_timed_out_or_cancelled_execution_no_longer_overlaps(ending: str) -> None:
    shard = _shard()
    _create(shard, overlap="forbid", timeout=timedelta(minutes=10))
    [order] = _run(shard, T0 + timedelta(seconds=1)).orders
    common: dict[str, Any] = {
        "execution_id": order.execution_id,
        "attempt": 1,
        "scheduled_for": order.scheduled_for,
        "worker_id": "w",
        "duration_seconds": 0.1,
    }
    end = (
        ExecutionTimedOut(timeout_seconds=0.1, **common)
        if ending == "timed_out"
        else ExecutionCancelled(reason="asked", **common)
    )
    shard.apply(Event.create("task", end), PARTITION)
    assert _fired(_run(shard, T0 + timedelta(seconds=2))) == [T0 + timedelta(seconds=2)]


def test_a_plan_knows_when_each_fire_was_due() -> None:
    shard = _shard()
    _create(shard)
    plan = _run(shard, T0 + timedelta(seconds=1, milliseconds=300))
    [order] = plan.orders
    assert (
        plan.due
        == {order.execution_id: T0 + timedelta(seconds=1)}
        == {order.execution_id: order.scheduled_for}
    )


def test_a_timer_waits_until_its_partition_is_caught_up() -> None:
    shard = Shard(Topics("t."))
    _create(shard)
    assert not shard.due(T0 + timedelta(seconds=1), limit=10)
    shard.mark_ready(PARTITION)
    assert _fired(_run(shard, T0 + timedelta(seconds=1))) == [T0 + timedelta(seconds=1)]


def test_dst_repeat_is_recorded_as_skipped() -> None:
    shard = _shard()
    created = datetime(2026, 10, 24, 12, tzinfo=UTC)
    _create(shard, at=created, schedule=Schedule(cron="30 2 * * *", timezone="Europe/Berlin"))
    first = _run(shard, datetime(2026, 10, 25, 0, 30, tzinfo=UTC))  # 02:30 CEST
    assert _fired(first) == [datetime(2026, 10, 25, 0, 30, tzinfo=UTC)]
    repeat = _run(shard, datetime(2026, 10, 25, 1, 30, tzinfo=UTC))  # 02:30 CET
    assert _fired(repeat) == [] and _skipped(repeat) == [("dst", 1)]
    assert _fired(_run(shard, datetime(2026, 10, 26, 1, 30, tzinfo=UTC))) == [
        datetime(2026, 10, 26, 1, 30, tzinfo=UTC)
    ]


def test_batches_respect_the_limit() -> None:
    shard = _shard()
    for n in range(25):
        _create(shard, task_id=f"t{n}")
    first = shard.due(T0 + timedelta(seconds=1), limit=10)
    assert len(first.orders) == 10
    _commit(shard, first)
    rest = _run(shard, T0 + timedelta(seconds=1))
    assert len(rest.orders) == 15


def test_the_events_the_scheduler_skips_undecoded_change_nothing() -> None:
    """The scheduler drops IGNORED_EVENT_TYPES by header; applying them must be a no-op."""
    assert IGNORED_EVENT_TYPES == {"ExecutionStarted"}
    shard = _shard()
    _create(shard, overlap="forbid")
    [order] = _run(shard, T0 + timedelta(seconds=1)).orders
    before = (shard.state("task"), shard.next_due(), len(shard))
    shard.apply(
        Event.create(
            "task",
            ExecutionStarted(
                execution_id=order.execution_id,
                attempt=1,
                scheduled_for=order.scheduled_for,
                worker_id="w",
                handler="noop",
            ),
        ),
        PARTITION,
    )
    assert (shard.state("task"), shard.next_due(), len(shard)) == before
    # still unfinished, so the next slot is skipped exactly as without the started event
    assert _skipped(_run(shard, T0 + timedelta(seconds=2))) == [("overlap", 1)]


@pytest.mark.parametrize(
    "schedule",
    [
        Schedule(every=timedelta(seconds=1)),
        Schedule(at=T0 + timedelta(seconds=2)),
        Schedule(every=timedelta(seconds=1), end=T0 + timedelta(seconds=3)),
    ],
    ids=["interval", "one-shot", "interval-with-end"],
)
def test_the_shard_folds_fires_and_skips_as_the_aggregate_does(schedule: Schedule) -> None:
    """Fires and skips take a fast path on the shard's compact form: same state as apply()."""
    shard = _shard()
    created = Event.create(
        "task",
        TaskCreated(task=TaskSpec(name="n", handler="noop", schedule=schedule)),
        occurred_at=T0,
    )
    shard.apply(created, PARTITION)
    folded = aggregate_apply(None, created, PARTITION)
    events: list[Event] = []
    for second in (1, 2, 3, 10):  # 10: past the end, and a misfire for the interval
        plan = _run(shard, T0 + timedelta(seconds=second, milliseconds=5))
        events.extend(plan.events)
        _commit(shard, plan)  # and read back: no change
    assert any(isinstance(e.data, ExecutionScheduled) for e in events)
    for event in events:
        assert isinstance(folded, TaskState)
        after = aggregate_apply(folded, event, PARTITION)
        folded = after if isinstance(after, TaskState) else folded
    assert shard.state("task") == folded


def test_planned_orders_and_events_round_trip_through_their_wire_form() -> None:
    """What the scheduler produces decodes back to the same orders and events."""
    shard = _shard()
    _create(shard, params={"n": 1, "nested": {"a": [1, 2]}}, timeout=timedelta(seconds=5))
    _create(shard, "one-shot", schedule=Schedule(at=T0 + timedelta(seconds=1)))
    plan = shard.due(T0 + timedelta(seconds=1, milliseconds=5), limit=100)
    assert len(plan.orders) == 2 and len(plan.events) == 2
    for order in plan.orders:
        assert decode_work_order(encode_work_order(order)) == order
    for event in plan.events:
        assert decode_event(encode_event(event)) == event


def test_schedules_that_differ_only_by_start_share_one_object() -> None:
    """A task's start is kept apart from its (shared) schedule and put back exactly."""
    shard = _shard()
    berlin = timezone(timedelta(hours=1))
    starts = [T0 + timedelta(seconds=n, microseconds=7) for n in range(3)]
    starts.append(datetime(2030, 1, 1, 13, 0, 5, tzinfo=berlin))  # not UTC: kept as is
    specs = {}
    for n, start in enumerate(starts):
        spec = TaskSpec(
            name=f"t{n}",
            handler="noop",
            schedule=Schedule(every=timedelta(minutes=1), start=start, jitter=None),
        )
        specs[f"t{n}"] = spec
        shard.apply(Event.create(f"t{n}", TaskCreated(task=spec), occurred_at=T0), PARTITION)
    for task_id, spec in specs.items():
        state = shard.state(task_id)
        assert state is not None
        assert state.spec == spec
        assert state.spec.schedule.start == spec.schedule.start
        assert state.spec.schedule.start.utcoffset() == spec.schedule.start.utcoffset()
    assert len({id(task.schedule) for task in shard._tasks.values()}) == 1
    assert isinstance(shard._tasks["t0"].start, float)
    assert not isinstance(shard._tasks["t3"].start, float)  # +01:00 is kept
    fired = _run(shard, T0 + timedelta(seconds=10))
    assert sorted(_fired(fired)) == sorted(starts)
    [again] = _fired(_run(shard, starts[0] + timedelta(minutes=1)))
    assert again == starts[0] + timedelta(minutes=1)


def test_a_start_parsed_from_json_is_kept_as_an_epoch() -> None:
    """pydantic parses ``...Z`` into its own zero-offset zone: same instant, same wire form."""
    shard = _shard()
    schedule = Schedule.model_validate_json(b'{"every": "1m", "start": "2030-01-01T12:00:00.5Z"}')
    spec = TaskSpec(name="n", handler="noop", schedule=schedule)
    shard.apply(Event.create("task", TaskCreated(task=spec), occurred_at=T0), PARTITION)
    assert isinstance(shard._tasks["task"].start, float)
    state = shard.state("task")
    assert state is not None
    assert state.spec == spec
    assert state.spec.model_dump_json() == spec.model_dump_json()
    assert _fired(_run(shard, T0 + timedelta(seconds=1))) == [T0 + timedelta(seconds=0.5)]
