"""The monitor alone: how fast, and at what CPU, it folds a drain's ``task-events``.

Starts the monitor (only) under a fresh topic prefix, waits until it is healthy, then
produces the log a drain of ``--executions`` one-shot no-op tasks writes, as the real
pipeline orders it: every ``TaskCreated`` (``--no-created`` leaves them out), every
``ExecutionScheduled`` (the scheduler fires the burst first), then each execution's
outcome events (``ExecutionStarted`` and ``ExecutionSucceeded``; ``--outcome-only``
writes only the outcome, as a run that ends quickly does once the executor sends one
event per run). It measures, from the first record produced until the monitor's
``/api/monitor/metrics`` counts every execution succeeded:

* executions/s (wall) and the monitor's CPU (utime + stime of its process) per execution;
* the changelog records the monitor wrote per execution (the end offsets of every
  ``<prefix>monitor-*-changelog`` topic), and the ``task-events`` records it read.

No core and no executor run, so the figure is the monitor's own bound: the drain can go
no faster monitored than this. ``--profile DIR`` records the monitor with py-spy
(``bench/profile_summary.py DIR/monitor.txt`` sums it).

    .venv/bin/python bench/monitor_fold.py --executions 20000 --runs 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    Stack,
    checkout_env,
    kafka,
    machine,
    poll,
    process_cpu_seconds,
    profile,
    stop_profiles,
    write_results,
)

from taskstream.cli.dev import service_env
from taskstream.core.settings import CoreSettings
from taskstream.infra.kafka import ensure_topics, standard_topics
from taskstream.schemas import (
    Event,
    ExecutionScheduled,
    ExecutionStarted,
    ExecutionSucceeded,
    Priority,
    Schedule,
    TaskCreated,
    TaskSpec,
    encode_event,
    event_headers,
    execution_id,
)

BENCH = "monitor_fold"
DUE = datetime(2030, 1, 1, tzinfo=UTC)


def drain_log(executions: int, created: bool, outcome_only: bool) -> list[Event]:
    """The events a drain of ``executions`` one-shot tasks puts on ``task-events``."""
    tasks = [f"fold-{n:08d}" for n in range(executions)]
    runs = [execution_id(task_id, DUE, 1) for task_id in tasks]
    log: list[Event] = []
    if created:
        spec = TaskSpec(name="fold", schedule=Schedule(at=DUE), handler="noop")
        log += [Event.create(task_id, TaskCreated(task=spec)) for task_id in tasks]
    for task_id, run_id in zip(tasks, runs, strict=True):
        scheduled = ExecutionScheduled(
            execution_id=run_id,
            attempt=1,
            scheduled_for=DUE,
            topic="executions.default.medium",
            queue="default",
            priority=Priority.MEDIUM,
        )
        log.append(Event.create(task_id, scheduled, occurred_at=DUE))
    for n, (task_id, run_id) in enumerate(zip(tasks, runs, strict=True)):
        at = DUE + timedelta(milliseconds=n)
        if not outcome_only:
            started = ExecutionStarted(
                execution_id=run_id, attempt=1, scheduled_for=DUE, worker_id="w", handler="noop"
            )
            log.append(Event.create(task_id, started, occurred_at=at))
        succeeded = ExecutionSucceeded(
            execution_id=run_id,
            attempt=1,
            scheduled_for=DUE,
            worker_id="w",
            duration_seconds=0.0001,
        )
        log.append(Event.create(task_id, succeeded, occurred_at=at))
    return log


def produce(bootstrap: str, topic: str, log: list[Event]) -> None:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "linger.ms": 5,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 2_000_000,
        }
    )
    failures: list[str] = []

    def delivered(error: KafkaError | None, _: Message) -> None:
        if error is not None:
            failures.append(error.str())

    for event in log:
        producer.produce(
            topic,
            key=event.task_id.encode(),
            value=encode_event(event),
            headers=event_headers(event),
            on_delivery=delivered,
        )
        producer.poll(0)
    if producer.flush(120) or failures:
        raise SystemExit(f"producing failed: {failures[:3]}")


def changelog_records(bootstrap: str, prefix: str) -> int:
    """The records in every changelog topic of the monitor under ``prefix``."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = admin.list_topics(timeout=10).topics
    partitions = [
        TopicPartition(name, partition)
        for name, metadata in topics.items()
        if name.startswith(prefix) and name.endswith("-changelog")
        for partition in metadata.partitions
    ]
    if not partitions:
        return 0
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"fold-{uuid.uuid4().hex}"})
    try:
        total = 0
        for tp in partitions:
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            total += high - low
        return total
    finally:
        consumer.close()


def counted(stack: Stack) -> int:
    try:
        answer = httpx.get(f"{stack.monitor}/api/monitor/metrics?minutes=1", timeout=5)
    except httpx.HTTPError:
        return 0
    return int(answer.json()["totals"]["succeeded"]) if answer.status_code == 200 else 0


def one_run(bootstrap: str, args: argparse.Namespace, log: list[Event]) -> dict[str, Any]:
    prefix = f"bench-{BENCH}-{uuid.uuid4().hex[:8]}."
    workdir = Path(f"/tmp/taskstream-bench/{prefix.rstrip('.')}")
    workdir.mkdir(parents=True, exist_ok=True)
    env = checkout_env(
        service_env(
            TASKSTREAM_KAFKA_BOOTSTRAP_SERVERS=bootstrap,
            TASKSTREAM_TOPIC_PREFIX=prefix,
            TASKSTREAM_MONITOR_DATA_DIR=str(workdir / "monitor"),
            TASKSTREAM_LOG_FORMAT="json",
            TASKSTREAM_LOG_LEVEL="WARNING",
        )
    )
    settings = CoreSettings(kafka_bootstrap_servers=bootstrap, topic_prefix=prefix)
    ensure_topics(settings, standard_topics(settings, ["default"]))
    stack = Stack(bootstrap, prefix, workdir, env)
    try:
        stack.start("monitor", "monitor", "TASKSTREAM_MONITOR_PORT")
        poll(lambda: counted(stack) == 0 and _ready(stack), 120, 0.5, "the monitor's readiness")
        profilers = profile(stack, args.profile) if args.profile else []
        pid = stack.pids()["monitor"]
        cpu_before = process_cpu_seconds(pid)
        began = time.monotonic()
        produce(bootstrap, stack.task_events, log)
        produced = time.monotonic() - began
        poll(lambda: counted(stack) >= args.executions, args.timeout, 0.1, "the monitor's count")
        wall = time.monotonic() - began
        cpu = process_cpu_seconds(pid) - cpu_before
        stop_profiles(profilers)
        changelog = changelog_records(bootstrap, prefix)
    finally:
        stack.stop()
    n = args.executions
    return {
        "executions": n,
        "records": len(log),
        "produce_s": produced,
        "wall_s": wall,
        "executions_per_s": n / wall,
        "monitor_cpu_s": cpu,
        "monitor_cpu_ms_per_execution": cpu * 1000 / n,
        "monitor_cpu_us_per_record": cpu * 1e6 / len(log),
        "changelog_records_per_execution": changelog / n,
        "task_events_records_per_execution": len(log) / n,
    }


def _ready(stack: Stack) -> bool:
    try:
        return httpx.get(f"{stack.monitor}/ready", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--executions", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--no-created", action="store_true", help="leave out TaskCreated")
    parser.add_argument(
        "--outcome-only", action="store_true", help="one outcome event per run, no Started"
    )
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--profile", type=Path, help="py-spy the monitor into this directory")
    args = parser.parse_args()
    log = drain_log(args.executions, not args.no_created, args.outcome_only)
    runs = []
    with kafka() as bootstrap:
        for number in range(1, args.runs + 1):
            run = one_run(bootstrap, args, log)
            runs.append(run)
            print(
                f"run {number}: {run['executions_per_s']:,.0f} executions/s, monitor "
                f"{run['monitor_cpu_ms_per_execution']:.3f} ms CPU/execution "
                f"({run['monitor_cpu_us_per_record']:.0f} us/record), "
                f"{run['changelog_records_per_execution']:.2f} changelog records/execution",
                flush=True,
            )
    figures = {
        key: statistics.median(run[key] for run in runs)
        for key in (
            "executions_per_s",
            "monitor_cpu_ms_per_execution",
            "monitor_cpu_us_per_record",
            "changelog_records_per_execution",
            "task_events_records_per_execution",
        )
    }
    started = machine()
    path = write_results(BENCH, figures, runs, {k: str(v) for k, v in vars(args).items()}, started)
    print(f"median of {len(runs)}: {figures}\nresults: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
