"""kill -9 of the broker: every /health says so, writes fail fast, everything resumes.

The test runs its own broker (the session's one must not die) on a fixed data directory,
kills it with SIGKILL and starts it again on the same port and data.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskstream.dev_broker.local_kafka import LocalKafkaBroker
from tests.e2e.stack import Stack, running_stack
from tests.support import eventually

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

WRITE_TIMEOUT = 3.0
MARGIN = 2.0
DETECTION = 15.0


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[LocalKafkaBroker]:
    broker = LocalKafkaBroker(port=0, data_dir=tmp_path / "kafka")
    broker.start(timeout=120)
    try:
        yield broker
    finally:
        broker.stop()


def _task(name: str) -> dict[str, Any]:
    return {"name": name, "schedule": {"every": "1s"}, "handler": "echo", "params": {"n": 1}}


def _health(url: str) -> httpx.Response | None:
    try:
        return httpx.get(f"{url}/health", timeout=5)
    except httpx.HTTPError:
        return None


def _names_kafka(stack: Stack, name: str) -> dict[str, Any] | None:
    response = _health(stack.urls[name])
    if response is None or response.status_code != 503:
        return None
    body: dict[str, Any] = response.json()
    assert body["error"] == "unhealthy", body
    assert body["components"]["kafka"]["state"] == "unavailable", body
    assert "kafka: unreachable since" in body["message"], body
    return body


def _post(stack: Stack, name: str) -> tuple[httpx.Response, float]:
    began = time.monotonic()
    response = httpx.post(f"{stack.core}/api/tasks", json=_task(name), timeout=300)
    return response, time.monotonic() - began


def test_a_killed_broker_is_reported_writes_fail_fast_and_everything_resumes(
    broker: LocalKafkaBroker, tmp_path: Path
) -> None:
    prefix = f"outage-{uuid.uuid4().hex[:8]}."
    with running_stack(
        broker.bootstrap_servers,
        prefix,
        tmp_path,
        TASKSTREAM_KAFKA_WRITE_TIMEOUT=f"{WRITE_TIMEOUT:g}s",
    ) as stack:
        for name in stack.urls:
            eventually(
                lambda name=name: (
                    httpx.get(f"{stack.urls[name]}/ready", timeout=5).status_code == 200
                ),
                timeout=60,
                interval=0.5,
                what=lambda name=name: f"{name} to be ready\n{stack.logs()}",
            )
        before, _ = _post(stack, "before")
        assert before.status_code == 201, before.text

        broker.kill()
        killed = time.monotonic()

        # a write right away (the probe may not know yet): bounded by the setting
        refused, took = _post(stack, "during")
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"] == "kafka_unavailable", refused.text
        assert took <= WRITE_TIMEOUT + MARGIN, f"the write took {took:.1f}s"

        for name in stack.urls:
            eventually(
                lambda name=name: _names_kafka(stack, name),
                timeout=max(1.0, DETECTION - (time.monotonic() - killed)),
                interval=0.5,
                what=lambda name=name: f"{name}'s /health to name kafka\n{stack.logs()}",
            )
        assert time.monotonic() - killed <= DETECTION

        # once the outage is known, a write is refused at once, with nothing queued
        refused, took = _post(stack, "known")
        assert refused.status_code == 503 and refused.json()["error"] == "kafka_unavailable"
        assert "unreachable since" in refused.json()["message"], refused.text
        assert took < 1.0, f"the write took {took:.1f}s"

        broker.start(timeout=120)
        for name in stack.urls:
            eventually(
                lambda name=name: (
                    (r := _health(stack.urls[name])) is not None and r.status_code == 200
                ),
                timeout=90,
                interval=0.5,
                what=lambda name=name: f"{name}'s /health to be 200 again\n{stack.logs()}",
            )

        created, _ = _post(stack, "after")
        assert created.status_code == 201, created.text
        task_id = created.json()["id"]

        def succeeded() -> bool:
            response = httpx.get(
                f"{stack.monitor}/api/monitor/tasks/{task_id}/executions", timeout=5
            )
            items = response.json().get("items", []) if response.status_code == 200 else []
            return any(item["status"] == "succeeded" for item in items)

        eventually(succeeded, timeout=90, interval=0.5, what=lambda: f"a run\n{stack.logs()}")
        # no write refused during the outage shows up later: none was left queued
        listed = httpx.get(f"{stack.core}/api/tasks?size=100", timeout=10).json()["items"]
        assert sorted(item["name"] for item in listed) == ["after", "before"]
