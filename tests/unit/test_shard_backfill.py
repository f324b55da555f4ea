"""A backfill in the scheduler's shard: each slot of the range once, paced, across failover.

The shard is driven over a simulated clock from one timer to the next; every plan's
events are folded back, as the scheduler does after a commit.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from taskstream.core.aggregate import backfill_run_key
from taskstream.core.shard import Plan, Shard
from taskstream.infra.settings import Topics
from taskstream.schemas import (
    BackfillFinished,
    BackfillOverlap,
    BackfillRequested,
    BackfillState,
    BackfillStep,
    Event,
    ExecutionScheduled,
    ExecutionSucceeded,
    Schedule,
    TaskCreated,
    TaskSpec,
    Trigger,
    execution_id,
)

TASK = "7b4f3c2e-0000-4000-8000-000000000001"
T0 = datetime(2030, 1, 2, 0, 0, 30, tzinfo=UTC)
DAY = datetime(2030, 1, 1, tzinfo=UTC)
HOURLY = Schedule(cron="0 * * * *")


class Driven:
    """A shard, the log it has written and folded, and a simulated clock."""

    def __init__(self, log: list[Event] | None = None) -> None:
        self.shard = Shard(Topics("t."))
        self.shard.mark_ready(0)
        self.log: list[Event] = []
        self.fired_at: dict[str, datetime] = {}
        """When (on the simulated clock) each execution was fired."""
        self.now = T0
        for event in log or ():
            self.fold(event)

    def fold(self, event: Event) -> None:
        self.shard.apply(event, 0)
        self.log.append(event)

    def step(self, until: datetime) -> Plan | None:
        """Advance to the next timer (if before ``until``) and commit its plan."""
        due = self.shard.next_due()
        if due is None or due > until.timestamp():
            return None
        self.now = max(self.now, datetime.fromtimestamp(due, UTC))
        plan = self.shard.due(self.now, limit=100)
        for event in plan.events:
            if isinstance(event.data, ExecutionScheduled):
                self.fired_at[event.data.execution_id] = self.now
            self.fold(event)
        return plan

    def backfilled(self) -> list[tuple[datetime, str, datetime]]:
        """(slot, execution id, fire time) of every backfill fire on the log."""
        return [
            (e.data.scheduled_for, e.data.execution_id, self.fired_at[e.data.execution_id])
            for e in self.log
            if isinstance(e.data, ExecutionScheduled) and e.data.trigger is Trigger.BACKFILL
        ]

    def finished(self) -> list[BackfillFinished]:
        return [e.data for e in self.log if isinstance(e.data, BackfillFinished)]


def _requested(backfill_id: str = "b1", **plan: object) -> Event:
    fields: dict[str, object] = {
        "backfill_id": backfill_id,
        "start": DAY,
        "end": DAY + timedelta(hours=23),
        "first_slot": DAY,
        "total": 24,
        "rate": 5.0,
        **plan,
    }
    return Event.create(TASK, BackfillRequested.model_validate(fields), occurred_at=T0)


def _created() -> Event:
    spec = TaskSpec(name="hourly", handler="noop", schedule=HOURLY)
    return Event.create(TASK, TaskCreated(task=spec), occurred_at=T0 - timedelta(seconds=30))


def test_every_slot_of_the_range_fires_once_paced_then_the_backfill_finishes() -> None:
    driven = Driven([_created(), _requested()])
    until = T0 + timedelta(minutes=5)
    while not driven.finished() and driven.step(until) is not None:
        pass
    fired = driven.backfilled()
    slots = [slot for slot, _, _ in fired]
    assert slots == [DAY + timedelta(hours=h) for h in range(24)]
    key = backfill_run_key("b1")
    assert [ident for _, ident, _ in fired] == [execution_id(TASK, s, 1, key) for s in slots]
    assert all(ident != execution_id(TASK, s, 1) for s, ident, _ in fired)  # not the schedule's
    gaps = [(b - a).total_seconds() for (_, _, a), (_, _, b) in itertools.pairwise(fired)]
    assert min(gaps) >= 0.2 - 1e-6, "faster than the rate of 5 slots/s"
    assert driven.finished() == [
        BackfillFinished(backfill_id="b1", state=BackfillState.COMPLETED, fired=24)
    ]
    steps = [e.data for e in driven.log if isinstance(e.data, BackfillStep)]
    assert [step.index for step in steps] == list(range(2, 25))


def test_a_new_owner_replaying_the_log_goes_on_from_the_cursor() -> None:
    first = Driven([_created(), _requested()])
    for _ in range(10):  # the first owner fires some of the range, then dies
        first.step(T0 + timedelta(minutes=5))
    fired_before = first.backfilled()
    assert 0 < len(fired_before) < 24
    second = Driven(first.log)  # a new owner folds the partition from the log
    second.fired_at = dict(first.fired_at)
    second.now = first.now + timedelta(seconds=30)
    while not second.finished() and second.step(second.now + timedelta(minutes=5)) is not None:
        pass
    ids = [ident for _, ident, _ in second.backfilled()]
    assert len(ids) == len(set(ids)) == 24, "each slot of the range once, across the failover"


def test_overlap_forbid_waits_for_the_running_slot_to_end() -> None:
    driven = Driven([_created(), _requested(overlap=BackfillOverlap.FORBID, rate=100.0)])
    until = T0 + timedelta(minutes=1)
    driven.step(until)
    assert len(driven.backfilled()) == 1
    for _ in range(5):  # the first slot's execution still runs: nothing more starts
        driven.step(driven.now + timedelta(seconds=1))
    assert len(driven.backfilled()) == 1
    slot, ident, _ = driven.backfilled()[0]
    ended = ExecutionSucceeded(
        execution_id=ident, attempt=1, scheduled_for=slot, worker_id="w", duration_seconds=0.1
    )
    driven.fold(Event.create(TASK, ended, occurred_at=driven.now))
    driven.step(driven.now + timedelta(seconds=2))
    assert len(driven.backfilled()) == 2


def test_a_cancelled_backfill_fires_no_further_slot_even_from_a_late_step() -> None:
    driven = Driven([_created(), _requested()])
    for _ in range(3):
        driven.step(T0 + timedelta(minutes=1))
    count = len(driven.backfilled())
    assert count >= 1
    cancelled = BackfillFinished(backfill_id="b1", state=BackfillState.CANCELLED, fired=count)
    driven.fold(Event.create(TASK, cancelled, occurred_at=driven.now))
    late = BackfillStep(
        backfill_id="b1",
        end=DAY + timedelta(hours=23),
        total=24,
        rate=5.0,
        slot=DAY + timedelta(hours=20),
        index=21,
        due_at=driven.now,
    )
    driven.fold(Event.create(TASK, late, occurred_at=driven.now))
    for _ in range(10):
        driven.step(driven.now + timedelta(seconds=10))
    assert len(driven.backfilled()) == count


def test_an_every_schedule_extends_its_grid_back_into_the_range() -> None:
    every = Schedule(every=timedelta(minutes=90))
    spec = TaskSpec(name="every", handler="noop", schedule=every)
    created = Event.create(TASK, TaskCreated(task=spec), occurred_at=T0)  # the grid's anchor
    first = T0 - timedelta(hours=6)  # on the grid: 4 periods before the anchor
    driven = Driven(
        [
            created,
            _requested(
                start=first, first_slot=first, end=T0 - timedelta(minutes=1), total=4, rate=50.0
            ),
        ]
    )
    while not driven.finished() and driven.step(T0 + timedelta(minutes=1)) is not None:
        pass
    assert [slot for slot, _, _ in driven.backfilled()] == [
        first + timedelta(minutes=90 * k) for k in range(4)
    ]
