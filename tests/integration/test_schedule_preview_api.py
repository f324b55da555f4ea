"""Previews on the real core: a task's next slots are the slots its scheduler then fires.

The core runs in-process on the test broker, its scheduler included; the fires are read
back from ``task-events`` (``ExecutionScheduled``), as any consumer reads them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest

from taskstream.core.api import CoreRuntime
from tests.kafka_read import read_topic
from tests.support import eventually

pytestmark = pytest.mark.kafka


def _fired(core: CoreRuntime, task_id: str) -> dict[datetime, datetime]:
    """The task's fired slots, and when each was fired (the event's time)."""
    settings = core.settings
    records = read_topic(settings.kafka_bootstrap_servers, settings.topics.task_events)
    return {
        datetime.fromisoformat(record.value["data"]["scheduled_for"]): datetime.fromisoformat(
            record.value["occurred_at"]
        )
        for record in records
        if record.value["type"] == "ExecutionScheduled" and record.value["task_id"] == task_id
    }


def test_a_tasks_next_slots_are_the_slots_it_fires(core: CoreRuntime, api: httpx.Client) -> None:
    body = {
        "name": "previewed",
        "schedule": {"cron": "*/2 * * * * *", "jitter": "700ms"},
        "handler": "noop",
    }
    created = api.post("/api/tasks", json=body)
    assert created.status_code == 201, created.text
    task_id = created.json()["id"]
    answer = api.get(f"/api/tasks/{task_id}/next", params={"count": 3})
    assert answer.status_code == 200, answer.text
    preview = answer.json()
    assert preview["task_id"] == task_id and preview["status"] == "active"
    assert preview["timezone"] == "UTC" and preview["note"] is None
    slots = [datetime.fromisoformat(slot["scheduled_for"]) for slot in preview["slots"]]
    due = [datetime.fromisoformat(slot["due_at"]) for slot in preview["slots"]]
    assert len(slots) == 3 and all(slot.second % 2 == 0 for slot in slots)
    assert all(0 <= (d - s).total_seconds() < 0.7 for s, d in zip(slots, due, strict=True))

    def fired() -> dict[datetime, datetime] | None:
        seen = _fired(core, task_id)
        return seen if set(slots) <= set(seen) else None

    seen = eventually(fired, timeout=30, interval=0.5, what="the previewed slots to fire")
    after_first = sorted(slot for slot in seen if slot >= slots[0])[:3]
    assert after_first == slots  # no other slot in between, none left out
    for slot, when in zip(slots, due, strict=True):
        assert seen[slot] >= when, "fired before its jittered due time"


def test_a_schedule_not_created_yet_is_previewed_with_its_dst_repeat(api: httpx.Client) -> None:
    body: dict[str, Any] = {
        "schedule": {"cron": "30 2 * * *", "timezone": "Europe/Berlin"},
        "count": 3,
        "after": "2030-10-26T00:00:00Z",
    }
    answer = api.post("/api/schedules/preview", json=body)
    assert answer.status_code == 200, answer.text
    preview = answer.json()
    assert preview["task_id"] is None and preview["timezone"] == "Europe/Berlin"
    assert [(s["local"], s["skipped"]) for s in preview["slots"]] == [
        ("2030-10-26T02:30:00+02:00", False),
        ("2030-10-27T02:30:00+02:00", False),
        ("2030-10-27T02:30:00+01:00", True),  # the repeated hour: recorded as skipped
        ("2030-10-28T02:30:00+01:00", False),
    ]
    assert all(s["due_at"] == s["scheduled_for"] for s in preview["slots"])
    jittered = api.post(
        "/api/schedules/preview", json={"schedule": {"every": "1h", "jitter": "5m"}, "count": 1}
    )
    assert jittered.status_code == 200, jittered.text
    assert jittered.json()["slots"][0]["due_at"] is None
    assert "GET /api/tasks/{id}/next" in jittered.json()["note"]


def test_what_a_create_refuses_a_preview_refuses(api: httpx.Client) -> None:
    never = api.post("/api/schedules/preview", json={"schedule": {"at": "2001-01-01T00:00:00Z"}})
    assert never.status_code == 422, never.text
    [error] = never.json()["errors"]
    assert error["field"] == "schedule.at" and "never fires" in error["message"]
    bad_cron = api.post("/api/schedules/preview", json={"schedule": {"cron": "61 * * * *"}})
    assert bad_cron.status_code == 422 and bad_cron.json()["error"] == "validation_failed"
    too_many = api.post("/api/schedules/preview", json={"schedule": {"every": "1h"}, "count": 1001})
    assert too_many.status_code == 422, too_many.text


def test_a_paused_ended_or_unknown_task_says_so(api: httpx.Client) -> None:
    body = {"name": "paused", "schedule": {"every": "1h"}, "handler": "noop"}
    task_id = api.post("/api/tasks", json=body).json()["id"]
    assert api.put(f"/api/tasks/{task_id}/status", json={"status": "paused"}).status_code == 200
    paused = api.get(f"/api/tasks/{task_id}/next").json()
    assert paused["status"] == "paused" and len(paused["slots"]) == 10
    assert "skipped until it is resumed" in paused["note"]
    ending = {
        "name": "ending",
        "schedule": {"every": "1h", "end": "2099-01-01T00:00:00Z", "start": "2098-12-31T21:30:00Z"},
        "handler": "noop",
    }
    ending_id = api.post("/api/tasks", json=ending).json()["id"]
    ends = api.get(f"/api/tasks/{ending_id}/next").json()
    assert len(ends["slots"]) == 3 and "3 more slot(s)" in ends["note"]
    missing = api.get("/api/tasks/7b4f3c2e-0000-4000-8000-000000000001/next")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
