"""executor.started: which runs get an ExecutionStarted, when, and in what order."""

from __future__ import annotations

from concurrent.futures import Future
from datetime import UTC, datetime

from taskstream.executor.started import StartedAnnouncer
from taskstream.schemas import Event, ExecutionStarted
from tests.integration.executor_support import work_order
from tests.support import eventually


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _announcer(after: float) -> tuple[StartedAnnouncer, list[Event], _Clock]:
    sent: list[Event] = []
    clock = _Clock()

    def send(event: Event) -> Future[None]:
        sent.append(event)
        future: Future[None] = Future()
        future.set_result(None)
        return future

    return StartedAnnouncer(after, "w-1", send, clock=clock), sent, clock


def test_a_run_that_ends_before_the_threshold_gets_no_started_event() -> None:
    announcer, sent, clock = _announcer(1.0)
    announcer.begin(1, work_order("noop"), datetime.now(UTC))
    clock.now += 0.9
    assert announcer.announce_due() == 0
    assert announcer.end(1) is None
    clock.now += 5
    assert announcer.announce_due() == 0 and sent == []


def test_a_run_past_the_threshold_gets_one_started_event_stamped_with_its_start() -> None:
    announcer, sent, clock = _announcer(1.0)
    order = work_order("sleep", {"seconds": 5})
    began = datetime(2030, 1, 1, tzinfo=UTC)
    announcer.begin(1, order, began)
    announcer.begin(2, work_order("noop"), began)
    clock.now += 1.0
    assert announcer.announce_due() == 2
    clock.now += 1.0
    assert announcer.announce_due() == 0, "each run is announced once"
    delivery = announcer.end(1)
    assert delivery is not None and delivery.done()
    started = sent[0]
    assert isinstance(started.data, ExecutionStarted)
    assert started.occurred_at == began and started.task_id == order.task_id
    assert started.data.execution_id == order.execution_id
    assert started.data.handler == "sleep" and started.data.worker_id == "w-1"


def test_the_due_runs_are_the_oldest_ones() -> None:
    announcer, sent, clock = _announcer(1.0)
    old, new = work_order("noop"), work_order("noop")
    announcer.begin(1, old, datetime.now(UTC))
    clock.now += 0.6
    announcer.begin(2, new, datetime.now(UTC))
    clock.now += 0.6
    assert announcer.announce_due() == 1
    assert [e.data.execution_id for e in sent] == [old.execution_id]  # type: ignore[attr-defined]


def test_a_threshold_of_zero_announces_at_the_start() -> None:
    announcer, sent, _ = _announcer(0.0)
    announcer.begin(1, work_order("noop"), datetime.now(UTC))
    assert len(sent) == 1
    assert announcer.end(1) is not None


def test_a_send_that_raises_is_counted_and_the_next_tick_announces_the_run() -> None:
    sent: list[Event] = []
    calls = [0]

    def send(event: Event) -> Future[None]:
        calls[0] += 1
        if calls[0] == 1:
            raise RuntimeError("producer queue full")
        sent.append(event)
        future: Future[None] = Future()
        future.set_result(None)
        return future

    announcer = StartedAnnouncer(0.2, "w-1", send)
    announcer.start()
    try:
        announcer.begin(1, work_order("sleep", {"seconds": 5}), datetime.now(UTC))
        eventually(lambda: sent, timeout=5, what="the run announced after the failed send")
        health = announcer.health()
        assert announcer.alive and health.details["tick_errors"] >= 1
        assert "producer queue full" in str(health.details["last_tick_error"])
        assert announcer.end(1) is not None
    finally:
        announcer.stop()
