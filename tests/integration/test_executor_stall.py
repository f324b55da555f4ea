"""A queue consumer that stops fetching while orders wait turns the executor's /health 503.

The consumer's own back-pressure pauses are not stalls (the slots are busy); a partition
the client does not fetch although the consumer thinks it does (the pause that outlived a
lost assignment, see ``test_executor_outage.py``) is one, and must be visible.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from taskstream.executor.consumer import QueueConsumer
from taskstream.infra.health import ComponentStatus, State
from taskstream.infra.kafka import ensure_topics, standard_topics
from taskstream.schemas import Priority
from tests.integration.executor_support import (
    EventLog,
    Writer,
    executor_settings,
    running_executor,
    work_order,
)
from tests.support import eventually

pytestmark = pytest.mark.kafka


class _OnConsumerThread:
    """Wraps a consumer's clock: once armed, the next call on the consumer's thread
    pauses (or resumes) every partition the client has, then the clock is as before."""

    def __init__(self, consumer: QueueConsumer, action: str) -> None:
        self.armed, self.done = threading.Event(), threading.Event()
        self._consumer, self._action = consumer, action
        self._clock = consumer._clock
        consumer._clock = self

    def __call__(self) -> float:
        if self.armed.is_set() and threading.current_thread().name.startswith("consumer-"):
            client = self._consumer._consumer
            getattr(client, self._action)(client.assignment())
            self._consumer._clock = self._clock
            self.done.set()
        return time.monotonic()


def test_a_consumer_that_fetches_nothing_while_orders_wait_is_unavailable_until_it_resumes(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    settings = executor_settings(kafka_bootstrap, topic_prefix, loop_stall_after=3.0)
    ensure_topics(settings, standard_topics(settings, settings.executor_queues))
    writer = Writer(settings)
    log = EventLog(kafka_bootstrap, settings.topics.task_events)
    try:
        with running_executor(settings) as executor:
            first = work_order("noop")
            writer.orders(first)
            eventually(
                lambda: log.of("ExecutionSucceeded", first.execution_id),
                what="the consumer to run an order",
            )
            consumer = executor.consumers[0]
            # The client stops fetching behind the consumer's back, as a pause left over
            # from a lost assignment does; done on the consumer's own thread (its clock
            # is called there each round), as the client must not be called from another
            # thread while it polls.
            pause = _OnConsumerThread(consumer, "pause")
            pause.armed.set()
            eventually(lambda: pause.done.is_set(), what="the client paused")
            waiting = [work_order("noop") for _ in range(10)]
            writer.orders(*waiting)

            def consumer_health() -> ComponentStatus:
                return executor.board.snapshot().components["consumer:default"]

            status = eventually(
                lambda: (s := consumer_health()).state is State.UNAVAILABLE and s,
                timeout=30,
                what="the stalled consumer's health to turn unavailable",
            )
            assert status.reason is not None
            assert "has not advanced" in status.reason and "records wait" in status.reason
            live, body = executor.health()
            assert not live, "/health answers 503"
            assert body["components"]["consumer:default"]["state"] == "unavailable", body

            resume = _OnConsumerThread(consumer, "resume")
            resume.armed.set()
            eventually(lambda: resume.done.is_set(), what="the client resumed")
            eventually(
                lambda: all(log.of("ExecutionSucceeded", o.execution_id) for o in waiting),
                timeout=30,
                what="the waiting orders to run once fetching resumed",
            )
            eventually(
                lambda: consumer_health().state is State.OK,
                timeout=30,
                what="the consumer's health to be ok again",
            )
    finally:
        log.close()


def test_back_pressure_with_busy_slots_is_not_a_stall(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    settings = executor_settings(
        kafka_bootstrap,
        topic_prefix,
        loop_stall_after=2.0,
        executor_concurrency=1,
        executor_max_buffered=3,
    )
    ensure_topics(settings, standard_topics(settings, settings.executor_queues))
    orders = [work_order("sleep", {"seconds": 3}, priority=Priority.LOW) for _ in range(8)]
    Writer(settings).orders(*orders)
    log = EventLog(kafka_bootstrap, settings.topics.task_events)
    seen: list[Any] = []
    try:
        with running_executor(settings) as executor:
            eventually(
                lambda: executor.details()["consumers"][0].get("paused_lanes") == ["low"],
                timeout=30,
                what="back-pressure to pause the low lane",
            )

            def third_done() -> bool:
                seen.append(executor.board.snapshot().components["consumer:default"])
                done = {e.execution_id for e in log.of("ExecutionSucceeded")}
                return sum(1 for o in orders if o.execution_id in done) >= 3

            # three 3 s orders one after the other: well past the 2 s stall threshold
            # (and two lag measures) with the low lane paused and records waiting
            eventually(third_done, timeout=60, interval=0.2, what="three orders to finish")
            assert len(seen) > 20
            stalls = [s for s in seen if s.state is not State.OK]
            assert not stalls, stalls
    finally:
        log.close()
