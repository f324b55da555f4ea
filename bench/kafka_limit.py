"""The physical limit: how fast this machine's broker takes and serves taskstream-sized records.

Starts a broker (unless ``KAFKA_BOOTSTRAP_SERVERS`` is set), and for each of ``--runs``
runs creates a fresh 6-partition topic like taskstream's execution topics and measures:

* **java produce / consume**: the perf tools that ship with the broker jars,
  ``org.apache.kafka.tools.ProducerPerformance`` and
  ``org.apache.kafka.tools.ConsumerPerformance`` (``java -cp '<libs>/*'``);
* **python produce / consume**: confluent-kafka (the client every taskstream service
  uses) producing and consuming as fast as it can in this one process: the client-side
  ceiling of one Python process.

The records are taskstream's own: a payload file of encoded ``WorkOrder``,
``ExecutionScheduled``, ``ExecutionStarted``, ``ExecutionSucceeded`` values and final log
chunks (290-400 bytes each, JSON, so lz4 compresses them as it does in production). The
producers use taskstream's settings (``taskstream/infra/kafka.py``'s ``producer_config``):
``acks=all``, idempotence on, ``linger.ms=2``, lz4; the Java producer's ``batch.size``
is set to librdkafka's default (1,000,000 bytes) since taskstream leaves it at that.
The consumers read ``read_committed`` like taskstream's. Records carry no key (the perf
tool sends none); taskstream's carry a 36-byte task id and three small headers.

Prints a Markdown table (records/s and MiB/s of record values, median (min-max) over the
runs, and the CPU seconds the broker and the client spent per million records) and
writes everything to ``bench/results/kafka_limit-<UTC timestamp>.json``.

    /work/main/.venv/bin/python bench/kafka_limit.py --runs 3 --records 500000
"""

from __future__ import annotations

import argparse
import gc
import re
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    MIB,
    cpu_seconds,
    fmt,
    kafka,
    machine,
    record_sizes,
    sample_records,
    spread,
    summary,
    table,
    write_results,
)

from taskstream.dev_broker.kafka_jars import fetch_kafka_jars

PARTITIONS = 6
"""Like taskstream's execution topics (``TASKSTREAM_EXECUTION_PARTITIONS``)."""

PRODUCER_SETTINGS = {
    "acks": "all",
    "enable.idempotence": "true",
    "linger.ms": "2",
    "compression.type": "lz4",
}
"""taskstream's ``producer_config`` (``taskstream/infra/kafka.py``)."""

JAVA_BATCH_SIZE = "1000000"
"""librdkafka's default ``batch.size``, which taskstream does not change."""

_PRODUCER_LINE = re.compile(
    r"(?P<records>\d+) records sent, (?P<rate>[\d.]+) records/sec \((?P<mb>[\d.]+) MB/sec\), "
    r"(?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency"
    r"(?:, (?P<p50>\d+) ms 50th, (?P<p95>\d+) ms 95th, (?P<p99>\d+) ms 99th)?"
)


def _java(libs: Path, main_class: str, *args: str, timeout: float) -> tuple[str, float]:
    """Run one Kafka tool; its stdout and the CPU seconds it used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(
        ["java", "-Xmx512m", "-cp", f"{libs}/*", main_class, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise RuntimeError(f"{main_class} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout, cpu


def _properties(settings: dict[str, str]) -> list[str]:
    return [f"{key}={value}" for key, value in settings.items()]


class Limits:
    def __init__(self, bootstrap: str, broker_pid: int | None, libs: Path, payloads: Path) -> None:
        self.bootstrap = bootstrap
        self.broker_pid = broker_pid
        self.libs = libs
        self.payloads = payloads
        self.values = [line.encode() for line in payloads.read_text().splitlines()]
        self.mean_size = sum(map(len, self.values)) / len(self.values)
        self.admin = AdminClient({"bootstrap.servers": bootstrap})

    def topic(self) -> str:
        name = f"bench-limit-{uuid.uuid4().hex[:8]}"
        futures = self.admin.create_topics(
            [NewTopic(name, num_partitions=PARTITIONS, replication_factor=1)]
        )
        futures[name].result(30)
        deadline = time.monotonic() + 30
        while len(self.admin.list_topics(name, timeout=10).topics[name].partitions) < PARTITIONS:
            if time.monotonic() > deadline:
                raise RuntimeError(f"topic {name} has no metadata")
            time.sleep(0.1)
        return name

    def drop(self, topic: str) -> None:
        for future in self.admin.delete_topics([topic]).values():
            future.result(30)

    def _broker_cpu(self) -> float:
        return cpu_seconds(self.broker_pid) if self.broker_pid else float("nan")

    def _measure(self, name: str, records: int, run: Any) -> dict[str, Any]:
        broker_before = self._broker_cpu()
        result = run()
        result["broker_cpu_s"] = self._broker_cpu() - broker_before
        result["records"] = records
        result["mib_per_s"] = result["records_per_s"] * self.mean_size / MIB
        print(
            f"  {name}: {fmt(result['records_per_s'])} records/s, {result['mib_per_s']:.1f} MiB/s",
            file=sys.stderr,
            flush=True,
        )
        return result

    # -- the broker's own tools ------------------------------------------------------

    def java_produce(self, topic: str, records: int) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            out, cpu = _java(
                self.libs,
                "org.apache.kafka.tools.ProducerPerformance",
                "--bootstrap-server",
                self.bootstrap,
                "--topic",
                topic,
                "--num-records",
                str(records),
                "--throughput",
                "-1",
                "--payload-file",
                str(self.payloads),
                "--command-property",
                *_properties({**PRODUCER_SETTINGS, "batch.size": JAVA_BATCH_SIZE}),
                timeout=600,
            )
            match = None
            for line in out.splitlines():
                match = _PRODUCER_LINE.search(line) or match
            if match is None:
                raise RuntimeError(f"no summary line in ProducerPerformance's output:\n{out}")
            return {
                "records_per_s": float(match["rate"]),
                "latency_ms": {
                    "avg": float(match["avg"]),
                    "max": float(match["max"]),
                    "p50": float(match["p50"] or "nan"),
                    "p99": float(match["p99"] or "nan"),
                },
                "client_cpu_s": cpu,
                "summary_line": match.group(0),
            }

        return self._measure("java produce", records, run)

    def java_consume(self, topic: str, records: int) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            out, cpu = _java(
                self.libs,
                "org.apache.kafka.tools.ConsumerPerformance",
                "--bootstrap-server",
                self.bootstrap,
                "--topic",
                topic,
                "--num-records",
                str(records),
                "--group",
                f"bench-limit-{uuid.uuid4().hex[:8]}",
                "--command-property",
                "isolation.level=read_committed",
                "auto.offset.reset=earliest",
                timeout=600,
            )
            lines = [line for line in out.splitlines() if line.strip()]
            header = next(i for i, line in enumerate(lines) if line.startswith("start.time"))
            names = [name.strip() for name in lines[header].split(",")]
            values = [value.strip() for value in lines[header + 1].split(",")]
            row = dict(zip(names, values, strict=True))
            return {
                # fetch.*: from the first fetch to the last, without the group's join
                "records_per_s": float(row["fetch.nMsg.sec"]),
                "records_per_s_with_join": float(row["nMsg.sec"]),
                "rebalance_ms": float(row["rebalance.time.ms"]),
                "consumed": int(float(row["data.consumed.in.nMsg"])),
                "client_cpu_s": cpu,
                "row": row,
            }

        return self._measure("java consume", records, run)

    # -- confluent-kafka in this process ----------------------------------------------

    def python_produce(self, topic: str, records: int) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            producer = Producer({"bootstrap.servers": self.bootstrap, **PRODUCER_SETTINGS})
            delivered = [0]
            failed = [0]

            def on_delivery(error: KafkaError | None, _: Any) -> None:
                if error is None:
                    delivered[0] += 1
                else:
                    failed[0] += 1

            values = self.values
            count = len(values)
            cpu = time.process_time()
            started = time.perf_counter()
            for n in range(records):
                value = values[n % count]
                while True:
                    try:
                        producer.produce(topic, value, on_delivery=on_delivery)
                        break
                    except BufferError:
                        producer.poll(0.01)
                if n % 1000 == 0:
                    producer.poll(0)
            left = producer.flush(120)
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu
            del producer  # disconnects now, not when the broker is gone
            gc.collect()
            if left or failed[0] or delivered[0] != records:
                raise RuntimeError(f"python produce: {left} left, {failed[0]} failed")
            return {"records_per_s": records / elapsed, "client_cpu_s": cpu}

        return self._measure("python produce", records, run)

    def python_consume(self, topic: str, records: int) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            consumer = Consumer(
                {
                    "bootstrap.servers": self.bootstrap,
                    "group.id": f"bench-limit-{uuid.uuid4().hex[:8]}",
                    "enable.auto.commit": False,
                    "auto.offset.reset": "earliest",
                    "isolation.level": "read_committed",
                }
            )
            consumer.subscribe([topic])
            seen = 0
            first = None
            cpu = time.process_time()
            deadline = time.monotonic() + 300
            try:
                while seen < records:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"python consume: {seen} of {records} in 300 s")
                    batch = consumer.consume(num_messages=10_000, timeout=1.0)
                    for message in batch:
                        if message.error() is None:
                            if first is None:
                                first = time.perf_counter()
                            seen += 1
                elapsed = time.perf_counter() - (first or time.perf_counter())
                cpu = time.process_time() - cpu
            finally:
                consumer.close()
            # from the first record to the last, like the Java tool's fetch.* figures
            return {"records_per_s": seen / elapsed, "client_cpu_s": cpu}

        return self._measure("python consume", records, run)


PHASES = ("java produce", "java consume", "python produce", "python consume")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--records", type=int, default=500_000, help="records per phase")
    parser.add_argument(
        "--python-records", type=int, help="records for the Python client (default: --records)"
    )
    parser.add_argument("--skip-python", action="store_true")
    parser.add_argument("--skip-java", action="store_true")
    parser.add_argument("--heap", default="512m", help="broker heap (a broker of our own)")
    args = parser.parse_args()
    python_records = args.python_records or args.records

    samples = sample_records(200)
    sizes = record_sizes(samples)
    libs = fetch_kafka_jars()
    load_before = machine()
    runs: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="taskstream-limit-") as tmp,
        kafka(args.heap) as (
            bootstrap,
            broker,
        ),
    ):
        payloads = Path(tmp) / "payloads.txt"
        # interleaved like the pipeline writes them
        lines = [values[n] for n in range(200) for values in samples.values()]
        payloads.write_bytes(b"\n".join(lines) + b"\n")
        limits = Limits(bootstrap, broker.pid if broker else None, libs, payloads)
        for number in range(1, args.runs + 1):
            print(f"run {number}/{args.runs}", file=sys.stderr, flush=True)
            run: dict[str, Any] = {}
            if not args.skip_java:
                topic = limits.topic()
                run["java produce"] = limits.java_produce(topic, args.records)
                run["java consume"] = limits.java_consume(topic, args.records)
                limits.drop(topic)
            if not args.skip_python:
                topic = limits.topic()
                run["python produce"] = limits.python_produce(topic, python_records)
                run["python consume"] = limits.python_consume(topic, python_records)
                limits.drop(topic)
            runs.append(run)
        mean_size = limits.mean_size
        del limits  # its admin client disconnects before the broker stops
        gc.collect()

    phases: dict[str, dict[str, Any]] = {}
    rows = []
    for phase in PHASES:
        measured = [run[phase] for run in runs if phase in run]
        if not measured:
            continue
        per_million = [
            {
                "broker": m["broker_cpu_s"] * 1e6 / m["records"],
                "client": m["client_cpu_s"] * 1e6 / m["records"],
            }
            for m in measured
        ]
        phases[phase] = {
            "records_per_s": summary([m["records_per_s"] for m in measured]),
            "mib_per_s": summary([m["mib_per_s"] for m in measured]),
            "broker_cpu_s_per_million": summary([p["broker"] for p in per_million]),
            "client_cpu_s_per_million": summary([p["client"] for p in per_million]),
        }
        rows.append(
            [
                phase,
                spread(phases[phase]["records_per_s"]),
                spread(phases[phase]["mib_per_s"], 1),
                spread(phases[phase]["broker_cpu_s_per_million"], 1),
                spread(phases[phase]["client_cpu_s_per_million"], 1),
            ]
        )
    load_after = machine()
    path = write_results(
        "kafka_limit",
        {
            "machine": load_before,
            "loadavg_after": load_after["loadavg"],
            "settings": {
                "partitions": PARTITIONS,
                "records": args.records,
                "python_records": python_records,
                "producer": {**PRODUCER_SETTINGS, "java batch.size": JAVA_BATCH_SIZE},
                "consumer": {"isolation.level": "read_committed"},
                "mean_record_bytes": mean_size,
                "record_bytes": sizes,
            },
            "phases": phases,
            "runs": runs,
        },
    )
    print(
        f"## Kafka limit: {PARTITIONS} partitions, {fmt(args.records)} records "
        f"(python: {fmt(python_records)}) of taskstream's values "
        f"(mean {mean_size:.0f} B: "
        + ", ".join(f"{kind} {size:.0f}" for kind, size in sizes.items())
        + f"), {args.runs} run(s), median (min-max)\n"
    )
    print(
        table(
            [
                "phase",
                "records/s",
                "MiB/s (values)",
                "broker CPU s / 1M records",
                "client CPU s / 1M records",
            ],
            rows,
        )
    )
    print(
        f"\nload average before {load_before['loadavg'][0]:.2f}, "
        f"after {load_after['loadavg'][0]:.2f} on {load_before['cpus']} CPUs; "
        f"results: {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
