"""Rebuild throughput: how fast ``taskstream rebuild`` replays task-events into a store.

Produces ``--events`` records (tasks created, then runs: scheduled, started, succeeded)
to a fresh topic prefix on the broker at ``KAFKA_BOOTSTRAP_SERVERS`` (or a broker of its
own, started on a free port), then times :func:`taskstream.core.rebuild.rebuild` into a new SQLite
file and into a new PostgreSQL database, and prints events/s for each.

PostgreSQL is ``TASKSTREAM_TEST_POSTGRES_URL`` if set, else the server
``scripts/postgres.sh`` installs and starts; the bench creates a database on it and
drops it afterwards.

Besides events/s it prints the CPU seconds this process used during each rebuild (the
projection and its Kafka client; not the database server's) and the load average: on a
shared machine, events per CPU second moves less than events/s.

    .venv/bin/python bench/rebuild.py                      # 200000 events
    .venv/bin/python bench/rebuild.py --events 50000 --databases sqlite
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka import KafkaError, Message, Producer
from psycopg import sql
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import fmt, machine, spread, summary, table, write_results

from taskstream.core.rebuild import RebuildReport, rebuild
from taskstream.core.settings import CoreSettings
from taskstream.dev_broker.local_kafka import LocalKafkaBroker
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

ROOT = Path(__file__).resolve().parents[1]
RUNS_PER_TASK = 3
EVENTS_PER_TASK = 1 + 3 * RUNS_PER_TASK
START = datetime(2030, 1, 1, tzinfo=UTC)


def task_events(task_number: int) -> list[Event]:
    """One task's log: created, then each run scheduled, started and succeeded."""
    task_id = f"bench-{task_number:08d}"
    at = START + timedelta(seconds=task_number)
    spec = TaskSpec(
        name=f"bench-{task_number}",
        schedule=Schedule(every=timedelta(minutes=1)),
        handler="noop",
        params={"n": task_number},
    )
    events = [Event.create(task_id, TaskCreated(task=spec), occurred_at=at)]
    for run in range(1, RUNS_PER_TASK + 1):
        slot = at + timedelta(minutes=run)
        run_id = execution_id(task_id, slot, 1)
        events += [
            Event.create(
                task_id,
                ExecutionScheduled(
                    execution_id=run_id,
                    attempt=1,
                    scheduled_for=slot,
                    topic="executions.default.medium",
                    queue="default",
                    priority=Priority.MEDIUM,
                ),
                occurred_at=slot,
            ),
            Event.create(
                task_id,
                ExecutionStarted(
                    execution_id=run_id,
                    attempt=1,
                    scheduled_for=slot,
                    worker_id="w",
                    handler="noop",
                ),
                occurred_at=slot + timedelta(milliseconds=5),
            ),
            Event.create(
                task_id,
                ExecutionSucceeded(
                    execution_id=run_id,
                    attempt=1,
                    scheduled_for=slot,
                    worker_id="w",
                    duration_seconds=0.001,
                ),
                occurred_at=slot + timedelta(milliseconds=10),
            ),
        ]
    return events


def produce(bootstrap: str, topic: str, events: int) -> int:
    """Produce about ``events`` records (whole tasks); return how many were written."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "partitioner": "murmur2_random",
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 20,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    failures: list[str] = []

    def delivered(error: KafkaError | None, _: Message) -> None:
        if error is not None:
            failures.append(error.str())

    written = 0
    for number in range(max(1, events // EVENTS_PER_TASK)):
        for event in task_events(number):
            producer.produce(
                topic,
                key=event.task_id.encode(),
                value=encode_event(event),
                headers=event_headers(event),
                on_delivery=delivered,
            )
            written += 1
        producer.poll(0)
    if producer.flush(120) or failures:
        raise SystemExit(f"producing failed: {failures[:3]}")
    return written


def postgres_admin_url() -> str:
    configured = os.environ.get("TASKSTREAM_TEST_POSTGRES_URL")
    if configured:
        return configured
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "postgres.sh")],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise SystemExit(f"scripts/postgres.sh failed:\n{result.stderr}")
    return lines[-1]


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A new database on the PostgreSQL server, dropped afterwards."""
    admin_url = postgres_admin_url()
    admin = make_url(admin_url).set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"bench_rebuild_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextlib.contextmanager
def sqlite_database() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="taskstream-bench-rebuild-") as directory:
        yield f"sqlite:///{Path(directory) / 'store.db'}"


@contextlib.contextmanager
def broker() -> Iterator[str]:
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured
        return
    with LocalKafkaBroker(port=0) as local:
        yield local.bootstrap_servers


def rebuild_once(
    name: str, bootstrap: str, prefix: str, args: argparse.Namespace
) -> tuple[RebuildReport, float]:
    """One rebuild of the prefix's task-events into a new ``name`` database, and its CPU."""
    database = sqlite_database() if name == "sqlite" else postgres_database()
    with database as url:
        settings = CoreSettings(
            kafka_bootstrap_servers=bootstrap,
            topic_prefix=prefix,
            task_events_partitions=args.partitions,
            database_url=url,
        )
        cpu = time.process_time()
        report = rebuild(settings, timeout=args.timeout)
        return report, time.process_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="records to replay")
    parser.add_argument("--partitions", type=int, default=12, help="partitions of task-events")
    parser.add_argument(
        "--databases", default="sqlite,postgres", help="comma-separated: sqlite, postgres"
    )
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per rebuild")
    parser.add_argument("--runs", type=int, default=3, help="rebuilds into each database")
    args = parser.parse_args()
    databases = [name.strip() for name in args.databases.split(",") if name.strip()]
    unknown = set(databases) - {"sqlite", "postgres"}
    if unknown:
        parser.error(f"unknown databases {sorted(unknown)}; use sqlite and/or postgres")

    with broker() as bootstrap:
        prefix = f"bench-rebuild-{uuid.uuid4().hex[:8]}."
        base = CoreSettings(
            kafka_bootstrap_servers=bootstrap,
            topic_prefix=prefix,
            task_events_partitions=args.partitions,
        )
        topic = base.topics.task_events
        ensure_topics(base, [s for s in standard_topics(base, []) if s.name == topic])
        started = time.monotonic()
        written = produce(bootstrap, topic, args.events)
        produce_seconds = time.monotonic() - started
        print(
            f"produced {written} events to {topic} ({args.partitions} partitions) on "
            f"{bootstrap} in {produce_seconds:.1f} s ({written / produce_seconds:.0f} events/s)",
            flush=True,
        )
        runs: list[dict[str, Any]] = []
        for number in range(args.runs):
            for name in databases:
                report, cpu = rebuild_once(name, bootstrap, prefix, args)
                if report.events != written:
                    raise SystemExit(f"{name}: replayed {report.events} of {written} events")
                runs.append(
                    {
                        "run": number + 1,
                        "database": name,
                        "events": report.events,
                        "seconds": report.seconds,
                        "events_per_second": report.events_per_second,
                        "cpu_seconds": cpu,
                        "load_average": os.getloadavg(),
                    }
                )
                print(
                    f"run {number + 1}/{args.runs}: rebuild into {name:<8} {report.events} "
                    f"events in {report.seconds:6.1f} s: {report.events_per_second:8.0f} "
                    f"events/s; this process's CPU {cpu:5.1f} s "
                    f"({report.events / cpu:8.0f} events per CPU second); load average "
                    f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}",
                    flush=True,
                )
    figures = {
        name: summary([r["events_per_second"] for r in runs if r["database"] == name])
        for name in databases
    }
    path = write_results(
        "rebuild",
        {"machine": machine(), "events": written, "figures": figures, "runs": runs},
    )
    print(
        table(
            ["store", "events", "events/s median (min-max)", "runs"],
            [[name, fmt(written), spread(figures[name]), args.runs] for name in databases],
        )
    )
    print(f"results: {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
