"""Scale: one core instance with N active schedules (issue #6, item 4).

    .venv/bin/python bench/scale.py --tasks 1000000 --every 1h

1. N ``TaskCreated`` events (interval tasks, their slots spread evenly over one interval,
   so about N / interval fire per second) are produced straight to ``task-events``.
2. A core instance starts on an empty SQLite store: it projects the log and its scheduler
   restores the timers. Reported: the time until it owns every partition with all N
   tasks armed (``/health`` and ``taskstream_scheduler_owned_tasks``), its resident memory
   then (VmRSS) and its peak (VmHWM), and the time until the store lists all N tasks
   (the restart below restores from the store, so it waits for that).
3. It runs ``--steady`` seconds, then stops (SIGTERM) and starts again on the same store:
   the restore from the store's snapshot, timed and measured the same way.
4. The lateness of every fire (``ExecutionScheduled.occurred_at - scheduled_for``) while
   the instance was up: p50/p99/max, in the steady phase and across the restart (the slots
   due while nobody scheduled fire late by the downtime, under the misfire policy
   ``fire_once`` with a grace that covers it).

No executor or monitor runs: this measures the scheduler. Prints a Markdown table and
writes ``bench/results/scale-<UTC time>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Producer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.kafka_read

from taskstream.cli.dev import ServiceProcess, service_env, start_service, wait_healthy
from taskstream.dev_broker.local_kafka import LocalKafkaBroker
from taskstream.infra.kafka import ensure_topics, standard_topics
from taskstream.infra.processes import free_port
from taskstream.infra.settings import CommonSettings
from taskstream.schemas import Event, Schedule, TaskCreated, TaskSpec, encode_event, event_headers
from taskstream.schemas.durations import parse_duration
from tests.kafka_read import read_topic

RESULTS = Path(__file__).parent / "results"


def produce_tasks(bootstrap: str, topic: str, tasks: int, every: timedelta) -> float:
    """N TaskCreated events whose first slots fall evenly over the next interval; seconds."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "partitioner": "murmur2_random",
            "enable.idempotence": True,
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "compression.type": "lz4",
        }
    )
    start = datetime.now(UTC) + timedelta(seconds=30)
    step = every / tasks
    began = time.perf_counter()
    for n in range(tasks):
        spec = TaskSpec(
            name=f"scale-{n}",
            schedule=Schedule(every=every, start=start + n * step),
            handler="noop",
            misfire_grace=timedelta(minutes=10),
        )
        event = Event.create(str(uuid.uuid4()), TaskCreated(task=spec))
        while True:
            try:
                producer.produce(
                    topic,
                    key=event.task_id.encode(),
                    value=encode_event(event),
                    headers=event_headers(event),
                )
                break
            except BufferError:
                producer.poll(0.05)
        if n % 10_000 == 0:
            producer.poll(0)
    if producer.flush(120):
        raise RuntimeError("task events not delivered")
    return time.perf_counter() - began


def memory_kib(pid: int) -> dict[str, int]:
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values


def owned_tasks(metrics_url: str) -> float:
    for line in httpx.get(metrics_url, timeout=30).text.splitlines():
        if line.startswith("taskstream_scheduler_owned_tasks "):
            return float(line.split()[1])
    return 0.0


def wait_ready(core: ServiceProcess, partitions: int, tasks: int, timeout: float) -> float:
    """Seconds from now until the instance owns every partition with all tasks armed."""
    began = time.perf_counter()
    deadline = began + timeout
    metrics_url = core.health_url.removesuffix("/health") + "/metrics"
    while True:
        try:
            health = httpx.get(core.health_url, timeout=30).json()
            ready = len(health.get("owned_partitions", [])) == partitions
            if ready and owned_tasks(metrics_url) >= tasks:
                return time.perf_counter() - began
        except httpx.HTTPError:
            pass
        if time.perf_counter() > deadline:
            raise TimeoutError(f"core not ready with {tasks} tasks in {timeout:.0f}s")
        time.sleep(0.5)


def wait_projected(core: ServiceProcess, tasks: int, timeout: float) -> float:
    """Seconds from now until the store lists all N tasks (the projection caught up)."""
    began = time.perf_counter()
    api = core.health_url.removesuffix("/health")
    while True:
        try:
            total = httpx.get(f"{api}/api/tasks", params={"size": 1}, timeout=60).json()["total"]
            if total >= tasks:
                return time.perf_counter() - began
        except httpx.HTTPError:
            pass
        if time.perf_counter() - began > timeout:
            raise TimeoutError(f"the store did not list {tasks} tasks in {timeout:.0f}s")
        time.sleep(1.0)


def start_core(env: dict[str, str], workdir: Path) -> ServiceProcess:
    port = free_port()
    core = start_service(
        "core",
        service_env(env, TASKSTREAM_API_PORT=str(port)),
        f"http://127.0.0.1:{port}/health",
        workdir / "core.log",
    )
    wait_healthy(core, timeout=600)
    return core


def lateness(bootstrap: str, topic: str, windows: dict[str, tuple[datetime, datetime]]) -> Any:
    """Fire lateness (ms) of the slots due in each window: p50, p99, max, count."""
    late: dict[str, list[float]] = {name: [] for name in windows}
    for record in read_topic(bootstrap, topic, timeout=600):
        event = record.value
        if event.get("type") != "ExecutionScheduled":
            continue
        data: Any = event["data"]
        slot = datetime.fromisoformat(str(data["scheduled_for"]))
        fired = datetime.fromisoformat(str(event["occurred_at"]))
        for name, (begin, end) in windows.items():
            if begin <= slot < end:
                late[name].append((fired - slot).total_seconds() * 1000)
    return {name: summary(values) for name, values in late.items()}


def summary(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"count": 0, "p50": None, "p99": None, "max": None}
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "p50": round(statistics.median(ordered), 1),
        "p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 1),
        "max": round(ordered[-1], 1),
    }


def one_run(bootstrap: str, args: argparse.Namespace) -> dict[str, Any]:
    prefix = f"bench-scale-{uuid.uuid4().hex[:8]}."
    workdir = Path(tempfile.mkdtemp(prefix="taskstream-scale-"))
    env = service_env(
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        TASKSTREAM_KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        TASKSTREAM_TOPIC_PREFIX=prefix,
        TASKSTREAM_DATABASE_URL=f"sqlite:///{workdir / 'store.db'}",
        TASKSTREAM_INSTANCE_ID="scale-core",
    )
    settings = CommonSettings(kafka_bootstrap_servers=bootstrap, topic_prefix=prefix)
    ensure_topics(settings, standard_topics(settings, ["default"]))
    topic = settings.topics.task_events
    every = parse_duration(args.every)
    produce_s = produce_tasks(bootstrap, topic, args.tasks, every)
    partitions = settings.task_events_partitions

    first_up = datetime.now(UTC)
    core = start_core(env, workdir)
    try:
        cold_s = wait_ready(core, partitions, args.tasks, args.timeout)
        cold_memory = memory_kib(core.process.pid)
        projected_s = cold_s + wait_projected(core, args.tasks, args.timeout)
        steady_from = datetime.now(UTC)
        time.sleep(args.steady)
        steady_to = datetime.now(UTC)
    finally:
        core.stop()
    restart_at = datetime.now(UTC)
    core = start_core(env, workdir)
    try:
        warm_s = wait_ready(core, partitions, args.tasks, args.timeout)
        warm_memory = memory_kib(core.process.pid)
        time.sleep(args.steady)
        after_restart = datetime.now(UTC)
    finally:
        core.stop()
    late = lateness(
        bootstrap,
        topic,
        {
            "steady": (steady_from, steady_to),
            "across_restart": (steady_to, after_restart),
            "while_first_restoring": (first_up, steady_from),
        },
    )
    return {
        "tasks": args.tasks,
        "every": args.every,
        "produce_s": round(produce_s, 1),
        "cold_restore_s": round(cold_s, 1),
        "cold_rss_mib": round(cold_memory["VmRSS"] / 1024),
        "cold_peak_mib": round(cold_memory["VmHWM"] / 1024),
        "cold_store_projected_s": round(projected_s, 1),
        "restart_restore_s": round(warm_s, 1),
        "restart_rss_mib": round(warm_memory["VmRSS"] / 1024),
        "restart_peak_mib": round(warm_memory["VmHWM"] / 1024),
        "restart_downtime_s": round((after_restart - restart_at).total_seconds() - args.steady, 1),
        "fire_lateness_ms": late,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--every", default="1h", help="the tasks' interval")
    parser.add_argument("--steady", type=float, default=30.0, help="seconds up after restore")
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    broker = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        broker = LocalKafkaBroker(port=0)
        bootstrap = broker.start()
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"scale-{stamp}.json"
    runs: list[dict[str, Any]] = []
    document: dict[str, Any] = {}
    try:
        for number in range(args.runs):
            print(f"run {number + 1}/{args.runs}", file=sys.stderr, flush=True)
            runs.append(one_run(bootstrap, args))
            # written after every run: a run takes ~20 minutes, a stop keeps those done
            document = {"bench": "scale", "figures": runs[-1], "runs": runs}
            path.write_text(json.dumps(document, indent=2) + "\n")
    finally:
        if broker is not None:
            broker.stop()
    print(
        "| run | tasks | cold restore | RSS / peak | restart restore | RSS / peak | "
        "fire lateness steady p50/p99/max | across restart p99/max |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n, run in enumerate(runs, 1):
        steady, across = (
            run["fire_lateness_ms"]["steady"],
            run["fire_lateness_ms"]["across_restart"],
        )
        print(
            f"| {n} | {run['tasks']:,} | {run['cold_restore_s']} s | {run['cold_rss_mib']} / "
            f"{run['cold_peak_mib']} MiB | {run['restart_restore_s']} s | {run['restart_rss_mib']} "
            f"/ {run['restart_peak_mib']} MiB | {steady['p50']} / {steady['p99']} / "
            f"{steady['max']} ms | {across['p99']} / {across['max']} ms |"
        )
    print(json.dumps(document))
    print(f"results: {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
