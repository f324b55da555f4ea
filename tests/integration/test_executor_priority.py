"""Priority under backlog: a high order produced behind 5,000 low ones starts at once."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

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

BACKLOG = 5000


def test_a_high_order_starts_before_a_low_backlog_drains(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    settings = executor_settings(kafka_bootstrap, topic_prefix, executor_concurrency=4)
    ensure_topics(settings, standard_topics(settings, settings.executor_queues))
    writer = Writer(settings)
    writer.orders(
        *(work_order("sleep", {"seconds": 0.05}, priority=Priority.LOW) for _ in range(BACKLOG))
    )
    log = EventLog(settings.kafka_bootstrap_servers, settings.topics.task_events)
    try:
        with running_executor(settings) as executor:
            eventually(
                lambda: len(log.of("ExecutionSucceeded")) >= 40,
                what="the low backlog to be running",
            )
            health = eventually(
                lambda: (h := executor.health()[1])["paused_partitions"] and h,
                what="the low lane paused by back-pressure",
            )
            assert health["consumers"][0]["paused_lanes"] == ["low"]

            urgent = work_order("noop", priority=Priority.HIGH)
            produced_at = datetime.now(UTC)
            writer.orders(urgent)
            [ran] = eventually(  # a quick run: its outcome says when it started (v2)
                lambda: log.of("ExecutionSucceeded", urgent.execution_id),
                timeout=30,
                what="the high order to run",
            )
            delay = (ran.started_at - produced_at).total_seconds()
            low_done = low_started = sum(
                1
                for outcome in log.of("ExecutionSucceeded", poll=False)
                if outcome.started_at < ran.started_at
            )
            print(
                f"\nhigh-priority order started {delay * 1000:.0f} ms after it was produced, "
                f"behind a backlog of {BACKLOG} low orders "
                f"({low_started} low started, {low_done} finished at that point; "
                f"buffered then: {health['consumers'][0]['buffered']})"
            )
            assert low_started < BACKLOG / 2, "the high order did not wait for the backlog"
            assert delay < 2.0
            stop_started = time.monotonic()
        assert time.monotonic() - stop_started < 10, "stopping drops the waiting backlog"
    finally:
        log.close()
