"""What one core instance schedules: the tasks of its partitions, as timers. No I/O.

The :class:`Shard` folds ``task-events`` (through :func:`taskstream.core.aggregate.apply`, like the
store), keeps one timer per task and per pending run in a heap, and when asked what is
due, returns a :class:`Plan`: the events and work orders to append in one transaction.
Once the transaction commits, the scheduler feeds the plan's events back through
:meth:`Shard.apply`, exactly as it will read them back from the log, so the in-memory
state never runs ahead of, or behind, the log.

Per slot, in this order:

1. a ``SKIP_DST`` slot is recorded as skipped (reason ``dst``);
2. a paused task's slot is skipped (reason ``paused``);
3. a slot later than the task's ``misfire_grace`` (downtime, failover) goes to the
   misfire policy with every other slot missed up to now: ``fire_once`` fires the last
   and skips the rest, ``fire_all`` fires those within ``catch_up_window`` and skips the
   rest, ``skip`` skips them all; skipped runs are one event per run of slots, with a count;
4. a slot due while an execution of the task is unfinished goes to the overlap policy:
   ``allow`` fires, ``forbid`` skips (reason ``overlap``), ``replace`` asks the running
   execution to cancel and fires;
5. otherwise the slot fires.

**Quarantine.** Nothing about one task may stop the shard: an exception while folding an
event of a task, computing its next slot or planning its fire is caught at that task. The
task's timers are dropped and the next plan carries a ``TaskQuarantined`` event naming
the error (its id is deterministic: the task, its last change, ``scheduler``), so a
restart that meets the same record again writes the same event. Once that event is
folded the task is ``quarantined`` and not evaluated again until a change lifts it.

Memory: a task is kept in its compact form (:mod:`taskstream.core.compact_task`), and a heap entry
is ``(due epoch, task or execution id, kind)``, sharing those objects. Equal due times pop in
the order of the id. :meth:`Shard.state` rebuilds the :class:`TaskState` on demand, and so
does :meth:`Shard.apply` before each event that :func:`taskstream.core.aggregate.folds`, so the
aggregate stays the one place that decides transitions.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from taskstream.core.aggregate import (
    BackfillCursor,
    PendingRunState,
    TaskState,
    TaskStatus,
    after_slot,
    apply,
    folds,
    pending_run,
    slot_folded,
)
from taskstream.core.compact_task import (
    CompactTask,
    TaskCompactor,
    is_one_shot,
    jitter_of,
    schedule_of,
    stamp,
    time_of,
    time_or_none,
    unpack,
)
from taskstream.core.store import Snapshot
from taskstream.infra.settings import Topics
from taskstream.schemas import (
    BackfillFinished,
    BackfillOverlap,
    BackfillState,
    BackfillStep,
    CancelRequested,
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
    MisfirePolicy,
    OverlapPolicy,
    RetryScheduled,
    SkipReason,
    TaskQuarantined,
    Trigger,
    WorkOrder,
    execution_id,
    quarantine_event_id,
)
from taskstream.schemas.schedules import (
    SlotKind,
    backfill_slot,
    iter_slots,
    jitter_offset,
    next_slot,
)

__all__ = ["COMPONENT", "IGNORED_EVENT_TYPES", "MAX_CATCH_UP_FIRES", "Plan", "Shard"]

COMPONENT = "scheduler"
"""The ``component`` of the quarantines the shard decides."""
_MAX_ERROR_MESSAGE = 1000
"""Characters of an exception's message kept in a ``TaskQuarantined``."""

IGNORED_EVENT_TYPES = frozenset({ExecutionStarted.TYPE})
"""Events :meth:`Shard.apply` does nothing with: the scheduler skips them undecoded (by
their ``event-type`` header). One of the four records of every execution."""

MAX_CATCH_UP_FIRES = 10_000
"""At most this many missed slots of one task fire at once under ``fire_all``."""
_MAX_SLOTS_WALKED = 1_000_000
TERMINAL = (ExecutionSucceeded, ExecutionFailed, ExecutionTimedOut, ExecutionCancelled)
FAILURES = (ExecutionFailed, ExecutionTimedOut)
"""Outcomes the executor follows with a decision: ``RetryScheduled`` or
``ExecutionDeadLettered``, in the same transaction."""
MAX_UNDECIDED = 100_000
"""Failures remembered while their decision is not read (it is the next record of the
partition but for other writers' records, so this bounds only a log written by hand)."""
BACKFILL_HOLD_SECONDS = 1.0
"""How often a backfill with ``overlap: forbid`` looks again whether the task still runs."""

_TASK = 0
_RUN = 1
"""The kinds of heap entries: a task's next slot, or a pending run (retry, run-now)."""


@dataclass
class Plan:
    """Events for ``task-events`` and work orders for the execution topics."""

    events: list[Event] = field(default_factory=list)
    orders: list[WorkOrder] = field(default_factory=list)
    partitions: dict[str, int] = field(default_factory=dict)
    """The partition of each task in the plan."""
    slots: int = 0
    """How many timers the plan handles (for batch sizing)."""
    due: dict[str, datetime] = field(default_factory=dict)
    """When each fired execution was due, by execution id: its slot, or a retry's ``due_at``
    (the schedule lag is measured from this, not from ``scheduled_for``)."""

    def __bool__(self) -> bool:
        return bool(self.events)


class Shard:
    """The timers of the partitions one instance owns."""

    def __init__(self, topics: Topics, snapshot: Snapshot | None = None) -> None:
        self._topics = topics
        self._tasks: dict[str, CompactTask] = {}
        self._runs: dict[str, PendingRunState] = {}
        self._undecided: dict[str, None] = {}
        """Executions whose first outcome was a failure, until their decision: only that
        failure asks for a retry (see :meth:`apply`), in insertion order."""
        self._finished_backfills: dict[str, None] = {}
        """Backfills that ended (cancelled, mostly): a step of one still on the way is
        dropped. Bounded like ``_undecided``: the newest :data:`MAX_UNDECIDED`."""
        self._ready: set[int] = set()
        self._heap: list[tuple[float, str, int]] = []
        """``(due epoch, id, kind)``: ties are broken by the id, then the kind."""
        self._compactor = TaskCompactor()
        self._quarantines: dict[str, Event] = {}
        """``TaskQuarantined`` events decided and not yet planned, by task id."""
        self._quarantined: set[str] = set()
        """Tasks whose status is ``quarantined``."""
        if snapshot is not None:
            for state in snapshot.tasks:
                self._tasks[state.task_id] = self._compactor.compact(state)
            for task_id, exec_id, scheduled_for in snapshot.active:
                task = self._tasks.get(task_id)
                if task is not None:
                    if task.active is None:
                        task.active = {}
                    task.active[exec_id] = scheduled_for
            for run in snapshot.runs:
                self._runs[run.execution_id] = run
            self._undecided.update(dict.fromkeys(snapshot.undecided))
            self._finished_backfills.update(dict.fromkeys(snapshot.finished_backfills))
            self._compactor.maybe_sweep(self._tasks.values())

    # -- reading --------------------------------------------------------------------

    @property
    def ready_partitions(self) -> set[int]:
        return set(self._ready)

    def __len__(self) -> int:
        return len(self._tasks)

    def state(self, task_id: str) -> TaskState | None:
        """The task as the aggregate sees it (rebuilt from the compact form)."""
        task = self._tasks.get(task_id)
        return self._compactor.state(task) if task else None

    def next_due(self) -> float | None:
        """The epoch time of the earliest timer (possibly stale), or None (now, with a
        quarantine to plan)."""
        if self._quarantines:
            return 0.0
        return self._heap[0][0] if self._heap else None

    @property
    def quarantined(self) -> int:
        """How many tasks of the shard are quarantined."""
        return len(self._quarantined)

    # -- folding the log --------------------------------------------------------------

    def mark_ready(self, partition: int) -> None:
        """The partition's log has been read to its end: arm its timers."""
        if partition in self._ready:
            return
        self._ready.add(partition)
        for task in self._tasks.values():
            if task.partition == partition:
                self._arm(task)
        for run in self._runs.values():
            if run.partition == partition:
                self._push_run(run)

    def apply(self, event: Event, partition: int) -> None:
        """Fold one event of an owned partition (idempotent).

        An exception while folding it quarantines the event's task (see the module).
        """
        try:
            self._apply(event, partition)
        except Exception as exc:
            task = self._tasks.get(event.task_id)
            if task is None:
                raise  # no task to set aside: the caller decides about the record
            self._quarantine(task, "folding", exc, event)

    def _apply(self, event: Event, partition: int) -> None:
        data = event.data
        task = self._tasks.get(event.task_id)
        slot = slot_folded(event) if task is not None else None
        if task is not None and slot is not None:
            # A fire or a skip (most events by far): fold it on the compact form, without
            # building the TaskState that apply() would take.
            previous = time_or_none(task.last_slot)
            status, last_slot = after_slot(
                task.status, schedule_of(task), time_of(task.anchor), previous, slot
            )
            if last_slot != previous or status is not task.status:
                task.status = status
                task.last_slot = None if last_slot is None else stamp(last_slot)
                self._arm(task)
        elif folds(event):  # otherwise apply() would return None: no need to rebuild the state
            if task is None:
                outcome = apply(None, event, partition)
                if isinstance(outcome, TaskState):
                    task = self._tasks[outcome.task_id] = self._compactor.compact(outcome)
                    self._arm(task)
                    self._compactor.maybe_sweep(self._tasks.values())
            else:
                before = self._compactor.state(task)
                outcome = apply(before, event, partition)
                if isinstance(outcome, TaskState) and outcome != before:
                    self._compactor.refresh(task, before, outcome)
                    self._arm(task)
                    self._compactor.maybe_sweep(self._tasks.values())
        if task is None:
            return
        if isinstance(data, ExecutionScheduled):
            if task.active is None:
                task.active = {}
            task.active[data.execution_id] = data.scheduled_for.astimezone(UTC)
            self._runs.pop(data.execution_id, None)
        elif isinstance(data, TERMINAL):
            if task.active is not None and data.execution_id in task.active:
                del task.active[data.execution_id]
                if not task.active:
                    task.active = None
                if isinstance(data, FAILURES):
                    self._await_decision(data.execution_id)
        elif isinstance(data, ExecutionDeadLettered):
            self._undecided.pop(data.execution_id, None)
        elif isinstance(data, BackfillFinished):
            self._finish_backfill(data.backfill_id)
        else:
            if isinstance(data, BackfillStep) and data.backfill_id in self._finished_backfills:
                return  # a step written with a fire that raced the backfill's cancel
            if isinstance(data, RetryScheduled):
                if data.failed_execution_id not in self._undecided:
                    return  # a late copy: the failed attempt was rerun and decided already
                del self._undecided[data.failed_execution_id]
            run = pending_run(event, partition)
            if run is not None and run.execution_id not in self._runs:
                fired = task.active is not None and run.execution_id in task.active
                if not fired:
                    self._runs[run.execution_id] = run
                    if partition in self._ready:
                        self._push_run(run)

    def _finish_backfill(self, backfill_id: str) -> None:
        finished = self._finished_backfills
        finished[backfill_id] = None
        if len(finished) > MAX_UNDECIDED:
            del finished[next(iter(finished))]
        for ident, run in list(self._runs.items()):
            if run.backfill is not None and run.backfill.backfill_id == backfill_id:
                del self._runs[ident]  # its heap entry goes stale

    def _await_decision(self, failed: str) -> None:
        undecided = self._undecided
        undecided[failed] = None
        if len(undecided) > MAX_UNDECIDED:
            del undecided[next(iter(undecided))]

    # -- timers -----------------------------------------------------------------------

    def _push_run(self, run: PendingRunState) -> None:
        heapq.heappush(self._heap, (run.due_at.timestamp(), run.execution_id, _RUN))

    def _arm(self, task: CompactTask) -> None:
        task.due = None  # any entry already in the heap is stale from here on
        if task.status is TaskStatus.QUARANTINED:
            self._quarantined.add(task.task_id)
            self._quarantines.pop(task.task_id, None)  # folded: nothing left to plan
            task.next = None
            return
        self._quarantined.discard(task.task_id)
        if task.status in (TaskStatus.DELETED, TaskStatus.COMPLETED):
            task.next = None
            return
        if task.partition not in self._ready:
            task.next = None  # mark_ready() arms it: no need to compute the slot twice
            return
        try:
            schedule = schedule_of(task)
            slot = next_slot(
                schedule, anchor=time_of(task.anchor), after=time_or_none(task.last_slot)
            )
            delay = None if slot is None else jitter_offset(task.task_id, slot.at, schedule.jitter)
            due_at = None if slot is None or delay is None else (slot.at + delay).timestamp()
        except Exception as exc:
            self._quarantine(task, "computing its next slot", exc)
            return
        if slot is None:
            task.next = None
            return
        at = task.next = stamp(slot.at)
        task.dst = slot.kind is SlotKind.SKIP_DST
        assert due_at is not None
        due = at if isinstance(at, float) and not delay else due_at
        task.due = due
        heapq.heappush(self._heap, (due, task.task_id, _TASK))

    def _quarantine(
        self, task: CompactTask, doing: str, exc: Exception, event: Event | None = None
    ) -> None:
        """Drop the task's timers; the next plan carries its ``TaskQuarantined``."""
        task.next = task.due = None
        if task.task_id in self._quarantines:
            return
        _, _, change = unpack(task.details)
        message = str(exc) or repr(exc)
        data = TaskQuarantined(
            component=COMPONENT,
            error_type=type(exc).__name__,
            error_message=f"{doing}: {message}"[:_MAX_ERROR_MESSAGE],
            change_event_id=change,
            event_id=None if event is None else event.id,
        )
        self._quarantines[task.task_id] = Event.create(
            task.task_id, data, event_id=quarantine_event_id(task.task_id, change, COMPONENT)
        )

    def rearm(self, plan: Plan) -> None:
        """A plan was not committed: arm its tasks and runs again."""
        for event in plan.events:
            if isinstance(event.data, TaskQuarantined):
                self._quarantines.setdefault(event.task_id, event)
        for task_id in plan.partitions:
            task = self._tasks.get(task_id)
            if task is not None:
                self._arm(task)
        for order in plan.orders:
            run = self._runs.get(order.execution_id)
            if run is not None:
                self._push_run(run)

    # -- planning ---------------------------------------------------------------------

    def due(self, now: datetime, limit: int) -> Plan:
        """Everything due at ``now``, as one plan of at most ``limit`` timers."""
        plan = Plan()
        self._plan_quarantines(plan, limit)
        epoch = now.timestamp()
        heap = self._heap
        while heap and heap[0][0] <= epoch and plan.slots < limit:
            due, ident, kind = heapq.heappop(heap)
            if kind == _TASK:
                task = self._tasks.get(ident)
                if task is None or task.due is None or task.due != due:
                    continue  # stale
                if task.partition not in self._ready:
                    continue
                planned = len(plan.events), len(plan.orders)
                try:
                    self._plan_task(task, now, plan)
                except Exception as exc:
                    del plan.events[planned[0] :], plan.orders[planned[1] :]
                    self._quarantine(task, "planning its slot", exc)
                task.next = task.due = None  # until the plan's events come back through apply()
            else:
                run = self._runs.get(ident)
                if run is None or run.partition not in self._ready:
                    continue
                planned = len(plan.events), len(plan.orders)
                try:
                    self._plan_run(run, plan, now)
                except Exception as exc:
                    del plan.events[planned[0] :], plan.orders[planned[1] :]
                    self._runs.pop(run.execution_id, None)
                    owner = self._tasks.get(run.task_id)
                    if owner is None:
                        raise
                    self._quarantine(owner, f"planning run {run.execution_id}", exc)
            plan.slots += 1
        self._plan_quarantines(plan, limit)
        return plan

    def _plan_quarantines(self, plan: Plan, limit: int) -> None:
        for task_id in list(self._quarantines):
            if plan.slots >= limit:
                return
            task = self._tasks.get(task_id)
            event = self._quarantines.pop(task_id)
            if task is None or task.partition not in self._ready:
                continue
            plan.events.append(event)
            plan.partitions[task_id] = task.partition
            plan.slots += 1

    def _plan_task(self, task: CompactTask, now: datetime, plan: Plan) -> None:
        assert task.next is not None
        slot = time_of(task.next)
        policy = task.policy
        task_id = task.task_id
        plan.partitions[task_id] = task.partition
        if task.dst:
            self._skip(
                plan,
                task_id,
                [slot],
                SkipReason.DST,
                "the local time repeated when the clock went back; it ran once",
            )
            return
        late = now - (slot + jitter_offset(task_id, slot, jitter_of(task)))
        if late > policy.misfire_grace:
            self._plan_misfire(task, slot, now, plan)
            return
        if task.status is TaskStatus.PAUSED:
            self._skip(plan, task_id, [slot], SkipReason.PAUSED, "the task is paused")
            return
        running = _unfinished(task, now)
        if running:
            if policy.overlap is OverlapPolicy.FORBID:
                self._skip(
                    plan,
                    task_id,
                    [slot],
                    SkipReason.OVERLAP,
                    f"{len(running)} earlier execution(s) still running",
                )
                return
            if policy.overlap is OverlapPolicy.REPLACE:
                for exec_id in running:
                    self._event(
                        plan,
                        task_id,
                        CancelRequested(
                            execution_id=exec_id, reason="replaced by a newer run (overlap=replace)"
                        ),
                    )
        self._fire(plan, task, slot, Trigger.SCHEDULE, 1, execution_id(task_id, slot, 1))

    def _plan_misfire(self, task: CompactTask, first: datetime, now: datetime, plan: Plan) -> None:
        policy = task.policy
        task_id = task.task_id
        # a one-shot's one slot is ``first`` (not fired yet, or it would not be due)
        missed = [] if is_one_shot(task) else _missed_slots(task, now)
        if not missed:
            missed = [first]
        if task.status is TaskStatus.PAUSED:
            self._skip(plan, task_id, missed, SkipReason.PAUSED, "the task is paused")
            return
        if policy.misfire is MisfirePolicy.SKIP:
            fire: list[datetime] = []
        elif policy.misfire is MisfirePolicy.FIRE_ONCE:
            fire = missed[-1:]
        else:
            horizon = now - policy.catch_up_window
            fire = [at for at in missed if at >= horizon][-MAX_CATCH_UP_FIRES:]
        skipped = missed[: len(missed) - len(fire)]
        if skipped:
            self._skip(
                plan,
                task_id,
                skipped,
                SkipReason.MISFIRE,
                f"missed while no scheduler ran (misfire policy {policy.misfire.value})",
            )
        for at in fire:
            self._fire(plan, task, at, Trigger.SCHEDULE, 1, execution_id(task_id, at, 1))

    def _plan_run(self, run: PendingRunState, plan: Plan, now: datetime) -> None:
        task = self._tasks.get(run.task_id)
        if task is None or task.status is TaskStatus.DELETED:
            self._runs.pop(run.execution_id, None)
            return
        cursor = run.backfill
        if cursor is not None:
            if cursor.backfill_id in self._finished_backfills:
                self._runs.pop(run.execution_id, None)  # cancelled: its steps fire nothing
                return
            if cursor.overlap is BackfillOverlap.FORBID and task.active:
                wait = now.timestamp() + BACKFILL_HOLD_SECONDS  # until nothing of it runs
                heapq.heappush(self._heap, (wait, run.execution_id, _RUN))
                return
        plan.partitions[run.task_id] = run.partition
        self._fire(
            plan,
            task,
            run.scheduled_for,
            run.trigger,
            run.attempt,
            run.execution_id,
            run.due_at,
            run.run_key,
        )
        if cursor is not None:
            self._plan_backfill_step(plan, task, run, cursor, now)

    def _plan_backfill_step(
        self,
        plan: Plan,
        task: CompactTask,
        run: PendingRunState,
        cursor: BackfillCursor,
        now: datetime,
    ) -> None:
        """With the fire of a backfill's slot, its next slot (or its end), in the same
        transaction: the cursor is on the log, so a new owner goes on from there."""
        following = backfill_slot(
            schedule_of(task), anchor=time_of(task.anchor), after=run.scheduled_for
        )
        if following is None or following > cursor.end:
            finished = BackfillFinished(
                backfill_id=cursor.backfill_id, state=BackfillState.COMPLETED, fired=cursor.index
            )
            self._event(plan, task.task_id, finished)
            return
        step = BackfillStep(
            backfill_id=cursor.backfill_id,
            end=cursor.end,
            overlap=cursor.overlap,
            rate=cursor.rate,
            total=cursor.total,
            slot=following,
            index=cursor.index + 1,
            due_at=now + timedelta(seconds=1 / cursor.rate),
        )
        self._event(plan, task.task_id, step)

    # -- building events ----------------------------------------------------------------

    def _event(self, plan: Plan, task_id: str, data: EventData) -> None:
        plan.events.append(Event.create(task_id, data))

    def _skip(
        self, plan: Plan, task_id: str, slots: list[datetime], reason: SkipReason, detail: str
    ) -> None:
        self._event(
            plan,
            task_id,
            ExecutionSkipped(
                scheduled_for=slots[0],
                reason=reason,
                detail=detail,
                count=len(slots),
                last_scheduled_for=slots[-1] if len(slots) > 1 else None,
            ),
        )

    def _fire(
        self,
        plan: Plan,
        task: CompactTask,
        slot: datetime,
        trigger: Trigger,
        attempt: int,
        exec_id: str,
        due: datetime | None = None,
        run_key: str | None = None,
    ) -> None:
        policy = task.policy
        plan.due[exec_id] = slot if due is None else due
        name, params, _ = unpack(task.details)
        plan.orders.append(
            WorkOrder(
                execution_id=exec_id,
                task_id=task.task_id,
                task_name=name,
                handler=policy.handler,
                params=params,
                attempt=attempt,
                scheduled_for=slot,
                priority=policy.priority,
                queue=policy.queue,
                timeout=policy.timeout,
                retry=policy.retry,
                run_key=run_key,
            )
        )
        self._event(
            plan,
            task.task_id,
            ExecutionScheduled(
                execution_id=exec_id,
                attempt=attempt,
                scheduled_for=slot,
                topic=self._topics.execution(policy.queue, policy.priority.value),
                queue=policy.queue,
                priority=policy.priority,
                trigger=trigger,
                run_key=run_key,
            ),
        )


def _missed_slots(task: CompactTask, now: datetime) -> list[datetime]:
    """The slots after the task's last one up to ``now`` (at most ``_MAX_SLOTS_WALKED``
    walked), whatever the schedule; only the firing ones, not DST skips."""
    missed: list[datetime] = []
    for walked, slot in enumerate(
        iter_slots(
            schedule_of(task),
            anchor=time_of(task.anchor),
            after=time_or_none(task.last_slot),
            until=now,
        )
    ):
        if walked >= _MAX_SLOTS_WALKED:
            break
        if slot.kind is SlotKind.FIRE:
            missed.append(slot.at)
    return missed


def _unfinished(task: CompactTask, now: datetime) -> list[str]:
    """Executions of the task still running, ignoring ones too old to be alive.

    An execution whose end was never recorded (its executor died with it) stops
    counting after twice the task's timeout (one hour if it has none) plus a minute.
    """
    if not task.active:
        return []
    limit = (task.policy.timeout or timedelta(hours=1)) * 2 + timedelta(minutes=1)
    return sorted(exec_id for exec_id, slot in task.active.items() if now - slot < limit)
