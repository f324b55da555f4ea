"""A service whose essential component died exits non-zero (70), so that it is restarted.

No mock kills the component: two cores run with the same ``TASKSTREAM_INSTANCE_ID``, so
the same transactional id. Each one's fire producer fences the other's (the broker's
zombie fencing); a fenced scheduler renews its producer (a fence also follows a broker
outage longer than the transaction timeout, with no other instance), which fences the
twin in turn, until one of them has been fenced more than five times in five minutes and
stops, saying that another instance runs with its instance id. Which of the two gives up
first is a race. That one's ``/health`` says ``failed`` naming the scheduler (for the
watchdog's linger, so that a poll sees it), its watchdog logs why, it stops its other
components (a fenced producer that refuses to flush stops nothing else from closing) and
the process exits with :data:`EXIT_FATAL` within a bounded time. The other core goes on.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest
from aiokafka.partitioner import murmur2

from taskstream.cli.dev import start_service, wait_healthy
from taskstream.infra.processes import free_port
from taskstream.infra.thread_health import EXIT_FATAL
from tests.e2e.stack import running_stack
from tests.support import eventually

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

EXIT_WITHIN = 60.0
PARTITIONS = 3  # of task-events in the test stack
TASKS_PER_PARTITION = 2  # every 1 s: whichever partitions a core owns, it fires


def partition_of(task_id: str) -> int:
    """The task-events partition of a task: Kafka's default partitioner on its id."""
    return (murmur2(task_id.encode()) & 0x7FFFFFFF) % PARTITIONS


def test_of_two_cores_with_one_instance_id_one_exits_with_status_70(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = f"fatal-{uuid.uuid4().hex[:8]}."
    twin = {"TASKSTREAM_INSTANCE_ID": "twin", "TASKSTREAM_SCHEDULER_SESSION_TIMEOUT_MS": "6000"}
    with running_stack(kafka_bootstrap, prefix, tmp_path, names=("core",), **twin) as stack:
        first = stack.services["core"]
        # A core that owns no task never fires, so it never meets its twin's fence: it
        # would go on unfenced, and neither would exit. Every partition gets tasks.
        placed = dict.fromkeys(range(PARTITIONS), 0)
        while min(placed.values()) < TASKS_PER_PARTITION:
            created = httpx.post(
                f"{stack.core}/api/tasks",
                json={
                    "name": f"t{sum(placed.values())}",
                    "schedule": {"every": "1s"},
                    "handler": "noop",
                },
                timeout=30,
            )
            assert created.status_code == 201, created.text
            placed[partition_of(created.json()["id"])] += 1
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
        twins = {"first": first, "second": second}
        started = time.monotonic()
        said: dict[str, list[dict[str, object]]] = {name: [] for name in twins}

        def one_exited() -> tuple[str, int] | None:
            for name, core in twins.items():
                code = core.process.poll()
                if code is not None:
                    return name, code
            for name, core in twins.items():
                try:
                    answer = httpx.get(core.health_url, timeout=1)
                except httpx.TransportError:
                    continue
                if answer.status_code == 503:
                    said[name].append(answer.json())
            return None

        name, code = eventually(
            one_exited,
            timeout=EXIT_WITHIN,
            interval=0.05,
            what=lambda: f"one of the twin cores to exit\n{stack.logs()}",
        )
        took = time.monotonic() - started
        dead = twins[name]
        assert code == EXIT_FATAL, f"exit status {code}\n{dead.log_tail(40)}"
        print(f"the {name} core exited with {code} {took:.1f}s after the second started")

        log = dead.log_path.read_text()
        assert "another instance runs with instance id 'twin'" in log, dead.log_tail(40)
        assert "essential component(s) died (scheduler: " in log, dead.log_tail(40)
        assert "failed; stopping the rest" not in log, dead.log_tail(40)  # each stopped
        assert "core stopped in" in log, dead.log_tail(40)
        assert said[name], "its /health never answered 503 before it exited"
        body = said[name][-1]
        assert body["error"] == "unhealthy" and body["state"] == "failed", body
        components = body["components"]
        assert isinstance(components, dict)
        assert components["scheduler"]["state"] == "failed", components
        assert "scheduler: " in str(body["message"]), body

        [survivor] = [core for other, core in twins.items() if other != name]
        wait_healthy(survivor)  # the twin that fenced it goes on
        assert survivor.process.poll() is None
