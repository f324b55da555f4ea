"""The cancel registry: running executions are signalled, late arrivals remembered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from taskstream.executor.cancellations import CancelRegistry
from taskstream.schemas import Priority, WorkOrder, execution_id

SLOT = datetime(2030, 1, 1, 12, tzinfo=UTC)


class _Run:
    def __init__(self) -> None:
        self.reasons: list[str] = []

    def cancel(self, reason: str) -> None:
        self.reasons.append(reason)


def _order(task_id: str = "t", slot: datetime = SLOT) -> WorkOrder:
    return WorkOrder(
        execution_id=execution_id(task_id, slot, 1),
        task_id=task_id,
        task_name="n",
        handler="sleep",
        attempt=1,
        scheduled_for=slot,
        priority=Priority.MEDIUM,
        queue="default",
    )


def test_a_request_by_execution_id_signals_that_execution_only() -> None:
    registry = CancelRegistry()
    one, two = _Run(), _Run()
    registry.register("e1", "t", one)
    registry.register("e2", "t", two)
    assert registry.request("t", "e1", "stop it", SLOT, now=0) == 1
    assert one.reasons == ["stop it"] and two.reasons == []


def test_a_task_wide_request_signals_every_running_execution_of_the_task() -> None:
    registry = CancelRegistry()
    runs = {name: _Run() for name in ("a1", "a2", "b1")}
    registry.register("a1", "a", runs["a1"])
    registry.register("a2", "a", runs["a2"])
    registry.register("b1", "b", runs["b1"])
    assert registry.request("a", None, "all", SLOT, now=0) == 2
    assert runs["a1"].reasons == ["all"] and runs["a2"].reasons == ["all"]
    assert runs["b1"].reasons == []
    registry.unregister("a1")
    registry.unregister("a1")  # twice is harmless
    assert registry.running() == 2


def test_an_order_arriving_after_its_cancel_is_cancelled_before_it_starts() -> None:
    registry = CancelRegistry(remember=300)
    order = _order()
    assert registry.pending_reason(order, now=0) is None
    registry.request(order.task_id, order.execution_id, "too late", SLOT, now=0)
    assert registry.pending_reason(order, now=10) == "too late"
    assert registry.pending_reason(order, now=301) is None, "forgotten after a few minutes"


def test_a_task_wide_cancel_covers_slots_up_to_the_request_only() -> None:
    registry = CancelRegistry()
    requested_at = SLOT + timedelta(minutes=1)
    registry.request("t", None, "stop all", requested_at, now=0)
    assert registry.pending_reason(_order(slot=SLOT), now=1) == "stop all"
    assert registry.pending_reason(_order(slot=requested_at + timedelta(seconds=1)), now=1) is None
    assert registry.pending_reason(_order(task_id="other"), now=1) is None


def test_remembered_requests_are_bounded() -> None:
    registry = CancelRegistry(limit=100)
    for n in range(1000):
        registry.request("t", f"e{n}", "r", SLOT, now=0)
    late = _order()
    assert registry.pending_reason(late.model_copy(update={"execution_id": "e999"}), now=0) == "r"
    assert registry.pending_reason(late.model_copy(update={"execution_id": "e0"}), now=0) is None
