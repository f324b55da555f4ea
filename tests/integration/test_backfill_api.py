"""Backfills on the real core: the scheduler fires each slot of the range once, paced.

The core runs in-process on the test broker, its scheduler included; the fires are read
back from ``task-events`` as any consumer reads them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from taskstream.core.api import CoreRuntime
from tests.kafka_read import read_topic
from tests.support import eventually

pytestmark = pytest.mark.kafka

DAY = (datetime.now(UTC) - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)


def _hourly(api: httpx.Client) -> str:
    body = {"name": "hourly", "schedule": {"cron": "0 * * * *"}, "handler": "noop"}
    created = api.post("/api/tasks", json=body)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _backfilled(core: CoreRuntime, task_id: str) -> list[dict[str, Any]]:
    settings = core.settings
    records = read_topic(settings.kafka_bootstrap_servers, settings.topics.task_events)
    return [
        record.value["data"]
        for record in records
        if record.value["type"] == "ExecutionScheduled"
        and record.value["task_id"] == task_id
        and record.value["data"]["trigger"] == "backfill"
    ]


def _progress(api: httpx.Client, task_id: str) -> dict[str, Any]:
    answer = api.get(f"/api/tasks/{task_id}")
    assert answer.status_code == 200, answer.text
    backfill: dict[str, Any] = answer.json()["backfill"]
    return backfill


def test_a_backfill_fires_every_slot_of_its_range_once(
    core: CoreRuntime, api: httpx.Client
) -> None:
    task_id = _hourly(api)
    end = DAY + timedelta(hours=23)
    accepted = api.post(
        f"/api/tasks/{task_id}/backfill",
        json={"start": DAY.isoformat(), "end": end.isoformat(), "rate": 20},
    )
    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    assert body["total"] == 24 and body["first_slot"] == DAY.isoformat().replace("+00:00", "Z")

    def done() -> dict[str, Any] | None:
        progress = _progress(api, task_id)
        return progress if progress["state"] == "completed" else None

    progress = eventually(done, timeout=60, interval=0.5, what="the backfill to complete")
    assert (progress["fired"], progress["total"], progress["id"]) == (24, 24, body["backfill_id"])
    fired = _backfilled(core, task_id)
    slots = sorted(datetime.fromisoformat(data["scheduled_for"]) for data in fired)
    assert slots == [DAY + timedelta(hours=h) for h in range(24)]
    assert len({data["execution_id"] for data in fired}) == 24
    assert {data["run_key"] for data in fired} == {f"backfill:{body['backfill_id']}"}


def test_one_backfill_at_a_time_and_a_cancel_stops_it(core: CoreRuntime, api: httpx.Client) -> None:
    task_id = _hourly(api)
    range_ = {"start": DAY.isoformat(), "end": (DAY + timedelta(hours=23)).isoformat()}
    slow = api.post(f"/api/tasks/{task_id}/backfill", json={**range_, "rate": 0.5})
    assert slow.status_code == 202, slow.text
    second = api.post(f"/api/tasks/{task_id}/backfill", json=range_)
    assert second.status_code == 409 and second.json()["error"] == "backfill_running"
    eventually(lambda: _backfilled(core, task_id), timeout=30, what="the first slot to fire")
    cancelled = api.delete(f"/api/tasks/{task_id}/backfill")
    assert cancelled.status_code == 202, cancelled.text
    eventually(
        lambda: _progress(api, task_id)["state"] == "cancelled", what="the backfill cancelled"
    )
    count = len(_backfilled(core, task_id))
    assert count < 24
    again = api.delete(f"/api/tasks/{task_id}/backfill")
    assert again.status_code == 409 and again.json()["error"] == "no_backfill"
    # nothing of it is left to fire: no timer in the store (a new owner restores from it)
    partitions = range(core.settings.task_events_partitions)

    def no_timer() -> bool:
        runs = core.store.snapshot(partitions).runs
        return not [run for run in runs if run.task_id == task_id and run.backfill is not None]

    eventually(no_timer, what="the cancelled backfill's timer gone from the store")


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"start": "2030-01-02T00:00:00Z", "end": "2030-01-01T00:00:00Z"}, "end", "after start"),
        ({"start": "2020-01-01T00:00:00Z", "end": "2099-01-01T00:00:00Z"}, "end", "future"),
        (
            {"start": "2020-01-01T00:10:00Z", "end": "2020-01-01T00:20:00Z"},
            "start",
            "no slot",
        ),
        ({"start": "2000-01-01T00:00:00Z", "end": "2020-01-01T00:00:00Z"}, "end", "split"),
        ({"start": "2020-01-01T00:00:00Z", "end": "2020-01-02T00:00:00Z", "rate": 0}, "rate", ""),
    ],
)
def test_a_range_the_schedule_cannot_backfill_is_422_naming_it(
    api: httpx.Client, body: dict[str, Any], field: str, words: str
) -> None:
    task_id = _hourly(api)
    refused = api.post(f"/api/tasks/{task_id}/backfill", json=body)
    assert refused.status_code == 422, refused.text
    [error] = refused.json()["errors"]
    assert error["field"] == field and words in error["message"], error
