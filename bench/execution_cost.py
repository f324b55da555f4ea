"""What one no-op execution costs: Kafka records and bytes by topic, CPU by service.

Starts a broker (unless ``KAFKA_BOOTSTRAP_SERVERS`` is set) and the real stack as
``taskstream dev`` does (one core with SQLite, one executor, one monitor; product
defaults: 12 ``task-events`` partitions, 6 per execution topic), under a fresh topic
prefix. It creates ``--executions`` one-shot ``noop`` tasks whose slots are spread over
``--spread`` seconds, starting once every task is created, and measures the window from
just before the first slot until everything settled (no topic end offset moved for
``--settle`` seconds):

* **records written**, per topic: the end offsets of every topic of the prefix and of
  the broker's internal topics (``__consumer_offsets``, ``__transaction_state``) before
  and after; the records in between are read back (``read_uncommitted``) and classified:
  ``task-events`` by ``event-type`` header, ``__consumer_offsets`` by group (offset
  commits, group metadata), ``__transaction_state`` by transactional id. End offset delta
  minus data records = transaction markers (control records).
* **bytes**, per topic: the growth of the partitions' ``.log`` segment files in the
  broker's data directory (what the broker stored: batch headers, lz4, markers), when
  the broker is our own; and the keys, values and headers of the records read.
* **records read**: the records written times the consumers that read the topic in
  steady state (``READERS``, from the code: every ``task-events`` record is read by the
  core's projection, its scheduler and the monitor; the executors' cancellation
  listeners read ``cancellations``); changelogs and internal topics are read only on a
  restore. The window starts before the tasks are created, so ``TaskCreated``, the
  API's CPU and the transaction markers count (``--from-first-slot``: from a second
  before the first slot, as before).
* **CPU**, per service: utime + stime of each service's process tree and of the broker
  JVM (``/proc/<pid>/stat``) before and after.

Then it stays idle for ``--idle`` seconds and measures the same again: the background
(heartbeats, commits, timers), scaled to the window's length, is subtracted. Figures
are per execution; ``--runs`` repeats everything with a fresh stack and prefix.

The implied ceilings: the machine's cores over the CPU seconds per execution (all
services and the broker), each service's one process over its own CPU per execution
(one Python process uses one core at most, give or take librdkafka's threads), and the
broker's limit from ``bench/kafka_limit.py`` (its newest results file, or
``--limit-json``): an execution needs W appends and R reads, so at the broker's produce
rate P and consume rate C it allows ``1 / (W/P + R/C)`` executions/s.

    /work/main/.venv/bin/python bench/execution_cost.py --executions 2000 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import struct
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    cpu_seconds,
    fmt,
    kafka,
    latest_results,
    machine,
    spread,
    summary,
    table,
    write_results,
)

from taskstream.cli.dev import ServiceProcess, service_env, start_service, wait_healthy
from taskstream.dev_broker.local_kafka import LocalKafkaBroker
from taskstream.infra.processes import free_port

SERVICES = (
    ("core", "TASKSTREAM_API_PORT"),
    ("executor", "TASKSTREAM_EXECUTOR_PORT"),
    ("monitor", "TASKSTREAM_MONITOR_PORT"),
)
INTERNAL_TOPICS = ("__consumer_offsets", "__transaction_state")
BACKGROUND_TOPICS = ("workers", "heartbeats")
"""Topics (name parts) written on a timer, not by executions."""
COMMIT_WAIT = 3.5

READERS: dict[str, tuple[str, ...]] = {
    "task-events": ("core projection", "core scheduler", "monitor agent"),
    "cancellations": ("executor cancellation listener",),
    "executions.": ("executor queue consumer",),
    "execution-logs": ("core log projection",),
    "workers": ("core worker directory", "monitor workers"),
}
"""Who reads each topic of the prefix in steady state (one core, one executor, one monitor)."""


def readers_of(topic: str) -> tuple[str, ...]:
    for start, readers in READERS.items():
        if topic == start or (start.endswith(".") and topic.startswith(start)):
            return readers
    return ()


# -- a snapshot of the broker and the processes ----------------------------------------


@dataclass
class Snapshot:
    at: float
    ends: dict[tuple[str, int], int]
    disk: dict[str, int]
    cpu: dict[str, float]


class Probe:
    """Reads end offsets, log sizes and CPU times; reads record ranges back."""

    def __init__(
        self,
        bootstrap: str,
        prefix: str,
        broker: LocalKafkaBroker | None,
        services: dict[str, ServiceProcess],
    ) -> None:
        self.bootstrap = bootstrap
        self.prefix = prefix
        self.broker = broker
        self.services = services
        self.admin = AdminClient({"bootstrap.servers": bootstrap})
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"bench-cost-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "isolation.level": "read_uncommitted",
                "enable.partition.eof": True,
            }
        )

    def close(self) -> None:
        self.consumer.close()

    def topics(self) -> dict[str, int]:
        """Topics of the prefix and the internal ones, with their partition counts."""
        metadata = self.admin.list_topics(timeout=30)
        return {
            name: len(topic.partitions)
            for name, topic in metadata.topics.items()
            if name.startswith(self.prefix) or name in INTERNAL_TOPICS
        }

    def ends(self) -> dict[tuple[str, int], int]:
        ends = {}
        for topic, partitions in self.topics().items():
            for partition in range(partitions):
                ends[(topic, partition)] = self._end(TopicPartition(topic, partition))
        return ends

    def _end(self, tp: TopicPartition, patience: float = 20.0) -> int:
        """The partition's end offset, asked again while a new topic elects its leader."""
        deadline = time.monotonic() + patience
        while True:
            try:
                _, high = self.consumer.get_watermark_offsets(tp, timeout=10, cached=False)
                return int(high)
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def disk(self) -> dict[str, int]:
        """Bytes of the ``.log`` segments of each topic (our own broker only)."""
        if self.broker is None or self.broker.data_dir is None:
            return {}
        sizes: Counter[str] = Counter()
        for directory in (self.broker.data_dir / "kraft-data").iterdir():
            topic, _, partition = directory.name.rpartition("-")
            if not partition.isdigit():
                continue
            if topic.startswith(self.prefix) or topic in INTERNAL_TOPICS:
                sizes[self._short(topic)] += sum(f.stat().st_size for f in directory.glob("*.log"))
        return dict(sizes)

    def cpu(self) -> dict[str, float]:
        cpu = {name: cpu_seconds(s.process.pid) for name, s in self.services.items()}
        if self.broker is not None and self.broker.pid is not None:
            cpu["broker"] = cpu_seconds(self.broker.pid)
        return cpu

    def snapshot(self) -> Snapshot:
        return Snapshot(time.monotonic(), self.ends(), self.disk(), self.cpu())

    def settle(self, quiet: float, timeout: float) -> Snapshot:
        """Wait until the pipeline's topics did not move for ``quiet`` seconds; a snapshot.

        Heartbeats (``workers`` and the monitor's table of them) and the internal topics
        move in the background, so only the other topics of the prefix are watched; then
        it waits :data:`COMMIT_WAIT` more for the last offset commits (the monitor's faust
        commits every 2.8 s, the executor every second).
        """
        deadline = time.monotonic() + timeout

        def pipeline() -> dict[tuple[str, int], int]:
            return {
                key: end
                for key, end in self.ends().items()
                if key[0].startswith(self.prefix)
                and not any(part in key[0] for part in BACKGROUND_TOPICS)
            }

        last = pipeline()
        since = time.monotonic()
        while time.monotonic() - since < quiet:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the topics did not settle in {timeout:.0f} s")
            time.sleep(0.5)
            now = pipeline()
            if now != last:
                last, since = now, time.monotonic()
        time.sleep(COMMIT_WAIT)
        return self.snapshot()

    def read(self, start: Snapshot, end: Snapshot) -> dict[str, Any]:
        """Classify the records between two snapshots: counts and payload bytes."""
        records: Counter[tuple[str, str]] = Counter()
        payload: Counter[tuple[str, str]] = Counter()
        offsets: Counter[str] = Counter()
        ranges = []
        for key, high in end.ends.items():
            low = start.ends.get(key, 0)
            if high > low:
                offsets[key[0]] += high - low
                ranges.append((key, low, high))
        for (topic, partition), low, high in ranges:
            self.consumer.assign([TopicPartition(topic, partition, low)])
            deadline = time.monotonic() + 60
            while True:
                message = self.consumer.poll(1.0)
                if time.monotonic() > deadline:
                    raise RuntimeError(f"reading {topic}[{partition}] {low}..{high} timed out")
                if message is None:
                    continue
                error = message.error()
                if error is not None:
                    break  # partition EOF: control records at the end are skipped
                if (message.offset() or 0) >= high:
                    break
                what = (self._short(topic), self._detail(topic, message))
                records[what] += 1
                payload[what] += (
                    len(message.key() or b"")
                    + len(message.value() or b"")
                    + sum(len(k) + len(v or b"") for k, v in message.headers() or [])
                )
            self.consumer.unassign()
        markers: Counter[str] = Counter()
        for topic, count in offsets.items():
            data = sum(n for (t, _), n in records.items() if t == self._short(topic))
            markers[self._short(topic)] = count - data
        return {
            "records": {f"{t}|{d}": n for (t, d), n in records.items()},
            "payload_bytes": {f"{t}|{d}": n for (t, d), n in payload.items()},
            "markers": {t: n for t, n in markers.items() if n},
        }

    def _short(self, topic: str) -> str:
        return topic.removeprefix(self.prefix)

    def _detail(self, topic: str, message: Any) -> str:
        key = message.key() or b""
        if topic == "__consumer_offsets":
            version, group, rest = _versioned_key(key)
            group = group.removeprefix(self.prefix)
            if version in (0, 1):
                _, topic_name, _ = _versioned_key(b"\0\0" + rest)
                return f"offset commit: {group} ({topic_name.removeprefix(self.prefix)})"
            if version == 2:
                return f"group metadata: {group}"
            return f"group record v{version}: {group}"
        if topic == "__transaction_state":
            _, transactional_id, _ = _versioned_key(key)
            return f"transaction state: {transactional_id.removeprefix(self.prefix)}"
        for name, value in message.headers() or []:
            if name == "event-type" and value:
                return str(value.decode())
        if message.value() is None:
            return "tombstone"
        short = self._short(topic)
        if short == "execution-logs":
            chunk = json.loads(message.value())
            kind = "final chunk" if chunk.get("final") else "chunk"
            return f"{kind}, {'no lines' if not chunk.get('lines') else 'lines'}"
        if short.endswith("-changelog"):
            return "table write"
        if short == "workers":
            return "heartbeat"
        return ""


def _versioned_key(key: bytes) -> tuple[int, str, bytes]:
    """``(version, first string, rest)`` of an internal topic's record key."""
    if len(key) < 4:
        return -1, "", key
    version, length = struct.unpack(">hh", key[:4])
    name = key[4 : 4 + max(length, 0)].decode(errors="replace")
    return version, name, key[4 + max(length, 0) :]


# -- the stack -----------------------------------------------------------------------


def start_stack(bootstrap: str, prefix: str, workdir: Path) -> dict[str, ServiceProcess]:
    env = service_env(
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        TASKSTREAM_KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        TASKSTREAM_TOPIC_PREFIX=prefix,
        TASKSTREAM_DATABASE_URL=f"sqlite:///{workdir / 'taskstream.db'}",
        TASKSTREAM_MONITOR_DATA_DIR=str(workdir / "monitor"),
        TASKSTREAM_UNSERVED_HANDLER="ignore",
        TASKSTREAM_INSTANCE_ID="bench",  # group and transactional ids alike in every run
    )
    services: dict[str, ServiceProcess] = {}
    try:
        for name, port_variable in SERVICES:
            port = free_port()
            env[port_variable] = str(port)
            service = start_service(
                name, env, f"http://127.0.0.1:{port}/health", workdir / f"{name}.log"
            )
            services[name] = service
            wait_healthy(service)
        deadline = time.monotonic() + 60
        while not httpx.get(services["core"].health_url).json().get("owned_partitions"):
            if time.monotonic() > deadline:
                raise RuntimeError("the core's scheduler owns no partition after 60 s")
            time.sleep(0.2)
    except BaseException:
        stop_stack(services)
        raise
    return services


def stop_stack(services: dict[str, ServiceProcess]) -> None:
    for service in reversed(list(services.values())):
        service.stop()


async def create_tasks(api: str, slots: list[datetime], concurrency: int) -> None:
    queue: asyncio.Queue[tuple[int, datetime]] = asyncio.Queue()
    for item in enumerate(slots):
        queue.put_nowait(item)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            n, slot = queue.get_nowait()
            response = await client.post(
                f"{api}/api/tasks",
                json={"name": f"cost-{n}", "schedule": {"at": slot.isoformat()}, "handler": "noop"},
            )
            response.raise_for_status()

    async with httpx.AsyncClient(timeout=60) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))


_SUCCEEDED = re.compile(
    r'^taskstream_executions_total\{[^}]*outcome="succeeded"[^}]*\} ([0-9.e+]+)$'
)


def succeeded(executor: ServiceProcess) -> int:
    text = httpx.get(executor.health_url.removesuffix("/health") + "/metrics", timeout=10).text
    return int(sum(float(m[1]) for line in text.splitlines() if (m := _SUCCEEDED.match(line))))


# -- one run -------------------------------------------------------------------------


def one_run(
    bootstrap: str, broker: LocalKafkaBroker | None, args: argparse.Namespace
) -> dict[str, Any]:
    prefix = f"bench-cost-{uuid.uuid4().hex[:8]}."
    with tempfile.TemporaryDirectory(prefix="taskstream-cost-") as tmp:
        workdir = Path(tmp)
        services = start_stack(bootstrap, prefix, workdir)
        probe = Probe(bootstrap, prefix, broker, services)
        try:
            return measure(probe, services, args)
        except BaseException:
            for service in services.values():
                print(f"--- {service.name} log tail:\n{service.log_tail()}", file=sys.stderr)
            raise
        finally:
            probe.close()
            stop_stack(services)


def measure(
    probe: Probe, services: dict[str, ServiceProcess], args: argparse.Namespace
) -> dict[str, Any]:
    count = args.executions
    api = services["core"].health_url.removesuffix("/health")
    base = datetime.now(UTC) + timedelta(seconds=args.lead)
    slots = [base + timedelta(seconds=args.spread * n / count) for n in range(count)]
    before_creation = probe.settle(args.settle, timeout=120)  # the topics made, quiet
    started = time.monotonic()
    asyncio.run(create_tasks(api, slots, args.concurrency))
    created = time.monotonic() - started
    print(f"  created {count} tasks in {created:.1f} s", file=sys.stderr, flush=True)
    probe.settle(args.settle, timeout=120)
    before_first = (base - datetime.now(UTC)).total_seconds() - 1.0
    if before_first <= 0:
        raise RuntimeError(
            f"creating and settling took longer than --lead {args.lead:.0f} s; raise it"
        )
    time.sleep(before_first)
    # the window starts before the tasks were created (their TaskCreated, the API's CPU),
    # or with --from-first-slot a second before the first slot
    s1 = probe.snapshot() if args.from_first_slot else before_creation
    deadline = time.monotonic() + args.lead + args.spread + args.timeout
    while (done := succeeded(services["executor"])) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {done} of {count} executions succeeded in time")
        time.sleep(1.0)
    finished = (datetime.now(UTC) - base).total_seconds()
    print(f"  {count} succeeded {finished:.1f} s after the first slot", file=sys.stderr)
    s2 = probe.settle(args.settle, timeout=120)
    load = os.getloadavg()  # the last minute's: mostly the executions
    time.sleep(args.idle)
    s3 = probe.snapshot()
    window = probe.read(s1, s2)
    background = probe.read(s2, s3)
    return {
        "loadavg_during": load,
        "executions": count,
        "create_seconds": created,
        "last_success_after_first_slot_s": finished,
        "window_s": s2.at - s1.at,
        "idle_s": s3.at - s2.at,
        "window": _deltas(s1, s2, window),
        "background": _deltas(s2, s3, background),
    }


def _deltas(start: Snapshot, end: Snapshot, read: dict[str, Any]) -> dict[str, Any]:
    offsets: Counter[str] = Counter()
    for key, high in end.ends.items():
        offsets[key[0]] += high - start.ends.get(key, 0)
    return {
        "seconds": end.at - start.at,
        "offsets": dict(offsets),
        "disk_bytes": {t: end.disk.get(t, 0) - start.disk.get(t, 0) for t in end.disk},
        "cpu_s": {name: end.cpu[name] - start.cpu.get(name, 0.0) for name in end.cpu},
        **read,
    }


# -- per execution -------------------------------------------------------------------


def per_execution(run: dict[str, Any]) -> dict[str, Any]:
    """The window minus the background scaled to the window, divided by the executions."""
    window, background = run["window"], run["background"]
    scale = window["seconds"] / background["seconds"]
    count = run["executions"]

    def net(name: str) -> dict[str, float]:
        keys = set(window[name]) | set(background[name])
        return {
            key: (window[name].get(key, 0) - scale * background[name].get(key, 0)) / count
            for key in keys
        }

    records = net("records")
    payload = net("payload_bytes")
    markers = net("markers")
    disk = net("disk_bytes")
    cpu = net("cpu_s")
    topics = sorted({key.split("|", 1)[0] for key in records} | set(markers))
    by_topic = {}
    for topic in topics:
        written = sum(n for key, n in records.items() if key.split("|", 1)[0] == topic)
        by_topic[topic] = {
            "records": written,
            "markers": markers.get(topic, 0.0),
            "payload_bytes": sum(n for key, n in payload.items() if key.split("|", 1)[0] == topic),
            "disk_bytes": disk.get(topic, 0.0),
            "readers": len(readers_of(topic)),
            "records_read": written * len(readers_of(topic)),
        }
    return {
        "records": records,
        "payload_bytes": payload,
        "by_topic": by_topic,
        "cpu_ms": {name: seconds * 1000 for name, seconds in cpu.items()},
        "background_per_s": {
            "records": sum(background["records"].values()) / background["seconds"],
            "cpu_ms": {
                name: seconds * 1000 / background["seconds"]
                for name, seconds in background["cpu_s"].items()
            },
        },
    }


# -- the report ----------------------------------------------------------------------


def limit_rates(path: Path | None) -> dict[str, Any] | None:
    if path is None or not path.exists():
        return None
    document = json.loads(path.read_text())
    phases = document["phases"]
    rates = {
        phase: phases[phase]["records_per_s"]["median"]
        for phase in ("java produce", "java consume", "python produce", "python consume")
        if phase in phases
    }
    broker_us = {
        phase: phases[phase]["broker_cpu_s_per_million"]["median"]  # s per 1M = us per record
        for phase in ("java produce", "java consume")
        if phase in phases
    }
    return {
        "file": str(path),
        "rates": rates,
        "broker_us_per_record": broker_us,
        "loadavg": document["machine"]["loadavg"],
    }


def report(
    runs: list[dict[str, Any]], args: argparse.Namespace, limits: dict[str, Any] | None
) -> dict[str, Any]:
    per = [per_execution(run) for run in runs]
    topics = sorted(
        {
            topic
            for p in per
            for topic, entry in p["by_topic"].items()
            # leave out topics that only move in the background (heartbeats)
            if max(abs(entry["records"]), abs(entry["markers"])) >= 0.005
        },
        key=_topic_order,
    )

    def stats(values: Iterable[float]) -> dict[str, float]:
        return summary(list(values))

    topic_rows = []
    topic_stats = {}
    for topic in topics:
        entry = {
            name: stats(p["by_topic"].get(topic, {}).get(name, 0.0) for p in per)
            for name in ("records", "markers", "payload_bytes", "disk_bytes", "records_read")
        }
        topic_stats[topic] = entry
        details = sorted(
            {
                key.split("|", 1)[1]
                for p in per
                for key, n in p["records"].items()
                if key.split("|", 1)[0] == topic and abs(n) >= 0.005
            }
        )
        topic_rows.append(
            [
                topic,
                spread(entry["records"], 2),
                spread(entry["markers"], 2),
                spread(entry["disk_bytes"]) if entry["disk_bytes"]["max"] else "-",
                spread(entry["payload_bytes"]),
                len(readers_of(topic)),
                spread(entry["records_read"], 2),
                "; ".join(
                    f"{d or '(none)'} {_median_of(per, f'{topic}|{d}'):.2f}" for d in details
                ),
            ]
        )
    totals = {
        "records": stats(sum(t["records"] for t in p["by_topic"].values()) for p in per),
        "markers": stats(sum(t["markers"] for t in p["by_topic"].values()) for p in per),
        "disk_bytes": stats(sum(t["disk_bytes"] for t in p["by_topic"].values()) for p in per),
        "payload_bytes": stats(
            sum(t["payload_bytes"] for t in p["by_topic"].values()) for p in per
        ),
        "records_read": stats(sum(t["records_read"] for t in p["by_topic"].values()) for p in per),
    }
    topic_rows.append(
        [
            "**all**",
            spread(totals["records"], 2),
            spread(totals["markers"], 2),
            spread(totals["disk_bytes"]) if totals["disk_bytes"]["max"] else "-",
            spread(totals["payload_bytes"]),
            "",
            spread(totals["records_read"], 2),
            "",
        ]
    )
    cpus = machine()["cpus"] or 1
    names = sorted({name for p in per for name in p["cpu_ms"]}, key=_service_order)
    cpu_stats = {name: stats(p["cpu_ms"].get(name, 0.0) for p in per) for name in names}
    total_cpu = stats(sum(p["cpu_ms"].values()) for p in per)
    cpu_rows = [
        [
            name,
            spread(cpu_stats[name], 3),
            fmt(1000 / cpu_stats[name]["median"]) if cpu_stats[name]["median"] > 0 else "-",
            fmt(statistics_median(p["background_per_s"]["cpu_ms"].get(name, 0.0) for p in per), 1),
        ]
        for name in names
    ]
    cpu_rows.append(
        [
            "**all**",
            spread(total_cpu, 3),
            f"{fmt(cpus * 1000 / total_cpu['median'])} on {cpus} cores",
            "",
        ]
    )
    ceilings: dict[str, Any] = {
        "machine_cpu": cpus * 1000 / total_cpu["median"],
        "per_service_one_core": {
            name: 1000 / s["median"] for name, s in cpu_stats.items() if s["median"] > 0
        },
    }
    written = totals["records"]["median"] + totals["markers"]["median"]
    read = totals["records_read"]["median"]
    if limits is not None:
        rates = limits["rates"]
        for client in ("java", "python"):
            produce, consume = rates.get(f"{client} produce"), rates.get(f"{client} consume")
            if produce and consume:
                ceilings[f"broker_{client}_clients"] = 1 / (written / produce + read / consume)
        ceilings["limits_file"] = limits["file"]
    print(
        f"## Cost of one no-op execution: {fmt(args.executions)} one-shot tasks, slots over "
        f"{args.spread:.0f} s, {len(runs)} run(s), per execution, median (min-max), background "
        "subtracted\n"
    )
    print(
        table(
            [
                "topic",
                "records written",
                "markers",
                "bytes on disk",
                "key+value+headers bytes",
                "readers",
                "records read",
                "what (median)",
            ],
            topic_rows,
        )
    )
    print()
    print(
        table(
            ["process", "CPU ms / execution", "ceiling, one core (executions/s)", "idle CPU ms/s"],
            cpu_rows,
        )
    )
    print()
    ceiling_rows = [["CPU: all processes on this machine's cores", fmt(ceilings["machine_cpu"])]]
    for name, value in ceilings["per_service_one_core"].items():
        if name != "broker":
            ceiling_rows.append([f"CPU: {name} alone, one core", fmt(value)])
    for client in ("java", "python"):
        if f"broker_{client}_clients" in ceilings:
            rates = limits["rates"] if limits else {}
            ceiling_rows.append(
                [
                    f"broker: {written:.1f} appends + {read:.1f} reads at "
                    f"{fmt(rates[f'{client} produce'])}/{fmt(rates[f'{client} consume'])} "
                    f"records/s ({client} perf clients)",
                    fmt(ceilings[f"broker_{client}_clients"]),
                ]
            )
    broker_us = limits["broker_us_per_record"] if limits else {}
    if "java produce" in broker_us and "java consume" in broker_us and "broker" in cpu_stats:
        expected = (written * broker_us["java produce"] + read * broker_us["java consume"]) / 1000
        ceilings["broker_cpu_ms_at_perf_cost"] = expected
        ceiling_rows.append(
            [
                f"broker CPU: {cpu_stats['broker']['median']:.2f} ms/execution measured; "
                f"{expected:.3f} ms if its records cost what the perf tools' do "
                f"({broker_us['java produce']:.1f} us/append, "
                f"{broker_us['java consume']:.1f} us/read)",
                fmt(cpus / expected * 1000) + " (broker alone, all cores)",
            ]
        )
    print(table(["implied ceiling", "executions/s"], ceiling_rows))
    if limits is None:
        print("\n(no bench/results/kafka_limit-*.json: bench/kafka_limit.py measures the broker)")
    return {
        "topics": topic_stats,
        "totals": totals,
        "cpu_ms": cpu_stats,
        "cpu_ms_total": total_cpu,
        "ceilings": ceilings,
        "per_run": per,
    }


def statistics_median(values: Iterable[float]) -> float:
    return summary(list(values))["median"]


def _median_of(per: list[dict[str, Any]], key: str) -> float:
    return statistics_median(p["records"].get(key, 0.0) for p in per)


def _topic_order(topic: str) -> tuple[int, str]:
    order = ("executions.", "task-events", "execution-logs", "workers", "monitor-", "__")
    for rank, start in enumerate(order):
        if topic.startswith(start):
            return rank, topic
    return len(order), topic


def _service_order(name: str) -> int:
    order = ("core", "executor", "monitor", "broker")
    return order.index(name) if name in order else len(order)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--executions", type=int, default=2000)
    parser.add_argument("--spread", type=float, default=10.0, help="seconds the slots cover")
    parser.add_argument(
        "--lead", type=float, help="seconds from creation to the first slot (default: auto)"
    )
    parser.add_argument("--settle", type=float, default=4.0, help="quiet seconds = settled")
    parser.add_argument(
        "--from-first-slot",
        action="store_true",
        help="start the window a second before the first slot (leave the creation out)",
    )
    parser.add_argument("--idle", type=float, default=20.0, help="background window, seconds")
    parser.add_argument("--timeout", type=float, default=300.0, help="for the executions, s")
    parser.add_argument("--concurrency", type=int, default=16, help="parallel task creations")
    parser.add_argument("--limit-json", type=Path, help="bench/kafka_limit.py results to compare")
    args = parser.parse_args()
    if args.lead is None:
        args.lead = 30 + args.executions / 25  # creation runs at 50-100 tasks/s here
    limits = limit_rates(args.limit_json or latest_results("kafka_limit"))
    load_before = machine()
    runs = []
    with kafka() as (bootstrap, broker):
        for number in range(1, args.runs + 1):
            print(f"run {number}/{args.runs}", file=sys.stderr, flush=True)
            runs.append(one_run(bootstrap, broker, args))
    result = report(runs, args, limits)
    load_after = machine()
    path = write_results(
        "execution_cost",
        {
            "machine": load_before,
            "loadavg_after": load_after["loadavg"],
            "settings": {
                "executions": args.executions,
                "spread_s": args.spread,
                "lead_s": args.lead,
                "idle_s": args.idle,
                "settle_s": args.settle,
                "readers": READERS,
            },
            "limits": limits,
            **result,
            "runs": runs,
        },
    )
    during = ", ".join(f"{run['loadavg_during'][0]:.2f}" for run in runs)
    print(
        f"\nload average before {load_before['loadavg'][0]:.2f}, "
        f"as each run's executions ended {during}, after {load_after['loadavg'][0]:.2f} "
        f"on {load_before['cpus']} CPUs; results: {path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
