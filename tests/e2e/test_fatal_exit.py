"""A service whose essential component died exits non-zero (70), so that it is restarted.

No mock kills the component: two cores run with the same ``TASKSTREAM_INSTANCE_ID``, so
the same transactional id. The second one's producer fences the first's (the broker's
zombie fencing); the first one's scheduler meets the fatal error at its next fire
transaction and stops. Its ``/health`` says ``failed`` naming the scheduler (for the
watchdog's linger, so that a poll sees it), its watchdog logs why, and the process exits
with :data:`EXIT_FATAL` within a bounded time. The second core goes on.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest

from taskstream.dev import start_service, wait_healthy
from taskstream.infra.processes import free_port
from taskstream.infra.thread_health import EXIT_FATAL
from tests.e2e.stack import running_stack
from tests.support import eventually

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

EXIT_WITHIN = 60.0
TASKS = 9  # every 1 s, spread over the 3 partitions: each core fires some


def test_a_fenced_scheduler_ends_its_core_with_exit_status_70(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = f"fatal-{uuid.uuid4().hex[:8]}."
    twin = {"TASKSTREAM_INSTANCE_ID": "twin", "TASKSTREAM_SCHEDULER_SESSION_TIMEOUT_MS": "6000"}
    with running_stack(kafka_bootstrap, prefix, tmp_path, names=("core",), **twin) as stack:
        first = stack.services["core"]
        for index in range(TASKS):
            created = httpx.post(
                f"{stack.core}/api/tasks",
                json={"name": f"t{index}", "schedule": {"every": "1s"}, "handler": "noop"},
                timeout=30,
            )
            assert created.status_code == 201, created.text
        assert httpx.get(f"{stack.core}/health", timeout=10).status_code == 200

        port = free_port()
        env = {
            **stack.env,
            "TASKSTREAM_API_PORT": str(port),
            "TASKSTREAM_DATABASE_URL": f"sqlite:///{tmp_path / 'second.db'}",
        }
        second = start_service(
            "core", env, f"http://127.0.0.1:{port}/health", tmp_path / "core-second.log"
        )
        stack.services["core-second"] = second
        started = time.monotonic()
        said: list[dict[str, object]] = []

        def exited() -> int | None:
            code = first.process.poll()
            if code is not None:
                return code if code else -1  # 0 is an answer too: make it truthy
            try:
                answer = httpx.get(first.health_url, timeout=1)
            except httpx.TransportError:
                return None
            if answer.status_code == 503:
                said.append(answer.json())
            return None

        code = eventually(
            exited,
            timeout=EXIT_WITHIN,
            interval=0.05,
            what=f"the fenced core to exit\n{stack.logs()}",
        )
        took = time.monotonic() - started
        assert code == EXIT_FATAL, f"exit status {code}\n{first.log_tail(40)}"
        print(f"the fenced core exited with {code} {took:.1f}s after its twin started")

        log = first.log_path.read_text()
        assert "essential component(s) died (scheduler: " in log, first.log_tail(40)
        assert said, "its /health never answered 503 before it exited"
        body = said[-1]
        assert body["error"] == "unhealthy" and body["state"] == "failed", body
        components = body["components"]
        assert isinstance(components, dict)
        assert components["scheduler"]["state"] == "failed", components
        assert "scheduler: " in str(body["message"]), body

        wait_healthy(second)  # the twin that fenced it goes on
        assert second.process.poll() is None
