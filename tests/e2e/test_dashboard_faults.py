"""Faults on the dashboard, in a real browser (Debian's headless Chromium).

- kill -9 of the executor: within seconds ``GET /api/monitor/health`` names it
  unreachable, and the page's red banner names it (the page refreshes every 2 s);
- a task the scheduler cannot evaluate, put on ``task-events`` directly (records of that
  kind already in a log): the monitor lists it as quarantined, with the reason and how to
  lift it, the page shows it, and a valid change lifts it.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer

from taskstream.schemas import Event, TaskCreated, TaskSpec, encode_event, event_headers
from tests.e2e.browser import Elements, artifacts, browse, chromium
from tests.e2e.stack import Stack, running_stack
from tests.support import eventually, recorded_schedule

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

BANNER_WITHIN = 10.0


def _monitor(stack: Stack, path: str) -> Any:
    response = httpx.get(f"{stack.monitor}{path}", timeout=10)
    assert response.status_code == 200, (path, response.status_code, response.text)
    return response.json()


def _dom(stack: Stack, profile: Path, name: str) -> Elements:
    dom = browse(profile, f"{stack.monitor}/dashboard", "--dump-dom").stdout
    (artifacts() / name).write_text(dom)
    return Elements(dom)


def test_a_killed_executor_is_named_by_the_banner_within_seconds(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    chromium()  # fail early when it is missing
    prefix = f"dashfault-{uuid.uuid4().hex[:8]}."
    with running_stack(kafka_bootstrap, prefix, tmp_path) as stack:
        before = _monitor(stack, "/api/monitor/health")
        assert before["state"] == "ok", before
        assert [s["service"] for s in before["services"]] == ["monitor", "core", "executor"]
        healthy = _dom(stack, tmp_path / "profile-ok", "dashboard-healthy.html")
        assert healthy.by_id("health-banner")[0]["data-state"] == "ok"
        assert "hidden" in healthy.by_id("health-banner")[0]
        assert healthy.by_id("panel-services")[0]["data-state"] == "ok"
        rows = healthy.find(tag="tr", cls="service-row")
        assert {r["data-service"] for r, _ in rows} == {"monitor", "core", "executor"}
        assert {r["data-state"] for r, _ in rows} == {"ok"}

        executor = stack.services["executor"].process
        executor.kill()  # SIGKILL: no goodbye
        killed_at = time.monotonic()

        def named() -> dict[str, Any] | None:
            report = _monitor(stack, "/api/monitor/health")
            return next((p for p in report["problems"] if p["service"] == "executor"), None)

        problem = eventually(named, timeout=BANNER_WITHIN, what="the executor to be named")
        took = time.monotonic() - killed_at
        assert problem["state"] == "unreachable" and problem["component"] is None
        assert stack.urls["executor"] in problem["reason"]

        page = _dom(stack, tmp_path / "profile-fault", "dashboard-fault.html")
        banner, text = page.by_id("health-banner")
        assert banner["data-state"] == "failing" and "hidden" not in banner, banner
        assert "Fault in executor" in text, text
        [(item, line)] = page.find(tag="li", cls="health-problem")
        assert item["data-service"] == "executor" and item["data-state"] == "unreachable"
        assert stack.urls["executor"] in line
        [(row, _)] = page.find(tag="tr", cls="service-row", data_service="executor")
        assert row["data-state"] == "unreachable"
        print(f"the health report named the killed executor {took:.1f}s after kill -9")


def _put_on_the_log(stack: Stack, spec: TaskSpec) -> Event:
    event = Event.create(str(uuid.uuid4()), TaskCreated(task=spec))
    producer = Producer(
        {"bootstrap.servers": stack.env["KAFKA_BOOTSTRAP_SERVERS"], "partitioner": "murmur2_random"}
    )
    producer.produce(
        f"{stack.prefix}task-events",
        key=event.task_id.encode(),
        value=encode_event(event),
        headers=event_headers(event),
    )
    assert producer.flush(30) == 0
    return event


def test_a_poison_task_is_listed_as_quarantined_with_how_to_lift_it(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    chromium()
    prefix = f"dashquar-{uuid.uuid4().hex[:8]}."
    with running_stack(kafka_bootstrap, prefix, tmp_path, names=("core", "monitor")) as stack:
        assert _monitor(stack, "/api/monitor/quarantined") == {"total": 0, "items": []}
        spec = TaskSpec(
            name="poison", handler="noop", schedule=recorded_schedule(cron="0 0 30 2 *")
        )
        poison = _put_on_the_log(stack, spec)

        def listed() -> dict[str, Any] | None:
            body = _monitor(stack, "/api/monitor/quarantined")
            return body if body["total"] == 1 else None

        body = eventually(
            listed, timeout=60, what=lambda: f"the poison task listed\n{stack.logs()}"
        )
        [item] = body["items"]
        assert item["task_id"] == poison.task_id and item["name"] == "poison"
        assert item["component"] == "scheduler"
        assert item["reason"].startswith("CronError: "), item
        assert f"PATCH /api/tasks/{poison.task_id}" in item["hint"]
        assert f"taskstream tasks resume {poison.task_id}" in item["hint"]
        metrics = httpx.get(f"{stack.monitor}/metrics", timeout=10).text
        assert "taskstream_monitor_quarantined_tasks 1.0" in metrics

        page = _dom(stack, tmp_path / "profile-quarantine", "dashboard-quarantine.html")
        assert page.by_id("panel-quarantined")[0]["data-state"] == "ok"
        [(entry, text)] = page.find(tag="li", cls="quarantined-task")
        assert entry["data-task-id"] == poison.task_id and entry["data-component"] == "scheduler"
        assert "CronError" in text and "PATCH" in text, text

        task = httpx.get(f"{stack.core}/api/tasks/{poison.task_id}", timeout=10).json()
        fixed = httpx.patch(
            f"{stack.core}/api/tasks/{poison.task_id}",
            json={"schedule": {"every": "1h"}},
            headers={"If-Match": str(task["version"])},
            timeout=30,
        )
        assert fixed.status_code == 200, fixed.text
        eventually(
            lambda: _monitor(stack, "/api/monitor/quarantined")["total"] == 0,
            timeout=30,
            what="the lifted task to leave the list",
        )
