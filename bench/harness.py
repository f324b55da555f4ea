"""What the issue-#6 benchmarks share: the broker, the services, reading the log, results.

- :func:`kafka`: ``KAFKA_BOOTSTRAP_SERVERS`` if set, else a fresh local broker
  (``LocalKafkaBroker``) for the whole benchmark;
- :class:`Stack`: core, executor(s) and monitor as processes (``taskstream.cli.dev``), each
  with this checkout first on ``PYTHONPATH``, on free ports, with their own topic prefix
  and SQLite store; :meth:`Stack.cpu_seconds` reads each one's CPU time from ``/proc``;
- :func:`read_events`: ``task-events`` from the beginning to its end now, filtered by the
  ``event-type`` header so that only the records a benchmark wants are parsed;
- :func:`write_results`: ``bench/results/<bench>-<UTC timestamp>.json`` shaped
  ``{"bench", "figures", "runs", "machine", "parameters"}``, and :func:`markdown_table`.

Charts import matplotlib lazily (``pip install matplotlib``) and only with ``--chart``.
"""

from __future__ import annotations

import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from confluent_kafka import Consumer, KafkaError, TopicPartition  # noqa: E402

from taskstream.cli.dev import ServiceProcess, service_env, start_service, wait_healthy  # noqa: E402
from taskstream.dev_broker.local_kafka import LocalKafkaBroker  # noqa: E402
from taskstream.infra.processes import free_port  # noqa: E402

RESULTS = REPO / "bench" / "results"
CHARTS = REPO / "docs" / "img"


# -- the machine ------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def machine() -> dict[str, Any]:
    """What the figures were measured on, and how busy it was when they were."""
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "load_average": list(os.getloadavg()),
        "hostname": platform.node(),
    }


# -- Kafka and the services ---------------------------------------------------------------


@contextmanager
def kafka(heap: str = "1g") -> Iterator[str]:
    """``KAFKA_BOOTSTRAP_SERVERS`` if set; otherwise a local broker until the block ends."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured
        return
    broker = LocalKafkaBroker(port=0, heap=heap)
    try:
        bootstrap = broker.start()
        if broker.pid is not None:
            _BROKER_PIDS[bootstrap] = broker.pid
        yield bootstrap
    finally:
        _BROKER_PIDS.pop(bootstrap, None)
        broker.stop()


_BROKER_PIDS: dict[str, int] = {}


def broker_pid(bootstrap: str) -> int | None:
    """The process of the broker :func:`kafka` started at ``bootstrap`` (None: not ours)."""
    return _BROKER_PIDS.get(bootstrap)


def cpu_of_everything(stack: Stack, bootstrap: str) -> dict[str, float]:
    """CPU seconds so far of each service, the broker (if ours) and this load generator."""
    cpu = stack.cpu_seconds()
    pid = broker_pid(bootstrap)
    if pid is not None:
        cpu["broker"] = process_cpu_seconds(pid)
    own = os.times()
    cpu["load generator"] = own.user + own.system
    return cpu


def checkout_env(base: dict[str, str] | None = None, code: Path = REPO) -> dict[str, str]:
    """The environment with ``code`` (this checkout) first on ``PYTHONPATH``."""
    env = dict(os.environ if base is None else base)
    paths = [str(code), *(p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p)]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def check_imports(env: dict[str, str], code: Path = REPO) -> None:
    """Fail unless a child with ``env`` imports the services from ``code``."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import core, executor, monitor, handlers, taskstream; "
            "print(*(m.__file__ for m in (core, executor, monitor, handlers, taskstream)))",
        ],
        env=env,
        cwd=code,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    outside = [path for path in out if not Path(path).resolve().is_relative_to(code.resolve())]
    if outside:
        raise RuntimeError(f"services would import code outside {code}: {outside}")


@dataclass
class Stack:
    """The services of one benchmark run, as processes; stop them with :meth:`stop`."""

    bootstrap: str
    prefix: str
    workdir: Path
    env: dict[str, str]
    urls: dict[str, str] = field(default_factory=dict)
    services: dict[str, ServiceProcess] = field(default_factory=dict)

    @property
    def core(self) -> str:
        return self.urls["core"]

    @property
    def monitor(self) -> str:
        return self.urls["monitor"]

    @property
    def task_events(self) -> str:
        return f"{self.prefix}task-events"

    def start(self, name: str, command: str, port_variable: str, **settings: str) -> None:
        port = free_port()
        env = service_env(self.env, **{port_variable: str(port)}, **settings)
        url = f"http://127.0.0.1:{port}"
        service = start_service(command, env, f"{url}/health", self.workdir / f"{name}.log")
        self.services[name] = service
        self.urls[name] = url
        wait_healthy(service, timeout=120)

    def pids(self) -> dict[str, int]:
        return {name: service.process.pid for name, service in self.services.items()}

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) each service has used so far."""
        return {name: process_cpu_seconds(pid) for name, pid in self.pids().items()}

    def stop(self) -> None:
        for service in reversed(list(self.services.values())):
            service.stop()

    def logs(self, lines: int = 40) -> str:
        return "\n".join(
            f"--- {name}\n{svc.log_tail(lines)}" for name, svc in self.services.items()
        )


def process_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime


@contextmanager
def running_stack(
    bootstrap: str,
    bench: str,
    *,
    executors: int = 1,
    monitor: bool = True,
    settings: dict[str, str] | None = None,
    executor_settings: dict[str, str] | None = None,
    code: Path | None = None,
) -> Iterator[Stack]:
    """core, ``executors`` executors and the monitor, with a fresh topic prefix.

    The services run the code of ``code`` (default: this checkout), e.g. an older commit
    unpacked with ``git archive`` to measure before and after a change.
    """
    code = code or REPO
    prefix = f"bench-{bench}-{uuid.uuid4().hex[:8]}."
    workdir = Path(f"/tmp/taskstream-bench/{prefix.rstrip('.')}")
    workdir.mkdir(parents=True, exist_ok=True)
    env = checkout_env(
        service_env(
            KAFKA_BOOTSTRAP_SERVERS=bootstrap,
            TASKSTREAM_KAFKA_BOOTSTRAP_SERVERS=bootstrap,
            TASKSTREAM_TOPIC_PREFIX=prefix,
            TASKSTREAM_DATABASE_URL=f"sqlite:///{workdir / 'taskstream.db'}",
            TASKSTREAM_MONITOR_DATA_DIR=str(workdir / "monitor"),
            TASKSTREAM_LOG_FORMAT="json",
            **(settings or {}),
        ),
        code,
    )
    check_imports(env, code)
    stack = Stack(bootstrap, prefix, workdir, env)
    cwd = Path.cwd()
    os.chdir(code)  # ``python -m`` puts the working directory first on sys.path
    try:
        stack.start("core", "core", "TASKSTREAM_API_PORT")  # first: it creates the topics
        for n in range(executors):
            stack.start(
                f"executor-{n}",
                "executor",
                "TASKSTREAM_EXECUTOR_PORT",
                TASKSTREAM_EXECUTOR_ID=f"bench-executor-{n}",
                **(executor_settings or {}),
            )
        if monitor:
            stack.start("monitor", "monitor", "TASKSTREAM_MONITOR_PORT")
        wait_for_executors(stack, executors)
        yield stack
    finally:
        stack.stop()
        os.chdir(cwd)


def wait_for_executors(stack: Stack, count: int, timeout: float = 60.0) -> None:
    """Until the core lists ``count`` live executors (so no write is warned about)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = httpx.get(f"{stack.core}/api/workers?live=true", timeout=5).json()
        if answer["ready"] and len(answer["items"]) >= count:
            return
        time.sleep(0.2)
    raise RuntimeError(f"the core never saw {count} live executor(s):\n{stack.logs()}")


def profile(stack: Stack, directory: Path) -> list[subprocess.Popen[bytes]]:
    """``py-spy record`` of every service until the run ends: raw stacks of the threads
    holding the GIL (where the Python CPU time goes), one file per service."""
    directory.mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).with_name("py-spy")
    return [
        subprocess.Popen(
            [
                str(spy if spy.exists() else "py-spy"),
                "record",
                "--pid",
                str(pid),
                "--rate",
                "67",
                "--format",
                "raw",
                "--threads",
                "--gil",
                "--output",
                str(directory / f"{name}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in stack.pids().items()
    ]


def stop_profiles(profilers: list[subprocess.Popen[bytes]]) -> None:
    for profiler in profilers:
        profiler.send_signal(signal.SIGINT)
        profiler.wait(60)


def monitor_metrics(stack: Stack) -> dict[str, Any] | None:
    try:
        answer = httpx.get(f"{stack.monitor}/api/monitor/metrics?minutes=1", timeout=5)
    except httpx.HTTPError:
        return None
    return answer.json() if answer.status_code == 200 else None


# -- reading the log ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Record:
    type: str
    timestamp: float
    """The record's timestamp (the producer's create time), epoch seconds."""
    value: bytes


def read_events(
    bootstrap: str, topic: str, types: set[str], *, timeout: float = 300.0
) -> list[Record]:
    """Every committed record of ``topic`` whose ``event-type`` header is in ``types``."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "fetch.max.bytes": 64 * 1024 * 1024,
            "max.partition.fetch.bytes": 8 * 1024 * 1024,
        }
    )
    wanted = {t.encode() for t in types}
    partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    ended: set[int] = set()
    records: list[Record] = []
    deadline = time.monotonic() + timeout
    try:
        while len(ended) < len(partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: the end not reached in {timeout:.0f}s")
            for message in consumer.consume(num_messages=5000, timeout=0.5):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        ended.add(message.partition() or 0)
                        continue
                    raise RuntimeError(error.str())
                kind = next((v for k, v in message.headers() or () if k == "event-type"), None)
                if kind in wanted:
                    assert kind is not None
                    records.append(
                        Record(kind.decode(), message.timestamp()[1] / 1000, message.value())
                    )
    finally:
        consumer.close()
    return records


# -- figures ------------------------------------------------------------------------------


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(q * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def distribution(values: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": quantile(ordered, 0.50),
        "p99": quantile(ordered, 0.99),
        "max": ordered[-1] if ordered else float("nan"),
    }


def spread(values: Sequence[float]) -> dict[str, float]:
    """median, min and max over runs."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }


def over_runs(runs: Sequence[dict[str, Any]], path: str) -> dict[str, float]:
    """:func:`spread` of the figure at dotted ``path`` of each run."""
    values = []
    for run in runs:
        value: Any = run
        for part in path.split("."):
            value = value[part]
        values.append(float(value))
    return spread(values)


def per_second(timestamps: Sequence[float], origin: float) -> list[tuple[float, int]]:
    """(second since ``origin``, count) for each whole second that has timestamps."""
    counts: dict[int, int] = {}
    for ts in timestamps:
        second = int(ts - origin) if ts >= origin else -1 - int(origin - ts)
        counts[second] = counts.get(second, 0) + 1
    if not counts:
        return []
    return [(float(s), counts.get(s, 0)) for s in range(min(counts), max(counts) + 1)]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.2f}"
        if isinstance(value, int):
            return f"{value:,}"
        return str(value)

    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(cell(v) for v in row) + " |" for row in rows),
    ]
    return "\n".join(lines)


def write_results(
    bench: str,
    figures: dict[str, Any],
    runs: list[dict[str, Any]],
    parameters: dict[str, Any],
    started: dict[str, Any],
) -> Path:
    import orjson

    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{bench}-{stamp}.json"
    document = {
        "bench": bench,
        "figures": figures,
        "runs": runs,
        "machine": {**started, "load_average_at_end": list(os.getloadavg())},
        "parameters": parameters,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    path.write_bytes(
        orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY, default=str)
    )
    return path


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (imported only when a chart is drawn)."""
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("--chart needs matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_chart(fig: Any, bench: str) -> Path:
    """Lay out ``fig``, write it to ``docs/img/<bench>.png`` and close it."""
    CHARTS.mkdir(parents=True, exist_ok=True)
    path = CHARTS / f"{bench}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path


def each_run(runs: int, one_run: Callable[[str], dict[str, Any]]) -> list[dict[str, Any]]:
    """``one_run(bootstrap)`` ``runs`` times against one broker, announcing each run."""
    results = []
    with kafka() as bootstrap:
        for number in range(runs):
            print(f"run {number + 1}/{runs}", file=sys.stderr, flush=True)
            results.append(one_run(bootstrap))
    return results


def poll(probe: Callable[[], bool], timeout: float, interval: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()
