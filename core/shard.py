"""What one core instance schedules: the tasks of its partitions, as timers. No I/O.

The :class:`Shard` folds ``task-events`` (through :func:`core.aggregate.apply`, like the
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
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from core.aggregate import PendingRunState, Rejected, TaskState, TaskStatus, apply, pending_run
from core.schedules import Slot, SlotKind, iter_slots, jitter_offset, next_slot
from core.store import Snapshot
from schemas import (
    CancelRequested,
    Event,
    EventData,
    ExecutionFailed,
    ExecutionScheduled,
    ExecutionSkipped,
    ExecutionSucceeded,
    MisfirePolicy,
    OverlapPolicy,
    SkipReason,
    Trigger,
    WorkOrder,
    execution_id,
)
from taskstream.infra.settings import Topics

__all__ = ["MAX_CATCH_UP_FIRES", "Plan", "Shard"]

MAX_CATCH_UP_FIRES = 10_000
"""At most this many missed slots of one task fire at once under ``fire_all``."""
_MAX_SLOTS_WALKED = 1_000_000
TERMINAL = (ExecutionSucceeded, ExecutionFailed)


@dataclass
class Plan:
    """Events for ``task-events`` and work orders for the execution topics."""

    events: list[Event] = field(default_factory=list)
    orders: list[WorkOrder] = field(default_factory=list)
    partitions: dict[str, int] = field(default_factory=dict)
    """The partition of each task in the plan."""
    slots: int = 0
    """How many timers the plan handles (for batch sizing)."""

    def __bool__(self) -> bool:
        return bool(self.events)


@dataclass(slots=True)
class _Task:
    state: TaskState
    active: dict[str, datetime] = field(default_factory=dict)
    """Unfinished executions: id -> scheduled for."""
    next: Slot | None = None
    generation: int = 0


class Shard:
    """The timers of the partitions one instance owns."""

    def __init__(self, topics: Topics, snapshot: Snapshot | None = None) -> None:
        self._topics = topics
        self._tasks: dict[str, _Task] = {}
        self._runs: dict[str, PendingRunState] = {}
        self._ready: set[int] = set()
        self._heap: list[tuple[float, int, str, int]] = []
        self._sequence = itertools.count()
        if snapshot is not None:
            for state in snapshot.tasks:
                self._tasks[state.task_id] = _Task(state)
            for task_id, exec_id, scheduled_for in snapshot.active:
                if task_id in self._tasks:
                    self._tasks[task_id].active[exec_id] = scheduled_for
            for run in snapshot.runs:
                self._runs[run.execution_id] = run

    # -- reading --------------------------------------------------------------------

    @property
    def ready_partitions(self) -> set[int]:
        return set(self._ready)

    def __len__(self) -> int:
        return len(self._tasks)

    def state(self, task_id: str) -> TaskState | None:
        task = self._tasks.get(task_id)
        return task.state if task else None

    def next_due(self) -> float | None:
        """The epoch time of the earliest timer (possibly stale), or None."""
        return self._heap[0][0] if self._heap else None

    # -- folding the log --------------------------------------------------------------

    def mark_ready(self, partition: int) -> None:
        """The partition's log has been read to its end: arm its timers."""
        if partition in self._ready:
            return
        self._ready.add(partition)
        for task in self._tasks.values():
            if task.state.partition == partition:
                self._arm(task)
        for run in self._runs.values():
            if run.partition == partition:
                self._push(run.due_at, f"run:{run.execution_id}", 0)

    def apply(self, event: Event, partition: int) -> None:
        """Fold one event of an owned partition (idempotent)."""
        data = event.data
        task = self._tasks.get(event.task_id)
        outcome = apply(task.state if task else None, event, partition)
        if outcome is not None and not isinstance(outcome, Rejected):
            if task is None:
                task = self._tasks[event.task_id] = _Task(outcome)
                self._arm(task)
            elif outcome != task.state:
                task.state = outcome
                self._arm(task)
        if task is None:
            return
        if isinstance(data, ExecutionScheduled):
            task.active[data.execution_id] = data.scheduled_for.astimezone(UTC)
            self._runs.pop(data.execution_id, None)
        elif isinstance(data, TERMINAL):
            task.active.pop(data.execution_id, None)
        else:
            run = pending_run(event, partition)
            if run is not None and run.execution_id not in self._runs:
                fired = run.execution_id in task.active
                if not fired:
                    self._runs[run.execution_id] = run
                    if partition in self._ready:
                        self._push(run.due_at, f"run:{run.execution_id}", 0)

    # -- timers -----------------------------------------------------------------------

    def _push(self, when: datetime, key: str, generation: int) -> None:
        heapq.heappush(self._heap, (when.timestamp(), next(self._sequence), key, generation))

    def _arm(self, task: _Task) -> None:
        task.generation += 1
        state = task.state
        if state.status in (TaskStatus.DELETED, TaskStatus.COMPLETED):
            task.next = None
            return
        task.next = next_slot(state.spec.schedule, anchor=state.anchor, after=state.last_slot)
        if task.next is None or state.partition not in self._ready:
            return
        delay = jitter_offset(state.task_id, task.next.at, state.spec.schedule.jitter)
        self._push(task.next.at + delay, f"task:{state.task_id}", task.generation)

    def rearm(self, plan: Plan) -> None:
        """A plan was not committed: arm its tasks and runs again."""
        for task_id in plan.partitions:
            task = self._tasks.get(task_id)
            if task is not None:
                self._arm(task)
        for order in plan.orders:
            run = self._runs.get(order.execution_id)
            if run is not None:
                self._push(run.due_at, f"run:{run.execution_id}", 0)

    # -- planning ---------------------------------------------------------------------

    def due(self, now: datetime, limit: int) -> Plan:
        """Everything due at ``now``, as one plan of at most ``limit`` timers."""
        plan = Plan()
        epoch = now.timestamp()
        while self._heap and self._heap[0][0] <= epoch and plan.slots < limit:
            _, _, key, generation = heapq.heappop(self._heap)
            kind, _, ident = key.partition(":")
            if kind == "task":
                task = self._tasks.get(ident)
                if task is None or task.generation != generation or task.next is None:
                    continue  # stale
                if task.state.partition not in self._ready:
                    continue
                self._plan_task(task, now, plan)
                task.next = None  # until the plan's events come back through apply()
            else:
                run = self._runs.get(ident)
                if run is None or run.partition not in self._ready:
                    continue
                self._plan_run(run, plan)
            plan.slots += 1
        return plan

    def _plan_task(self, task: _Task, now: datetime, plan: Plan) -> None:
        state = task.state
        slot = task.next
        assert slot is not None
        spec = state.spec
        plan.partitions[state.task_id] = state.partition
        if slot.kind is SlotKind.SKIP_DST:
            self._skip(
                plan,
                state,
                [slot.at],
                SkipReason.DST,
                "the local time repeated when the clock went back; it ran once",
            )
            return
        late = now - (slot.at + jitter_offset(state.task_id, slot.at, spec.schedule.jitter))
        if late > spec.misfire_grace:
            self._plan_misfire(task, slot, now, plan)
            return
        if state.status is TaskStatus.PAUSED:
            self._skip(plan, state, [slot.at], SkipReason.PAUSED, "the task is paused")
            return
        running = _unfinished(task, now)
        if running:
            if spec.overlap is OverlapPolicy.FORBID:
                self._skip(
                    plan,
                    state,
                    [slot.at],
                    SkipReason.OVERLAP,
                    f"{len(running)} earlier execution(s) still running",
                )
                return
            if spec.overlap is OverlapPolicy.REPLACE:
                for exec_id in running:
                    self._event(
                        plan,
                        state,
                        CancelRequested(
                            execution_id=exec_id, reason="replaced by a newer run (overlap=replace)"
                        ),
                    )
        self._fire(
            plan, state, slot.at, Trigger.SCHEDULE, 1, execution_id(state.task_id, slot.at, 1)
        )

    def _plan_misfire(self, task: _Task, first: Slot, now: datetime, plan: Plan) -> None:
        state = task.state
        spec = state.spec
        missed: list[datetime] = []
        for walked, slot in enumerate(
            iter_slots(spec.schedule, anchor=state.anchor, after=state.last_slot, until=now)
        ):
            if walked >= _MAX_SLOTS_WALKED:
                break
            if slot.kind is SlotKind.FIRE:
                missed.append(slot.at)
        if not missed:
            missed = [first.at]
        if state.status is TaskStatus.PAUSED:
            self._skip(plan, state, missed, SkipReason.PAUSED, "the task is paused")
            return
        if spec.misfire is MisfirePolicy.SKIP:
            fire: list[datetime] = []
        elif spec.misfire is MisfirePolicy.FIRE_ONCE:
            fire = missed[-1:]
        else:
            horizon = now - spec.catch_up_window
            fire = [at for at in missed if at >= horizon][-MAX_CATCH_UP_FIRES:]
        skipped = missed[: len(missed) - len(fire)]
        if skipped:
            self._skip(
                plan,
                state,
                skipped,
                SkipReason.MISFIRE,
                f"missed while no scheduler ran (misfire policy {spec.misfire.value})",
            )
        for at in fire:
            self._fire(plan, state, at, Trigger.SCHEDULE, 1, execution_id(state.task_id, at, 1))

    def _plan_run(self, run: PendingRunState, plan: Plan) -> None:
        task = self._tasks.get(run.task_id)
        if task is None or task.state.status is TaskStatus.DELETED:
            self._runs.pop(run.execution_id, None)
            return
        plan.partitions[run.task_id] = run.partition
        self._fire(plan, task.state, run.scheduled_for, run.trigger, run.attempt, run.execution_id)

    # -- building events ----------------------------------------------------------------

    def _event(self, plan: Plan, state: TaskState, data: EventData) -> None:
        plan.events.append(Event.create(state.task_id, data))

    def _skip(
        self, plan: Plan, state: TaskState, slots: list[datetime], reason: SkipReason, detail: str
    ) -> None:
        self._event(
            plan,
            state,
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
        state: TaskState,
        slot: datetime,
        trigger: Trigger,
        attempt: int,
        exec_id: str,
    ) -> None:
        spec = state.spec
        plan.orders.append(
            WorkOrder(
                execution_id=exec_id,
                task_id=state.task_id,
                task_name=spec.name,
                handler=spec.handler,
                params=spec.params,
                attempt=attempt,
                scheduled_for=slot,
                priority=spec.priority,
                queue=spec.queue,
                timeout=spec.timeout,
                retry=spec.retry,
            )
        )
        self._event(
            plan,
            state,
            ExecutionScheduled(
                execution_id=exec_id,
                attempt=attempt,
                scheduled_for=slot,
                topic=self._topics.execution(spec.queue, spec.priority.value),
                queue=spec.queue,
                priority=spec.priority,
                trigger=trigger,
            ),
        )


def _unfinished(task: _Task, now: datetime) -> list[str]:
    """Executions of the task still running, ignoring ones too old to be alive.

    An execution whose end was never recorded (its executor died with it) stops
    counting after twice the task's timeout (one hour if it has none) plus a minute.
    """
    limit = (task.state.spec.timeout or timedelta(hours=1)) * 2 + timedelta(minutes=1)
    return sorted(exec_id for exec_id, slot in task.active.items() if now - slot < limit)
