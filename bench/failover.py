"""Failover time: how long a killed core instance's tasks wait for a survivor.

Starts a broker (unless ``KAFKA_BOOTSTRAP_SERVERS`` is set) and two core instances,
creates tasks firing every second (with a long misfire grace, so late slots still
fire), kills the instance that owns partitions with SIGKILL, and reads ``task-events``
back: for each task owned by the victim, the failover time is the longest lateness
(fire commit time minus slot) of the slots due after the kill. Repeats ``--runs``
times with fresh topics and prints median/min/max.

    .venv/bin/python bench/failover.py --runs 3 --session-timeout-ms 6000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from taskstream.cli.dev import ServiceProcess, service_env, start_service, wait_healthy
from taskstream.dev_broker.local_kafka import LocalKafkaBroker
from taskstream.infra.processes import free_port
from tests.kafka_read import read_topic


def _core(env: dict[str, str], workdir: Path, name: str) -> ServiceProcess:
    port = free_port()
    service = start_service(
        "core",
        service_env(
            env,
            TASKSTREAM_API_PORT=str(port),
            TASKSTREAM_INSTANCE_ID=name,
            TASKSTREAM_DATABASE_URL=f"sqlite:///{workdir / name}.db",
        ),
        f"http://127.0.0.1:{port}/health",
        workdir / f"{name}.log",
    )
    wait_healthy(service)
    return service


def one_run(bootstrap: str, session_timeout_ms: int, tasks: int) -> float:
    prefix = f"bench-failover-{uuid.uuid4().hex[:8]}."
    workdir = Path(tempfile.mkdtemp(prefix="taskstream-failover-"))
    env = service_env(
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        TASKSTREAM_KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        TASKSTREAM_TOPIC_PREFIX=prefix,
        TASKSTREAM_TASK_EVENTS_PARTITIONS="6",
        TASKSTREAM_SCHEDULER_SESSION_TIMEOUT_MS=str(session_timeout_ms),
        TASKSTREAM_SCHEDULER_TRANSACTION_TIMEOUT_MS=str(session_timeout_ms),
    )
    cores = [_core(env, workdir, f"core-{n}") for n in range(2)]
    try:
        deadline = time.monotonic() + 60
        while not all(httpx.get(c.health_url).json()["owned_partitions"] for c in cores):
            if time.monotonic() > deadline:
                raise RuntimeError("instances did not share the partitions")
            time.sleep(0.2)
        victim = cores[1]
        owned = set(httpx.get(victim.health_url).json()["owned_partitions"])
        api = cores[0].health_url.removesuffix("/health")
        for n in range(tasks):
            httpx.post(
                f"{api}/api/tasks",
                json={
                    "name": f"f{n}",
                    "schedule": {"every": "1s"},
                    "handler": "noop",
                    "misfireGrace": "120s",
                },
                timeout=30,
            ).raise_for_status()
        time.sleep(5)  # let every task fire a few times before the kill
        victim.process.kill()
        killed = datetime.now(UTC)
        time.sleep(session_timeout_ms / 1000 + 12)  # the survivor takes over meanwhile
    finally:
        for core in cores:
            core.stop()
    worst = 0.0
    for record in read_topic(bootstrap, f"{prefix}task-events"):
        event = record.value
        if event["type"] != "ExecutionScheduled" or record.partition not in owned:
            continue
        slot = datetime.fromisoformat(str(event["data"]["scheduled_for"]))  # type: ignore[index]
        fired = datetime.fromisoformat(str(event["occurred_at"]))
        if slot > killed - timedelta(seconds=1):
            worst = max(worst, (fired - slot).total_seconds())
    return worst


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=30)
    parser.add_argument("--session-timeout-ms", type=int, default=6000)
    args = parser.parse_args()
    broker = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        broker = LocalKafkaBroker(port=0)
        bootstrap = broker.start()
    try:
        results = [
            one_run(bootstrap, args.session_timeout_ms, args.tasks) for _ in range(args.runs)
        ]
    finally:
        if broker is not None:
            broker.stop()
    print(
        f"failover time (s), session timeout {args.session_timeout_ms} ms, {args.runs} runs: "
        f"median {statistics.median(results):.2f}, min {min(results):.2f}, "
        f"max {max(results):.2f}  ({', '.join(f'{r:.2f}' for r in results)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
