"""What the benchmarks share: the broker, results files, summaries, sample records.

Not a benchmark itself (the leading underscore keeps it out of ``bench/README.md``'s
table). Imported by ``bench/kafka_limit.py`` and ``bench/execution_cost.py`` after they
put the repository root on ``sys.path``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from taskstream.dev_broker.kafka_jars import KAFKA_VERSION
from taskstream.dev_broker.local_kafka import LocalKafkaBroker
from taskstream.schemas import (
    Event,
    ExecutionLogChunk,
    ExecutionScheduled,
    ExecutionStarted,
    ExecutionSucceeded,
    Priority,
    WorkOrder,
    encode_event,
    encode_work_order,
    execution_id,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "bench" / "results"
MIB = 1024 * 1024


# -- the broker ----------------------------------------------------------------------


@contextmanager
def kafka(heap: str = "512m") -> Iterator[tuple[str, LocalKafkaBroker | None]]:
    """``(bootstrap, broker)``: ``KAFKA_BOOTSTRAP_SERVERS`` if set, else a broker of our own.

    ``broker`` is ``None`` for an external one (its pid and data directory are unknown).
    """
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if bootstrap:
        yield bootstrap, None
        return
    broker = LocalKafkaBroker(port=0, heap=heap)
    bootstrap = broker.start()
    try:
        yield bootstrap, broker
    finally:
        broker.stop()


# -- CPU time ------------------------------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; the fields after it are plain.
    return text[text.rindex(")") + 2 :].split()


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants now (from ``/proc/*/stat``'s parent pids)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, ()))
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its descendants (alive or reaped).

    ``/proc/<pid>/stat`` fields utime, stime (all threads) and cutime, cstime (children
    it waited for); 0 for a process that is gone.
    """
    total = 0
    for member in process_tree(pid):
        fields = _stat_fields(member)
        if fields is not None:
            total += sum(int(value) for value in fields[11:15])
    return total / _TICKS


# -- results -------------------------------------------------------------------------


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max of ``values`` (all three equal for one run)."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }


def machine() -> dict[str, Any]:
    """What the figures were measured on, including how busy the machine was."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "kafka": KAFKA_VERSION,
        "external_broker": bool(os.environ.get("KAFKA_BOOTSTRAP_SERVERS")),
        "loadavg": os.getloadavg(),
    }


def write_results(bench: str, payload: dict[str, Any]) -> Path:
    """``bench/results/<bench>-<UTC timestamp>.json``; returns its path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"{bench}-{stamp}.json"
    document = {"bench": bench, "at": stamp, "argv": sys.argv[1:], **payload}
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return path


def latest_results(bench: str) -> Path | None:
    """The newest ``bench/results/<bench>-*.json``, if any."""
    found = sorted(RESULTS_DIR.glob(f"{bench}-*.json"))
    return found[-1] if found else None


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (numbers already formatted by the caller)."""
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt(value: float, digits: int = 0) -> str:
    """``12,345`` or ``12,345.6``."""
    return f"{value:,.{digits}f}"


def spread(stats: dict[str, float], digits: int = 0) -> str:
    """``median (min-max)``."""
    return (
        f"{fmt(stats['median'], digits)} ({fmt(stats['min'], digits)}-{fmt(stats['max'], digits)})"
    )


# -- taskstream's records ------------------------------------------------------------


def sample_records(count: int = 1) -> dict[str, list[bytes]]:
    """``count`` encoded values of each kind one no-op execution puts on Kafka.

    Realistic content: UUID task ids, a name like ``report-123456``, the ``noop`` handler
    on the ``default`` queue, a worker id like the executor's default
    (``<host>-<pid>``), and an empty final log chunk (a no-op run logs nothing).
    """
    records: dict[str, list[bytes]] = {
        "WorkOrder": [],
        "ExecutionScheduled": [],
        "ExecutionStarted": [],
        "ExecutionSucceeded": [],
        "ExecutionLogChunk": [],
    }
    worker = f"{platform.node() or 'host'}-{os.getpid()}"
    for n in range(count):
        task_id = str(uuid.uuid4())
        slot = datetime.now(UTC).replace(microsecond=0)
        run = execution_id(task_id, slot, 1)
        order = WorkOrder(
            execution_id=run,
            task_id=task_id,
            task_name=f"report-{100000 + n}",
            handler="noop",
            attempt=1,
            scheduled_for=slot,
            priority=Priority.MEDIUM,
            queue="default",
        )
        records["WorkOrder"].append(encode_work_order(order))
        common: dict[str, Any] = {"execution_id": run, "attempt": 1, "scheduled_for": slot}
        events = {
            "ExecutionScheduled": ExecutionScheduled(
                **common,
                topic="taskstream.executions.default.medium",
                queue="default",
                priority=Priority.MEDIUM,
            ),
            "ExecutionStarted": ExecutionStarted(**common, worker_id=worker, handler="noop"),
            "ExecutionSucceeded": ExecutionSucceeded(
                **common, worker_id=worker, duration_seconds=0.000123, output=None
            ),
        }
        for kind, data in events.items():
            records[kind].append(encode_event(Event.create(task_id, data)))
        chunk = ExecutionLogChunk(
            execution_id=run,
            task_id=task_id,
            attempt=1,
            run_id=uuid.uuid4().hex,
            worker_id=worker,
            seq=0,
            final=True,
            sent_at=datetime.now(UTC),
        )
        records["ExecutionLogChunk"].append(chunk.encode())
    return records


def record_sizes(records: dict[str, list[bytes]]) -> dict[str, float]:
    """The mean encoded size (bytes) of each kind."""
    return {kind: statistics.fmean(len(v) for v in values) for kind, values in records.items()}
