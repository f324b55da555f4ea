"""What the peer benchmarks share: a private redis-server, completion counting, results.

- ``RedisServer`` starts Debian's ``redis-server`` on a free loopback port with no
  persistence (``--save '' --appendonly no``) as a child process tied to this
  interpreter, and stops it.
- ``Completions`` is called by the peers' no-op task bodies (in the worker processes):
  it counts executions and keeps the wall-clock time of the first and the last in the
  process, and a daemon thread writes them to one redis hash field per process every
  ``FLUSH_S``. The driver sums the fields until every task is counted, so completion is
  observed, never guessed, and each execution costs a lock and a ``time.time()`` rather
  than a redis round trip of its own.
- ``report`` prints a Markdown table and one JSON line, and writes
  ``bench/results/<bench>-<timestamp>.json``: ``{"bench", "figures", "summary", "runs",
  "config", "machine"}``. ``figures`` holds the median over runs of each figure (nested
  dicts such as lateness percentiles keep their shape); ``summary`` holds
  ``{"median", "min", "max"}`` for every figure.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parents[2]
PEERS = Path(__file__).resolve().parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))

from taskstream.infra.processes import free_port, spawn_tied_to_interpreter  # noqa: E402

__all__ = [
    "DONE_KEY",
    "READY_KEY",
    "URL_ENV",
    "Completions",
    "Figures",
    "RedisServer",
    "mark_ready",
    "noop_run",
    "package_versions",
    "redis_server_version",
    "report",
    "spawn_tied_to_interpreter",
    "worker_env",
]

DONE_KEY = "bench:done"  # hash: worker pid -> "count first last"
READY_KEY = "bench:ready"  # set: worker processes that are consuming
URL_ENV = "BENCH_REDIS_URL"
FLUSH_S = 0.02

Figures = dict[str, Any]


class RedisServer:
    """A private ``redis-server`` on 127.0.0.1, no persistence, killed by ``stop()``."""

    def __init__(self, logdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._log = open(logdir / f"redis-{self.port}.log", "ab")
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is missing: run `make bench-deps`")
        no_persistence = ["--save", "", "--appendonly", "no"]
        self.process = spawn_tied_to_interpreter(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", *no_persistence],
            cwd=logdir,
            stdout=self._log,
            new_session=True,
        )
        client = self.client()
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"redis-server did not start (log: {self._log.name})"
                    ) from None
                time.sleep(0.02)

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


class Completions:
    """Counts executions in a worker process; a thread publishes them to redis."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = -1
        self.count = 0
        self.first = 0.0
        self.last = 0.0

    def record(self) -> None:
        now = time.time()
        with self._lock:
            if self._pid != os.getpid():  # first execution in this (forked) process
                self._pid = os.getpid()
                self.count, self.first = 0, now
                threading.Thread(target=self._flush, args=(self._pid,), daemon=True).start()
            self.count += 1
            self.last = now

    def _flush(self, pid: int) -> None:
        client = redis.Redis.from_url(os.environ[URL_ENV])
        written = -1
        while True:
            with self._lock:
                count, first, last = self.count, self.first, self.last
            if count != written:
                client.hset(DONE_KEY, str(pid), f"{count} {first!r} {last!r}")
                written = count
            time.sleep(FLUSH_S)


def mark_ready(name: str) -> None:
    """Called by a worker process once it consumes (a signal or a middleware hook)."""
    redis.Redis.from_url(os.environ[URL_ENV]).sadd(READY_KEY, name)


def wait_ready(
    client: redis.Redis, expected: int, timeout: float, alive: Callable[[], bool]
) -> None:
    deadline = time.monotonic() + timeout
    while client.scard(READY_KEY) < expected:
        if not alive():
            raise RuntimeError("a worker exited before it was ready (see its log)")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{client.scard(READY_KEY)} of {expected} workers ready")
        time.sleep(0.05)


@dataclass
class Done:
    count: int
    first: float  # wall clock of the first execution (any process)
    last: float  # wall clock of the last execution


def read_done(client: redis.Redis) -> Done:
    count, first, last = 0, float("inf"), 0.0
    raw: Mapping[bytes, bytes] = client.hgetall(DONE_KEY)  # type: ignore[assignment]
    for value in raw.values():
        c, f, la = value.decode().split()
        count += int(c)
        first = min(first, float(f))
        last = max(last, float(la))
    return Done(count, first, last)


def wait_done(
    client: redis.Redis, expected: int, timeout: float, alive: Callable[[], bool]
) -> Done:
    """Poll until ``expected`` executions are counted; raise on a time-out or a dead worker."""
    deadline = time.monotonic() + timeout
    while True:
        done = read_done(client)
        if done.count >= expected:
            return done
        if not alive():
            raise RuntimeError(f"a worker exited after {done.count} of {expected} executions")
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {done.count} of {expected} executions in {timeout:.0f} s")
        time.sleep(FLUSH_S)


def worker_env(url: str) -> dict[str, str]:
    """The environment of a peer's worker: the redis URL, and bench/peers importable."""
    env = dict(os.environ)
    env[URL_ENV] = url
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PEERS), str(ROOT), env.get("PYTHONPATH", "")) if p
    )
    env["PYTHONUNBUFFERED"] = "1"
    return env


def session_cpu(sessions: set[int]) -> float:
    """CPU seconds (user + system) of the live processes in these sessions (their threads
    and forked children included): a worker started with ``new_session`` leads its own."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # after the command: state ppid pgrp session ... utime(14) stime(15), 1-based
        if int(fields[3]) in sessions:
            total += int(fields[11]) + int(fields[12])
    return total / tick


def stop_processes(processes: list[subprocess.Popen[bytes]], timeout: float = 15) -> None:
    """SIGTERM each worker's process group (a worker's children too), then SIGKILL."""
    for process in processes:
        if process.poll() is None:
            _signal_group(process, 15)
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(process, 9)
            process.wait()


def _signal_group(process: subprocess.Popen[bytes], signal: int) -> None:
    try:
        os.killpg(process.pid, signal)
    except ProcessLookupError:
        pass


# -- results ------------------------------------------------------------------------------


def _median_tree(values: list[Any]) -> Any:
    if isinstance(values[0], dict):
        return {k: _median_tree([v[k] for v in values]) for k in values[0]}
    return statistics.median(values)


def _summary_tree(values: list[Any]) -> Any:
    if isinstance(values[0], dict):
        return {k: _summary_tree([v[k] for v in values]) for k in values[0]}
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _flat(prefix: str, tree: Any) -> Iterator[tuple[str, dict[str, float]]]:
    if isinstance(tree, dict) and set(tree) != {"median", "min", "max"}:
        for key, value in tree.items():
            yield from _flat(f"{prefix}.{key}" if prefix else key, value)
    else:
        yield prefix, tree


def _fmt(value: float) -> str:
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:,.1f}"
    return f"{value:.3g}"


def package_versions(*names: str) -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


def redis_server_version() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        return "missing"
    out = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    return next((w.removeprefix("v=") for w in out.split() if w.startswith("v=")), out.strip())


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "kernel": platform.release(),
        "loadavg": list(os.getloadavg()),
    }


def report(
    bench: str, runs: list[Figures], config: Mapping[str, Any], versions: Mapping[str, str]
) -> Path:
    """Print the Markdown table and the JSON line; write the results file, return its path."""
    figures = _median_tree(runs)
    summary = _summary_tree(runs)
    when = datetime.now(UTC)
    result = {
        "bench": bench,
        "at": when.isoformat(timespec="seconds"),
        "figures": figures,
        "summary": summary,
        "runs": runs,
        "config": dict(config),
        "versions": dict(versions),
        "machine": machine(),
    }
    print(f"\n{bench}: {len(runs)} run(s), {', '.join(f'{k}={v}' for k, v in config.items())}\n")
    print("| figure | runs | median | min | max |")
    print("|---|---|---|---|---|")
    for name, s in _flat("", summary):
        print(
            f"| {name} | {len(runs)} | {_fmt(s['median'])} | {_fmt(s['min'])} | {_fmt(s['max'])} |"
        )
    print()
    print(json.dumps({"bench": bench, "figures": figures, "runs": runs}))
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{bench}-{when.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten to {path.relative_to(ROOT)}", file=sys.stderr)
    return path


# -- the no-op throughput run both queue peers share --------------------------------------


def noop_run(
    workdir: Path,
    tasks: int,
    start_workers: Callable[[str, Path], list[subprocess.Popen[bytes]]],
    ready: int,
    producer: Callable[[str], tuple[Callable[[], None], Callable[[], None]]],
    prefill: bool = False,
) -> Figures:
    """One run: a fresh redis, idle workers, ``tasks`` enqueued, every execution counted.

    ``start_workers(url, logdir)`` starts the worker processes (in their own sessions);
    ``ready`` is how many of them call ``mark_ready``. ``producer(url)`` returns
    ``(enqueue_one, close)``. The clock starts just before the first enqueue; the
    executions/s are ``tasks`` over the time to the last execution's end.

    With ``prefill`` the tasks are all enqueued before the workers start, and the figure
    is the workers' drain rate alone: ``tasks`` over first to last execution.
    """
    server = RedisServer(workdir)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        client = server.client()

        def alive() -> bool:
            return all(w.poll() is None for w in workers)

        def start() -> None:
            workers.extend(start_workers(server.url, workdir))
            wait_ready(client, ready, 60, alive)

        if not prefill:
            start()
            time.sleep(1)  # let every consumer reach its fetch loop
        enqueue, close = producer(server.url)
        redis0, workers0, own0 = session_cpu({server.process.pid}), 0.0, time.process_time()
        if not prefill:
            workers0 = session_cpu({w.pid for w in workers})
        try:
            began = time.time()
            for _ in range(tasks):
                enqueue()
            enqueued = time.time()
        finally:
            close()
        if prefill:
            start()  # their start-up's CPU is not counted
            workers0 = session_cpu({w.pid for w in workers})
        done = wait_done(client, tasks, 120 + tasks / 100, alive)
        cpu = {  # CPU seconds from the first enqueue to the last execution
            "workers": session_cpu({w.pid for w in workers}) - workers0,
            "redis": session_cpu({server.process.pid}) - redis0,
            "producer": time.process_time() - own0,  # with this process's polling
        }
        if done.count != tasks:
            raise RuntimeError(f"{done.count} executions counted for {tasks} tasks")
        client.close()
    finally:
        stop_processes(workers)
        server.stop()
    enqueue_per_s = tasks / (enqueued - began)
    cpu["total"] = sum(cpu.values())
    cpu_us = {k: v / tasks * 1e6 for k, v in cpu.items()}
    if prefill:
        return {
            "drain_per_s": tasks / (done.last - done.first),
            "enqueue_per_s": enqueue_per_s,
            "cpu_us_per_task": cpu_us,
        }
    total = done.last - began
    return {
        "executions_per_s": tasks / total,
        "enqueue_per_s": enqueue_per_s,
        "first_execution_s": done.first - began,
        "total_s": total,
        "cpu_us_per_task": cpu_us,
    }
