"""Scheduler memory: N active schedules in one :class:`taskstream.core.shard.Shard`, restored and
fired.

Builds ``--tasks`` schedules of mixed kinds (``every`` intervals, 5- and 6-field crons in
five time zones, one-shots, some with jitter, start and end; varying handlers, queues,
priorities, policies and params), and measures, each scenario in a fresh process:

- **log**: the restore path of a partition's catch-up: every ``TaskCreated`` goes through
  the wire codec (``encode_event``/``decode_event``, as the scheduler reads it) and
  ``Shard.apply``, then ``mark_ready`` arms the timers. Resident memory (RSS) before and
  after gives the bytes per task.
- **fire**: in that process, with the N timers loaded, the time of one full
  ``gc.collect()``, then ``--due-fraction`` of the tasks (1%) are due "now". First
  ``--rounds`` rounds of ``due()`` alone: ``Shard.due(now, limit=--batch)`` until nothing
  is due, then ``rearm`` of every plan (as after an aborted transaction). Then the
  committed drain: each batch's events are fed back through ``Shard.apply`` as the
  scheduler does after its transaction commits. Reports per-batch times and the lateness
  the shard adds (time from the start of the drain to the end of the slot's batch; the
  Kafka transaction is not included).
- **snapshot**: the failover path: a ``core.store.Snapshot`` of N ``TaskState`` (specs
  validated from JSON documents, as the store's snapshot did) becomes a Shard
  (``Shard(topics, snapshot)`` then ``mark_ready``); RSS with the snapshot, with the shard,
  and once the snapshot is dropped.
- **stream**: the same TaskStates handed over one at a time (``Snapshot.tasks`` as an
  iterator: the Shard iterates it once), as a store that streamed its rows would.

Times are virtual (the shard takes ``now`` as an argument), so the due tasks are exactly
those the generator made due. Prints a Markdown table.

    .venv/bin/python bench/scheduler_memory.py --tasks 1000000
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from taskstream.core.aggregate import TaskState, TaskStatus
from taskstream.core.shard import Shard
from taskstream.core.store import Snapshot
from taskstream.infra.settings import Topics
from taskstream.schemas import (
    Event,
    ExecutionScheduled,
    ExecutionSkipped,
    MisfirePolicy,
    OverlapPolicy,
    Priority,
    RetryPolicy,
    Schedule,
    TaskCreated,
    TaskSpec,
    decode_event,
    encode_event,
)

NOW = datetime(2030, 1, 7, 12, 0, 0, 500_000, tzinfo=UTC)
"""A Monday, half a second after 12:00:00 UTC: the crons of hot tasks match 12:00:00."""
TOP_OF_MINUTE = NOW.replace(microsecond=0)
TOPICS = Topics("bench.")

_EVERY = [timedelta(seconds=s) for s in (30, 60, 120, 300, 600, 900, 1800, 3600, 21600, 86400)]
_ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Asia/Kolkata"]
_CRON5 = [
    "*/5 * * * *",
    "*/15 * * * *",
    "7 * * * *",
    "23 */2 * * *",
    "45 3 * * *",
    "30 9 * * 1-5",
    "0 18 * * 5",
    "15 0 1 * *",
    "5,35 8-18 * * 1-5",
    "50 23 L * *",
]
_CRON6 = ["*/30 * * * * *", "15 */5 * * * *", "0 0 */2 * * *", "10 20 4 * * *"]
_HOT_CRONS = [  # each matches 12:00:00 UTC on Monday 2030-01-07, and nothing in the second before
    ("0 * * * *", "UTC"),
    ("*/5 * * * *", "Europe/Berlin"),
    ("0 13 * * *", "Europe/Berlin"),
    ("0 7 * * 1-5", "America/New_York"),
    ("30 17 * * *", "Asia/Kolkata"),
    ("0 21 * * *", "Asia/Tokyo"),
    ("0 0 12 * * *", "UTC"),
    ("*/30 * * * * *", "UTC"),
    ("0 */10 * * * *", "Europe/Berlin"),
]
_HANDLERS = ["noop", "http.get", "email.send", "report.build", "cleanup.run"]
_QUEUES = ["default", "default", "reports", "emails", "billing"]
_RETRIES = [
    RetryPolicy(),
    RetryPolicy(max_attempts=3),
    RetryPolicy(
        max_attempts=5, initial_delay=timedelta(seconds=10), max_delay=timedelta(minutes=10)
    ),
]
_PRIORITIES = [Priority.HIGH, Priority.LOW, Priority.MEDIUM, Priority.MEDIUM, Priority.MEDIUM]
_MISFIRES = [
    MisfirePolicy.FIRE_ONCE,
    MisfirePolicy.FIRE_ONCE,
    MisfirePolicy.SKIP,
    MisfirePolicy.FIRE_ALL,
]
_OVERLAPS = [OverlapPolicy.ALLOW, OverlapPolicy.ALLOW, OverlapPolicy.FORBID, OverlapPolicy.REPLACE]
_STARTS = [datetime(2030, 1, 8 + d, tzinfo=UTC) for d in range(10)]


@dataclass(frozen=True)
class Generated:
    task_id: str
    partition: int
    spec: TaskSpec
    created_at: datetime
    hot: bool


def _is_hot(i: int, fraction: float) -> bool:
    return ((i * 2654435761) % 2**32) / 2**32 < fraction


def generate(n: int, partitions: int, fraction: float, seed: int = 7) -> Iterator[Generated]:
    """N deterministic tasks; the ``fraction`` that are hot have a slot in [NOW-1s, NOW]."""
    rng = random.Random(seed)
    for i in range(n):
        hot = _is_hot(i, fraction)
        kind = i % 20
        handler = _HANDLERS[i % len(_HANDLERS)]
        if kind < 10:  # 50%: every
            every = _EVERY[i % len(_EVERY)] if i % 3 else timedelta(seconds=60 + i % 300)
            schedule = Schedule(every=every)
            back = every + timedelta(seconds=rng.random()) if hot else every * rng.random()
            if not hot:
                back = min(back, every - timedelta(seconds=2))
            created = NOW - back
        elif kind < 17:  # 35%: cron, 5 fields (30%) and 6 fields with seconds (5%)
            if hot:
                cron, zone = _HOT_CRONS[i % len(_HOT_CRONS)]
                created = TOP_OF_MINUTE - timedelta(seconds=rng.random())
            else:
                cron = _CRON5[i % len(_CRON5)] if kind < 16 else _CRON6[i % len(_CRON6)]
                zone = _ZONES[(i // 20) % len(_ZONES)]
                created = NOW - timedelta(seconds=rng.random() / 2)  # after 12:00:00
            schedule = Schedule(cron=cron, timezone=zone)
        elif kind < 19:  # 10%: every, with a jitter (5%) or with a start and an end (5%)
            every = _EVERY[i % 8]
            if kind == 17:
                jitter = None if hot else timedelta(seconds=10)  # hot ones must be due at NOW
                schedule = Schedule(every=every, jitter=jitter)
                back = (
                    every + timedelta(seconds=rng.random()) if hot else every * rng.random() * 0.9
                )
                created = NOW - back
            else:  # the first slot is the start
                start = NOW - timedelta(seconds=rng.random()) if hot else _STARTS[i % len(_STARTS)]
                end = datetime(2031, 1, 1 + i % 28, tzinfo=UTC)
                schedule = Schedule(every=every, start=start, end=end)
                created = NOW - timedelta(hours=1)
        else:  # 5%: one-shot
            at = (
                NOW - timedelta(seconds=rng.random())
                if hot
                else NOW + timedelta(seconds=rng.randrange(60, 30 * 86400))
            )
            schedule = Schedule(at=at)
            created = NOW - timedelta(hours=1)
        params: dict[str, Any]
        variant = i % 5
        if variant == 0:
            params = {"n": i}
        elif variant == 1:
            params = {"url": f"https://api.example.com/items/{i}", "method": "GET"}
        elif variant == 2:
            params = {"to": f"user{i}@example.com", "template": "digest", "locale": "en"}
        elif variant == 3:
            params = {"report": "sales", "region": ["eu", "us", "apac"][i % 3], "days": i % 30}
        else:
            params = {}
        spec = TaskSpec(
            name=f"{handler.split('.')[0]}-{i}",
            schedule=schedule,
            handler=handler,
            params=params,
            priority=_PRIORITIES[i % 5],
            queue=_QUEUES[(i // 5) % len(_QUEUES)],
            timeout=[None, timedelta(seconds=30), timedelta(minutes=5)][i % 3],
            retry=_RETRIES[(i // 3) % len(_RETRIES)],
            misfire=_MISFIRES[i % 4],
            overlap=_OVERLAPS[(i // 4) % 4],
        )
        task_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        yield Generated(task_id, i % partitions, spec, created, hot)


# -- measuring ---------------------------------------------------------------------------


def rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _warm_up() -> None:
    shard = Shard(TOPICS)
    for item in generate(200, 1, 0.5, seed=1):
        event = Event.create(item.task_id, TaskCreated(task=item.spec), occurred_at=item.created_at)
        shard.apply(decode_event(encode_event(event)), item.partition)
    shard.mark_ready(0)
    _drain(shard, 1000)
    gc.collect()


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _due_rounds(shard: Shard, batch: int, rounds: int) -> dict[str, Any]:
    """``due()`` alone: drain what is due in batches, then ``rearm`` every plan (as after
    an aborted transaction), ``rounds`` times."""
    batch_s: list[float] = []
    round_s: list[float] = []
    for _ in range(rounds):
        plans = []
        start = time.perf_counter()
        while True:
            t0 = time.perf_counter()
            plan = shard.due(NOW, limit=batch)
            if not plan:
                break
            batch_s.append(time.perf_counter() - t0)
            plans.append(plan)
        round_s.append(time.perf_counter() - start)
        for plan in plans:
            shard.rearm(plan)
    return {
        "rounds": rounds,
        "round_median_ms": statistics.median(round_s) * 1000 if round_s else 0.0,
        "round_max_ms": max(round_s, default=0.0) * 1000,
        "round_batch_p50_ms": _percentile(batch_s, 0.5) * 1000,
        "round_batch_p99_ms": _percentile(batch_s, 0.99) * 1000,
    }


def _drain(shard: Shard, batch: int) -> dict[str, Any]:
    """Fire everything due at NOW in batches, feeding the events back like the scheduler."""
    batch_s: list[float] = []
    due_s: list[float] = []
    lateness: list[float] = []
    fired = skipped = events = 0
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        plan = shard.due(NOW, limit=batch)
        t1 = time.perf_counter()
        if not plan:
            break
        for event in plan.events:
            shard.apply(event, plan.partitions[event.task_id])
        t2 = time.perf_counter()
        due_s.append(t1 - t0)
        batch_s.append(t2 - t0)
        events += len(plan.events)
        for event in plan.events:
            if isinstance(event.data, ExecutionScheduled):
                fired += 1
                lateness.append(t2 - start)
            elif isinstance(event.data, ExecutionSkipped):
                skipped += 1
                lateness.append(t2 - start)
    total = time.perf_counter() - start
    return {
        "batches": len(batch_s),
        "fired": fired,
        "skipped": skipped,
        "events": events,
        "total_s": total,
        "due_total_s": sum(due_s),
        "batch_p50_ms": _percentile(batch_s, 0.5) * 1000,
        "batch_p99_ms": _percentile(batch_s, 0.99) * 1000,
        "due_p50_ms": _percentile(due_s, 0.5) * 1000,
        "due_p99_ms": _percentile(due_s, 0.99) * 1000,
        "lateness_p50_ms": _percentile(lateness, 0.5) * 1000,
        "lateness_p99_ms": _percentile(lateness, 0.99) * 1000,
        "lateness_max_ms": max(lateness, default=0.0) * 1000,
    }


def phase_log(args: argparse.Namespace) -> dict[str, Any]:
    _warm_up()
    base = rss_mib()
    shard = Shard(TOPICS)
    generate_s = decode_s = apply_s = 0.0
    hot = 0
    clock = time.perf_counter
    for item in generate(args.tasks, args.partitions, args.due_fraction):
        t0 = clock()
        event = Event.create(item.task_id, TaskCreated(task=item.spec), occurred_at=item.created_at)
        raw = encode_event(event)
        t1 = clock()
        decoded = decode_event(raw)
        t2 = clock()
        shard.apply(decoded, item.partition)
        t3 = clock()
        generate_s += t1 - t0
        decode_s += t2 - t1
        apply_s += t3 - t2
        hot += item.hot
    del item, event, raw, decoded
    t0 = clock()
    for partition in range(args.partitions):
        shard.mark_ready(partition)
    ready_s = clock() - t0
    gc.collect()
    after = rss_mib()
    t0 = clock()
    gc.collect()
    gc_s = clock() - t0
    rounds = _due_rounds(shard, args.batch, args.rounds)
    fire = _drain(shard, args.batch)
    next_due = shard.next_due()
    return {
        "tasks": len(shard),
        "hot": hot,
        "rss_base_mib": base,
        "rss_after_mib": after,
        "bytes_per_task": (after - base) * 2**20 / args.tasks,
        "generate_s": generate_s,
        "decode_s": decode_s,
        "apply_s": apply_s,
        "ready_s": ready_s,
        "full_gc_s": gc_s,
        "peak_mib": peak_mib(),
        **rounds,
        "next_due_after_drain_s": None if next_due is None else next_due - NOW.timestamp(),
        "rss_after_fire_mib": rss_mib(),
        **{f"fire_{k}": v for k, v in fire.items()},
    }


def _stored_states(args: argparse.Namespace, timer: list[float]) -> Iterator[TaskState]:
    """The tasks as the store's snapshot gave them: specs validated from JSON documents.

    Adds the time spent generating and building them to ``timer[0]``.
    """
    clock = time.perf_counter
    items = generate(args.tasks, args.partitions, args.due_fraction)
    while True:
        t0 = clock()
        item = next(items, None)
        if item is None:
            return
        document = item.spec.model_dump(mode="json")  # the store's JSON column
        stamp = item.created_at.timestamp()
        state = TaskState(
            task_id=item.task_id,
            partition=item.partition,
            spec=TaskSpec.model_validate(document),
            status=TaskStatus.ACTIVE,
            version=1,
            created_at=datetime.fromtimestamp(stamp, UTC),  # one object per column, like
            updated_at=datetime.fromtimestamp(stamp, UTC),  # the rows of SQLAlchemy
            anchor=datetime.fromtimestamp(stamp, UTC),
            last_slot=None,
            last_change_event_id=str(uuid.uuid4()),
        )
        timer[0] += clock() - t0
        yield state


def phase_snapshot(args: argparse.Namespace) -> dict[str, Any]:
    """A Snapshot holding the list of N TaskStates, as ``TaskStore.snapshot`` returns it."""
    _warm_up()
    base = rss_mib()
    clock = time.perf_counter
    timer = [0.0]
    snapshot = Snapshot(offsets={}, tasks=list(_stored_states(args, timer)), active=[], runs=[])
    gc.collect()
    with_snapshot = rss_mib()
    t0 = clock()
    shard = Shard(TOPICS, snapshot)
    restore_s = clock() - t0
    t0 = clock()
    for partition in range(args.partitions):
        shard.mark_ready(partition)
    ready_s = clock() - t0
    gc.collect()
    with_shard = rss_mib()
    del snapshot
    gc.collect()
    dropped = rss_mib()
    return {
        "tasks": len(shard),
        "snapshot_build_s": timer[0],
        "snapshot_mib": with_snapshot - base,
        "shard_over_snapshot_mib": with_shard - with_snapshot,
        "rss_after_drop_mib": dropped - base,
        "restore_s": restore_s,
        "ready_s": ready_s,
        "peak_mib": peak_mib() - base,
    }


def phase_stream(args: argparse.Namespace) -> dict[str, Any]:
    """The same TaskStates, handed to the Shard one at a time (it iterates them once)."""
    _warm_up()
    base = rss_mib()
    clock = time.perf_counter
    timer = [0.0]
    tasks = cast("list[TaskState]", _stored_states(args, timer))
    t0 = clock()
    shard = Shard(TOPICS, Snapshot(offsets={}, tasks=tasks, active=[], runs=[]))
    restore_s = clock() - t0 - timer[0]
    t0 = clock()
    for partition in range(args.partitions):
        shard.mark_ready(partition)
    ready_s = clock() - t0
    gc.collect()
    return {
        "tasks": len(shard),
        "restore_s": restore_s,
        "ready_s": ready_s,
        "shard_mib": rss_mib() - base,
        "peak_mib": peak_mib() - base,
    }


# -- reporting ---------------------------------------------------------------------------


def _machine() -> str:
    model = "?"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def _run_phase(name: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        "--phase",
        name,
        "--tasks",
        str(args.tasks),
        "--partitions",
        str(args.partitions),
        "--due-fraction",
        str(args.due_fraction),
        "--batch",
        str(args.batch),
        "--rounds",
        str(args.rounds),
    ]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def report(
    args: argparse.Namespace,
    log: dict[str, Any],
    snap: dict[str, Any] | None,
    stream: dict[str, Any] | None,
) -> str:
    n = args.tasks
    rows = [
        ("tasks (partitions)", f"{n:,} ({args.partitions})"),
        ("RSS at start (imports, warm-up)", f"{log['rss_base_mib']:.0f} MiB"),
        (
            "RSS added by the N tasks (log restore)",
            f"{log['rss_after_mib'] - log['rss_base_mib']:.0f} MiB",
        ),
        ("resident bytes per task", f"{log['bytes_per_task']:.0f} B"),
        (
            "peak RSS over start (restore and fire)",
            f"{log['peak_mib'] - log['rss_base_mib']:.0f} MiB",
        ),
        ("encode events (generator, not restore)", f"{log['generate_s']:.1f} s"),
        (
            "decode_event of N TaskCreated (wire to Event)",
            f"{log['decode_s']:.1f} s ({log['decode_s'] / n * 1e6:.1f} µs/task)",
        ),
        (
            "Shard.apply of N TaskCreated",
            f"{log['apply_s']:.1f} s ({log['apply_s'] / n * 1e6:.1f} µs/task)",
        ),
        ("mark_ready (arm N timers)", f"{log['ready_s']:.1f} s"),
        ("full gc.collect() with the N tasks loaded", f"{log['full_gc_s'] * 1000:.0f} ms"),
        (
            f"due() alone, {log['rounds']} rounds (rearm between): round median / max",
            f"{log['round_median_ms']:.0f} / {log['round_max_ms']:.0f} ms",
        ),
        (
            "due() alone: batch p50 / p99",
            f"{log['round_batch_p50_ms']:.1f} / {log['round_batch_p99_ms']:.1f} ms",
        ),
        (
            "due now (fired + skipped / hot tasks)",
            f"{log['fire_fired']:,} + {log['fire_skipped']:,} / {log['hot']:,}",
        ),
        (f"batches of ≤ {args.batch}", f"{log['fire_batches']}"),
        (
            "committed drain: total (due + apply of its events)",
            f"{log['fire_total_s'] * 1000:.0f} ms",
        ),
        ("drain: of which in due()", f"{log['fire_due_total_s'] * 1000:.0f} ms"),
        (
            "batch p50 / p99 (due + apply)",
            f"{log['fire_batch_p50_ms']:.1f} / {log['fire_batch_p99_ms']:.1f} ms",
        ),
        (
            "due() per batch p50 / p99",
            f"{log['fire_due_p50_ms']:.1f} / {log['fire_due_p99_ms']:.1f} ms",
        ),
        (
            "lateness added p50 / p99 / max",
            f"{log['fire_lateness_p50_ms']:.0f} / {log['fire_lateness_p99_ms']:.0f} / "
            f"{log['fire_lateness_max_ms']:.0f} ms",
        ),
        ("next timer after the drain", f"NOW + {log['next_due_after_drain_s']:.2f} s"),
    ]
    if snap is not None:
        rows += [
            (
                "snapshot (list): N TaskStates, specs from JSON",
                f"{snap['snapshot_mib']:.0f} MiB, built in {snap['snapshot_build_s']:.1f} s",
            ),
            (
                "snapshot (list): Shard(topics, snapshot)",
                f"{snap['restore_s']:.1f} s ({snap['restore_s'] / n * 1e6:.1f} µs/task)",
            ),
            ("snapshot (list): mark_ready (arm N timers)", f"{snap['ready_s']:.1f} s"),
            (
                "snapshot (list): RSS added by the shard",
                f"{snap['shard_over_snapshot_mib']:.0f} MiB",
            ),
            (
                "snapshot (list): RSS over start once dropped",
                f"{snap['rss_after_drop_mib']:.0f} MiB",
            ),
            ("snapshot (list): peak RSS over start", f"{snap['peak_mib']:.0f} MiB"),
        ]
    if stream is not None:
        rows += [
            (
                "snapshot (streamed): Shard(topics, snapshot)",
                f"{stream['restore_s']:.1f} s ({stream['restore_s'] / n * 1e6:.1f} µs/task)",
            ),
            ("snapshot (streamed): mark_ready", f"{stream['ready_s']:.1f} s"),
            ("snapshot (streamed): RSS over start", f"{stream['shard_mib']:.0f} MiB"),
            ("snapshot (streamed): peak RSS over start", f"{stream['peak_mib']:.0f} MiB"),
        ]
    lines = [f"Machine: {_machine()}", "", "| measure | value |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--due-fraction", type=float, default=0.01)
    parser.add_argument("--batch", type=int, default=1000, help="due() limit per batch")
    parser.add_argument(
        "--rounds", type=int, default=5, help="uncommitted due() rounds before the drain"
    )
    parser.add_argument("--skip-snapshot", action="store_true", help="only the log path")
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(PHASES[args.phase](args)))
        return
    log = _run_phase("log", args)
    snap = stream = None
    if not args.skip_snapshot:
        snap = _run_phase("snapshot", args)
        stream = _run_phase("stream", args)
    print(report(args, log, snap, stream))
    print()
    print("<!-- raw: " + json.dumps({"log": log, "snapshot": snap, "stream": stream}) + " -->")


PHASES = {"log": phase_log, "snapshot": phase_snapshot, "stream": phase_stream}


if __name__ == "__main__":
    main()
