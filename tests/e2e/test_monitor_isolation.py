"""The monitor with a missed_schedule rule survives a task whose schedule cannot be evaluated.

The poison ``TaskCreated`` is put on ``task-events`` directly (bypassing the API's
validation), beside a good task whose executions must keep reaching the history.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer

from taskstream.schemas import (
    Event,
    EventData,
    ExecutionScheduled,
    ExecutionStarted,
    ExecutionSucceeded,
    Priority,
    Schedule,
    TaskCreated,
    TaskSpec,
    encode_event,
    event_headers,
)
from tests.e2e.stack import Stack, running_stack
from tests.support import eventually, recorded_schedule

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

RULES = """
[[rules]]
id = "missed"
kind = "missed_schedule"
grace = "1s"
"""


@pytest.fixture
def monitor(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Iterator[Stack]:
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    with running_stack(
        kafka_bootstrap,
        topic_prefix,
        tmp_path,
        names=("monitor",),
        TASKSTREAM_MONITOR_ALERT_RULES_FILE=str(rules),
        TASKSTREAM_MONITOR_ALERT_CHECK_INTERVAL="1s",
    ) as stack:
        yield stack


class _Log:
    def __init__(self, stack: Stack) -> None:
        self.topic = f"{stack.prefix}task-events"
        self._producer = Producer(
            {
                "bootstrap.servers": stack.env["KAFKA_BOOTSTRAP_SERVERS"],
                "partitioner": "murmur2_random",
            }
        )

    def put(self, task_id: str, data: EventData) -> None:
        event = Event.create(task_id, data)
        self._producer.produce(
            self.topic,
            key=task_id.encode(),
            value=encode_event(event),
            headers=event_headers(event),
        )
        assert self._producer.flush(30) == 0

    def run(self, task_id: str) -> str:
        """One execution of the task, scheduled, started and succeeded."""
        execution_id = str(uuid.uuid4())
        slot = datetime.now(UTC)
        common: dict[str, Any] = {"execution_id": execution_id, "attempt": 1, "scheduled_for": slot}
        self.put(
            task_id,
            ExecutionScheduled(topic="x", queue="default", priority=Priority.MEDIUM, **common),
        )
        self.put(task_id, ExecutionStarted(worker_id="w", handler="noop", **common))
        self.put(task_id, ExecutionSucceeded(worker_id="w", duration_seconds=0.01, **common))
        return execution_id


def _history(stack: Stack, task_id: str) -> set[str]:
    response = httpx.get(f"{stack.monitor}/api/monitor/tasks/{task_id}/executions", timeout=10)
    assert response.status_code == 200, response.text
    return {item["execution_id"] for item in response.json()["items"]}


def _errors(stack: Stack, stage: str) -> float:
    text = httpx.get(f"{stack.monitor}/metrics", timeout=10).text
    prefix = f'taskstream_monitor_task_errors_total{{stage="{stage}"}} '
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))


def test_the_monitor_keeps_folding_history_beside_a_task_it_cannot_evaluate(
    monitor: Stack,
) -> None:
    log = _Log(monitor)
    good = f"good-{uuid.uuid4().hex[:6]}"
    log.put(
        good, TaskCreated(task=TaskSpec(name="good", handler="noop", schedule=Schedule(every="1h")))
    )  # type: ignore[arg-type]
    first = log.run(good)
    eventually(lambda: first in _history(monitor, good), timeout=60, what="the first run")

    poison = f"poison-{uuid.uuid4().hex[:6]}"
    log.put(
        poison,
        TaskCreated(
            task=TaskSpec(
                name="poison", handler="noop", schedule=recorded_schedule(cron="0 0 30 2 *")
            )
        ),
    )
    later = [log.run(good) for _ in range(3)]
    eventually(
        lambda: set(later) <= _history(monitor, good),
        timeout=60,
        what=lambda: f"the runs after the poison task in the history\n{monitor.logs()}",
    )
    assert httpx.get(f"{monitor.monitor}/health", timeout=10).status_code == 200
    eventually(
        lambda: _errors(monitor, "alert_rules") >= 1,
        timeout=30,
        what="the fault to be counted (the rule met the poison task)",
    )
    after_checks = log.run(good)  # after a few timer checks of the missed_schedule rule
    eventually(
        lambda: after_checks in _history(monitor, good),
        timeout=60,
        what=lambda: f"a run after the alert checks\n{monitor.logs()}",
    )
