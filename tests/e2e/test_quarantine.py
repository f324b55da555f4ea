"""A task the scheduler cannot evaluate, already on the log: quarantined, never fatal.

The poison records are put on ``task-events`` directly (the encoder of ``schemas``,
bypassing the API's validation): records of that kind already in a log must be survived.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer

from taskstream.cli.dev import start_service, wait_healthy
from taskstream.schemas import Event, Schedule, TaskCreated, TaskSpec, encode_event, event_headers
from tests.e2e.stack import Stack, running_stack
from tests.kafka_read import RawRecord, read_topic
from tests.support import eventually, recorded_schedule

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

POISONS = {
    "CronError": recorded_schedule(cron="0 0 30 2 *"),  # there is no 30 February
    "OverflowError": recorded_schedule(every="100000000d"),
}


def _put_on_the_log(stack: Stack, schedule: Schedule) -> Event:
    event = Event.create(
        str(uuid.uuid4()),
        TaskCreated(task=TaskSpec(name="poison", handler="noop", schedule=schedule)),
    )
    producer = Producer(
        {
            "bootstrap.servers": stack.env["KAFKA_BOOTSTRAP_SERVERS"],
            "partitioner": "murmur2_random",
        }
    )
    producer.produce(
        f"{stack.prefix}task-events",
        key=event.task_id.encode(),
        value=encode_event(event),
        headers=event_headers(event),
    )
    assert producer.flush(30) == 0
    return event


def _log(stack: Stack) -> list[RawRecord]:
    return read_topic(stack.env["KAFKA_BOOTSTRAP_SERVERS"], f"{stack.prefix}task-events")


def _of(records: list[RawRecord], task_id: str, kind: str) -> list[RawRecord]:
    return [r for r in records if r.key == task_id.encode() and r.value["type"] == kind]


def _fired_after(stack: Stack, task_id: str, after: datetime) -> bool:
    return any(
        datetime.fromisoformat(str(r.value["data"]["scheduled_for"])) > after  # type: ignore[index]
        for r in _of(_log(stack), task_id, "ExecutionScheduled")
    )


def _task(stack: Stack, task_id: str) -> dict[str, Any]:
    response = httpx.get(f"{stack.core}/api/tasks/{task_id}", timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _quarantined_gauge(stack: Stack) -> float:
    text = httpx.get(f"{stack.core}/metrics", timeout=10).text
    [line] = [row for row in text.splitlines() if row.startswith("taskstream_quarantined_tasks ")]
    return float(line.split()[1])


def test_a_poison_task_on_the_log_is_quarantined_and_the_other_tasks_keep_firing(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = f"quarantine-{uuid.uuid4().hex[:8]}."
    with running_stack(kafka_bootstrap, prefix, tmp_path, names=("core",)) as stack:
        created = httpx.post(
            f"{stack.core}/api/tasks",
            json={"name": "good", "schedule": {"every": "1s"}, "handler": "noop"},
            timeout=30,
        )
        assert created.status_code == 201, created.text
        good = created.json()["id"]
        poisons = {kind: _put_on_the_log(stack, schedule) for kind, schedule in POISONS.items()}
        put_at = datetime.now(UTC)

        eventually(
            lambda: _fired_after(stack, good, put_at + timedelta(seconds=2)),
            timeout=60,
            what=lambda: f"the good task to fire after the poison records\n{stack.logs()}",
        )
        for kind, poison in poisons.items():
            task = eventually(
                lambda p=poison: (t := _task(stack, p.task_id))["status"] == "quarantined" and t,
                timeout=30,
                what=f"the {kind} task to be quarantined",
            )
            assert task["quarantined"]["component"] == "scheduler"
            assert task["quarantined"]["reason"].startswith(f"{kind}: ")
            assert datetime.fromisoformat(task["quarantined"]["at"]) >= put_at - timedelta(1)
            [event] = _of(_log(stack), poison.task_id, "TaskQuarantined")
            assert event.value["data"]["change_event_id"] == poison.id  # type: ignore[index]
            assert event.value["data"]["error_type"] == kind  # type: ignore[index]
        listed = httpx.get(f"{stack.core}/api/tasks?status=quarantined", timeout=10).json()
        assert {item["id"] for item in listed["items"]} == {p.task_id for p in poisons.values()}
        assert _quarantined_gauge(stack) == 2.0
        health = httpx.get(f"{stack.core}/health", timeout=10)
        assert health.status_code == 200, health.text

        # a restart meets the same records again (from the store's offsets): it does not
        # die, does not evaluate the quarantined tasks again, and keeps firing the good one
        core = stack.services["core"]
        core.stop()
        restarted = start_service("core", stack.env, core.health_url, tmp_path / "core-2.log")
        stack.services["core"] = restarted
        wait_healthy(restarted)
        back_at = datetime.now(UTC)
        eventually(
            lambda: _fired_after(stack, good, back_at + timedelta(seconds=2)),
            timeout=60,
            what=lambda: f"the good task to fire after the restart\n{stack.logs()}",
        )
        assert restarted.process.poll() is None
        records = _log(stack)
        for poison in poisons.values():
            assert len(_of(records, poison.task_id, "TaskQuarantined")) == 1, "written once"
            assert _task(stack, poison.task_id)["status"] == "quarantined"
        assert httpx.get(f"{stack.core}/health", timeout=10).status_code == 200


def test_a_valid_change_lifts_the_quarantine(kafka_bootstrap: str, tmp_path: Path) -> None:
    prefix = f"lift-{uuid.uuid4().hex[:8]}."
    with running_stack(kafka_bootstrap, prefix, tmp_path, names=("core",)) as stack:
        poison = _put_on_the_log(stack, POISONS["CronError"])
        task = eventually(
            lambda: (t := _task(stack, poison.task_id))["status"] == "quarantined" and t,
            timeout=60,
            what=lambda: f"the task to be quarantined\n{stack.logs()}",
        )
        fixed = httpx.patch(
            f"{stack.core}/api/tasks/{poison.task_id}",
            json={"schedule": {"every": "1s"}},
            headers={"If-Match": str(task["version"])},
            timeout=30,
        )
        assert fixed.status_code == 200, fixed.text
        assert fixed.json()["status"] == "active" and fixed.json()["quarantined"] is None
        changed_at = datetime.now(UTC)
        eventually(
            lambda: _fired_after(stack, poison.task_id, changed_at),
            timeout=60,
            what=lambda: f"the fixed task to fire\n{stack.logs()}",
        )
