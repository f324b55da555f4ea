"""The executor resumes by itself after the broker was gone long enough to lose its group.

Found by the fault round (a whole-cluster restart): the executor's consumer "lost" its
partitions, got them "assigned" again 5 s later, and then fetched nothing for minutes.
librdkafka keeps a partition paused across an unassign and a new assign; the consumer
paused a lane by back-pressure, forgot the pause with the lost partitions, and so never
resumed what came back paused. Here on a broker of the test's own, killed for longer than
the executor's session timeout while back-pressure holds a lane paused.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from taskstream.dev_broker.local_kafka import LocalKafkaBroker
from taskstream.infra.kafka import ensure_topics, standard_topics
from taskstream.infra.processes import free_port
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

ORDERS = 24


@pytest.mark.timeout(300)
def test_orders_run_again_after_an_outage_that_lost_the_consumers_paused_partitions(
    tmp_path: Path, topic_prefix: str
) -> None:
    broker = LocalKafkaBroker(port=free_port(), data_dir=tmp_path / "kafka")
    bootstrap = broker.start(timeout=120)
    log: EventLog | None = None
    try:
        settings = executor_settings(
            bootstrap,
            topic_prefix,
            executor_concurrency=1,
            executor_max_buffered=3,
            executor_session_timeout=timedelta(seconds=6),
        )
        ensure_topics(settings, standard_topics(settings, settings.executor_queues))
        orders = [
            work_order("sleep", {"seconds": 0.3}, priority=Priority.LOW) for _ in range(ORDERS)
        ]
        Writer(settings).orders(*orders)
        log = EventLog(bootstrap, settings.topics.task_events)
        with running_executor(settings) as executor:

            def consumer() -> dict[str, Any]:
                status: dict[str, Any] = executor.details()["consumers"][0]
                return status

            eventually(
                lambda: consumer().get("paused_lanes") == ["low"],
                timeout=60,
                what="back-pressure to pause the low lane",
            )
            broker.kill()
            eventually(
                lambda: consumer().get("assigned_partitions") == 0,
                timeout=60,
                interval=0.5,
                what="the consumer to lose its partitions (session timeout)",
            )
            broker.start(timeout=120)

            def succeeded() -> int:
                done = {e.execution_id for e in log.of("ExecutionSucceeded")}
                return sum(1 for order in orders if order.execution_id in done)

            try:
                eventually(
                    lambda: succeeded() == ORDERS,
                    timeout=90,
                    interval=1.0,
                    what=f"all {ORDERS} orders to succeed after the broker came back",
                )
            except AssertionError as exc:
                raise AssertionError(
                    f"{exc}; {succeeded()} succeeded; consumer: {consumer()}"
                ) from None
    finally:
        if log is not None:
            log.close()
        broker.stop()
