"""The pool's slots: one order at a time each, and a slot handed over when a run overruns."""

from __future__ import annotations

import threading

from taskstream.executor.execution import Received
from taskstream.executor.lanes import Lanes
from taskstream.executor.pool import ExecutionPool, Slot
from taskstream.schemas import Priority
from tests.support import eventually, received_order


def _received(task_id: str) -> Received:
    return received_order(task_id)


def test_an_overrun_slot_is_handed_over_and_the_pool_keeps_its_size() -> None:
    lanes: Lanes[Received] = Lanes()
    release = threading.Event()
    processed: list[str] = []
    reported: list[str] = []
    stuck_threads: list[threading.Thread] = []

    def process(item: Received, slot: Slot) -> None:
        task = item.order.task_id
        if task == "stuck":
            stuck_threads.append(threading.current_thread())
            slot.hand_over(lambda: reported.append(task))  # what the watchdog does
            release.wait(10)  # the handler goes on on this thread
            return
        processed.append(f"{task}@{threading.current_thread().ident}")

    pool = ExecutionPool(lanes, 1, process)
    pool.start()
    try:
        lanes.put(Priority.MEDIUM, _received("stuck"))
        for n in range(3):
            lanes.put(Priority.MEDIUM, _received(f"next-{n}"))
        eventually(lambda: len(processed) == 3, timeout=5, what="the orders after the overrun")
        assert reported == ["stuck"], "the new holder reported the overrun run first"
        assert pool.handed_over == 1
        (stuck,) = stuck_threads
        assert stuck.is_alive(), "the old thread is still in its handler"
        assert all(not p.endswith(f"@{stuck.ident}") for p in processed)
        eventually(lambda: pool.busy == 0, timeout=5, what="the pool idle")
        release.set()
        stuck.join(5)
        assert not stuck.is_alive(), "the old thread ends once its handler returns"
        lanes.put(Priority.MEDIUM, _received("after"))
        eventually(lambda: len(processed) == 4, timeout=5, what="one more order")
        eventually(lambda: pool.busy == 0, timeout=5, what="the pool idle again")
        assert len({p.split("@")[1] for p in processed}) == 1, "one slot, one holder"
    finally:
        release.set()
        pool.stop(timeout=2)


def test_a_slot_survives_an_order_whose_processing_raises() -> None:
    lanes: Lanes[Received] = Lanes()
    processed: list[str] = []

    def process(item: Received, slot: Slot) -> None:
        if item.order.task_id == "bad":
            raise RuntimeError("a bug in one order's processing")
        processed.append(item.order.task_id)

    pool = ExecutionPool(lanes, 1, process)
    pool.start()
    try:
        for task in ("bad", "good-1", "bad", "good-2"):
            lanes.put(Priority.MEDIUM, _received(task))
        eventually(lambda: processed == ["good-1", "good-2"], timeout=5, what="the next orders")
        eventually(lambda: pool.busy == 0, timeout=5, what="the slot free again")
    finally:
        pool.stop(timeout=2)
