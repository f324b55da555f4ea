"""End-to-end throughput: N no-op one-shot tasks, from submission to finished.

Two workloads: *overlapped* (the default), each task due the moment it is sent, so
submission and execution overlap; and *drain* (``--due-in S``), every task due at one
instant S seconds after the first submission (created ahead, as a midnight cron of many
tasks is), so the pipeline drains a burst. ``--no-monitor`` runs the core and the
executors only; completion is then read from ``task-events``.

Starts a broker (unless ``KAFKA_BOOTSTRAP_SERVERS`` is set), then the core, the
executor(s) and the monitor as ``taskstream dev`` does (fresh topic prefix and SQLite
store per run), and submits N tasks ``{"name", "schedule": {"at": <now>}, "handler":
"noop"}``, each due the moment it is sent, through ``POST /api/tasks/batch`` (``--submit
batch``, the default) or one ``POST /api/tasks`` each (``--submit single``). While the
pipeline works it polls the monitor (``GET /api/monitor/metrics``: its totals and its lag
on ``task-events``) until the monitor has counted N succeeded executions, then reads
``task-events`` back as the source of truth:

- submissions/s: N / (last answer - first request);
- executions/s: N / (last ``ExecutionSucceeded`` - first due time), the record
  timestamps being the producers' clocks (one machine);
- sustained executions/s: the finishes between the 10th and the 90th percentile of them,
  over the time between those two;
- due -> finished per execution (``ExecutionSucceeded`` time minus its ``scheduled_for``);
- the monitor: the highest lag seen, and how long after the last finish its totals
  reached N; CPU seconds each service used.

    .venv/bin/python bench/throughput.py --tasks 100000 --runs 3 --chart

Results: a Markdown table on stdout, ``bench/results/throughput-<UTC>.json``, and with
``--chart`` ``docs/img/throughput.png`` (submissions, fires and finishes per second, and
the monitor's lag, over time, of the last run).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from confluent_kafka import Consumer

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    Stack,
    cpu_of_everything,
    distribution,
    each_run,
    machine,
    markdown_table,
    monitor_metrics,
    over_runs,
    per_second,
    profile,
    pyplot,
    read_events,
    running_stack,
    save_chart,
    stop_profiles,
    write_results,
)

BENCH = "throughput"


def _body(n: int, at: float | None = None) -> dict[str, Any]:
    due = datetime.now(UTC) if at is None else datetime.fromtimestamp(at, UTC)
    return {"name": f"tput-{n}", "schedule": {"at": due.isoformat()}, "handler": "noop"}


async def _submit_single(
    api: str, tasks: int, concurrency: int, at: float | None = None
) -> list[float]:
    """One POST /api/tasks per task, ``concurrency`` in flight; the due time of each (now,
    or ``at`` for all)."""
    due: list[float] = []
    counter = iter(range(tasks))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=api, limits=limits, timeout=60) as client:

        async def worker() -> None:
            for n in counter:
                body = _body(n, at)
                due.append(time.time() if at is None else at)
                response = await client.post("/api/tasks", json=body)
                if response.status_code not in (201, 202):
                    raise RuntimeError(f"POST /api/tasks: {response.status_code} {response.text}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return due


async def _submit_batch(
    api: str, tasks: int, concurrency: int, size: int, at: float | None = None
) -> list[float]:
    """POST /api/tasks/batch of ``size`` tasks, ``concurrency`` in flight (due now, or
    ``at`` for all)."""
    due: list[float] = []
    starts = iter(range(0, tasks, size))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=api, limits=limits, timeout=120) as client:

        async def worker() -> None:
            for start in starts:
                count = min(size, tasks - start)
                when = time.time() if at is None else at
                body = [_body(start + i, at) for i in range(count)]
                due.extend([when] * count)
                response = await client.post("/api/tasks/batch", content=orjson.dumps(body))
                if response.status_code not in (201, 202):
                    raise RuntimeError(
                        f"POST /api/tasks/batch: {response.status_code} {response.text[:2000]}"
                    )

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return due


class _Watch:
    """Watches the run on a thread of its own (``_run``) until stopped."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        raise NotImplementedError

    def succeeded(self) -> int:
        raise NotImplementedError


class LogWatch(_Watch):
    """Counts the ``ExecutionSucceeded`` records on ``task-events`` as they arrive (the
    completion signal with ``--no-monitor``)."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(stack)
        self.count = 0

    def succeeded(self) -> int:
        return self.count

    def _run(self) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self.stack.bootstrap,
                "group.id": f"bench-watch-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
            }
        )
        consumer.subscribe([self.stack.task_events])
        try:
            while not self._stop.is_set():
                for message in consumer.consume(num_messages=5000, timeout=0.2):
                    headers = dict(message.headers() or [])
                    if (
                        message.error() is None
                        and headers.get("event-type") == b"ExecutionSucceeded"
                    ):
                        self.count += 1
        finally:
            consumer.close()


class MonitorWatch(_Watch):
    """Polls the monitor's totals and lag every ``interval`` seconds."""

    def __init__(self, stack: Stack, interval: float = 0.5) -> None:
        super().__init__(stack)
        self.interval = interval
        self.samples: list[tuple[float, int, int | None]] = []
        """(time, succeeded, lag in records)"""

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            answer = monitor_metrics(self.stack)
            if answer is not None:
                self.samples.append(
                    (
                        time.time(),
                        int(answer["totals"]["succeeded"]),
                        answer["lag"]["task_events_records"],
                    )
                )

    def succeeded(self) -> int:
        return self.samples[-1][1] if self.samples else 0


def one_run(bootstrap: str, args: argparse.Namespace) -> dict[str, Any]:
    executor_settings = {
        "TASKSTREAM_EXECUTOR_CONCURRENCY": str(args.concurrency),
    }
    settings = {"TASKSTREAM_LOG_LEVEL": args.log_level}
    with running_stack(
        bootstrap,
        BENCH,
        executors=args.executors,
        monitor=not args.no_monitor,
        settings=settings,
        executor_settings=executor_settings,
        code=args.code,
    ) as stack:
        watch: LogWatch | MonitorWatch = LogWatch(stack) if args.no_monitor else MonitorWatch(stack)
        watch.start()
        drain = args.due_in is not None  # tasks created ahead, all due at one instant
        profilers = profile(stack, args.profile) if args.profile and not drain else []
        cpu_before = stack.cpu_seconds()
        began = time.time()
        at = None if args.due_in is None else began + args.due_in
        if args.submit == "single":
            due = asyncio.run(_submit_single(stack.core, args.tasks, args.clients, at))
        else:
            due = asyncio.run(
                _submit_batch(stack.core, args.tasks, args.clients, args.batch_size, at)
            )
        submitted = time.time()
        if at is not None and submitted > at:
            print(
                f"  warning: submission ended {submitted - at:.1f}s after the due instant "
                "(raise --due-in): the drain overlapped it",
                file=sys.stderr,
            )
        print(
            f"  submitted {args.tasks:,} in {submitted - began:.1f}s; waiting for "
            + ("task-events" if args.no_monitor else "the monitor"),
            file=sys.stderr,
            flush=True,
        )
        if at is not None:  # a drain: profiles and the CPU of everything from the due instant
            while time.time() < at:
                time.sleep(0.05)
            if args.profile:
                profilers = profile(stack, args.profile)
            drain_cpu_before = cpu_of_everything(stack, bootstrap)
        deadline = time.monotonic() + args.timeout
        while watch.succeeded() < args.tasks and time.monotonic() < deadline:
            time.sleep(0.2)
        counted = time.time() if watch.succeeded() >= args.tasks else None
        watch.stop()
        stop_profiles(profilers)
        cpu = {
            name: round(after - cpu_before.get(name, 0.0), 1)
            for name, after in stack.cpu_seconds().items()
        }
        drain_cpu = (
            {
                name: after - drain_cpu_before.get(name, 0.0)
                for name, after in cpu_of_everything(stack, bootstrap).items()
            }
            if at is not None
            else {}
        )
        records = read_events(
            bootstrap,
            stack.task_events,
            {"TaskCreated", "ExecutionScheduled", "ExecutionSucceeded", "ExecutionFailed"},
        )
    return _figures(args, began, submitted, due, counted, records, watch, cpu, drain_cpu)


def _figures(
    args: argparse.Namespace,
    began: float,
    submitted: float,
    due: list[float],
    counted: float | None,
    records: list[Any],
    watch: LogWatch | MonitorWatch,
    cpu: dict[str, float],
    drain_cpu: dict[str, float],
) -> dict[str, Any]:
    created = sorted(r.timestamp for r in records if r.type == "TaskCreated")
    fired = sorted(r.timestamp for r in records if r.type == "ExecutionScheduled")
    finished = sorted(r.timestamp for r in records if r.type == "ExecutionSucceeded")
    failed = sum(1 for r in records if r.type == "ExecutionFailed")
    latencies = []
    for record in records:
        if record.type == "ExecutionSucceeded":
            slot = orjson.loads(record.value)["data"]["scheduled_for"]
            latencies.append(record.timestamp - datetime.fromisoformat(slot).timestamp())
    first_due = min(due)
    n = len(finished)
    lo, hi = finished[n // 10] if n else 0.0, finished[(9 * n) // 10 - 1] if n else 0.0
    samples = watch.samples if isinstance(watch, MonitorWatch) else []
    lags = [lag for _, _, lag in samples if lag is not None]
    run = {
        "tasks": args.tasks,
        "created": len(created),
        "fired": len(fired),
        "succeeded": n,
        "failed": failed,
        "submit_seconds": submitted - began,
        "submissions_per_s": args.tasks / (submitted - began),
        "executions_seconds": (finished[-1] - first_due) if n else None,
        "executions_per_s": n / (finished[-1] - first_due) if n else 0.0,
        "sustained_executions_per_s": (
            (0.8 * n) / (hi - lo) if n >= 10 and hi > lo else float("nan")
        ),
        "fires_per_s": len(fired) / (fired[-1] - first_due) if fired else 0.0,
        # N over the time from the due instant to the monitor's count of all N (polled
        # every 0.5 s): the headline with the monitor, which must keep up
        "monitored_executions_per_s": (
            n / (counted - first_due)
            if counted is not None and n and not args.no_monitor
            else float("nan")
        ),
        "due_to_finished_ms": {k: v * 1000 for k, v in distribution(latencies).items()},
        "monitor": {
            "max_lag_records": max(lags) if lags else None,
            "counted_all": counted is not None,
            "caught_up_after_last_finish_s": (
                counted - finished[-1] if counted is not None and n else None
            ),
        },
        "cpu_seconds": cpu,
        "cpu_ms_per_execution": {name: 1000 * seconds / max(n, 1) for name, seconds in cpu.items()},
        # a drain: from the due instant to the end, every process (the broker's and this
        # load generator's too) and their sum: the CPU an execution costs at saturation
        "drain_cpu_ms_per_execution": (
            {
                **{name: 1000 * seconds / max(n, 1) for name, seconds in drain_cpu.items()},
                "all": 1000 * sum(drain_cpu.values()) / max(n, 1),
            }
            if drain_cpu
            else {}
        ),
        "series": {
            "origin": began,
            "submitted_per_s": per_second(created, began),
            "fired_per_s": per_second(fired, began),
            "finished_per_s": per_second(finished, began),
            "monitor": [(t - began, s, lag) for t, s, lag in samples],
        },
    }
    return run


def _workload(args: argparse.Namespace) -> str:
    when = "due when sent" if args.due_in is None else f"all due {args.due_in:g}s after the first"
    return when + (", no monitor" if args.no_monitor else "")


def _chart(run: dict[str, Any], args: argparse.Namespace) -> Path:
    plt = pyplot()
    series = run["series"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for key, label in (
        ("submitted_per_s", "submitted (TaskCreated)"),
        ("fired_per_s", "fired (ExecutionScheduled)"),
        ("finished_per_s", "finished (ExecutionSucceeded)"),
    ):
        points = series[key]
        top.step([p[0] for p in points], [p[1] for p in points], where="post", label=label)
    top.set_ylabel("per second")
    top.set_title(
        f"throughput: {args.tasks:,} no-op one-shot tasks {_workload(args)} "
        f"({args.submit} submission, {args.executors} executor(s) x {args.concurrency})"
    )
    top.legend(loc="upper right")
    top.grid(alpha=0.3)
    monitor = [m for m in series["monitor"] if m[2] is not None]
    bottom.plot([m[0] for m in monitor], [m[2] for m in monitor], color="tab:red")
    bottom.set_ylabel("monitor lag (records)", color="tab:red")
    counted = bottom.twinx()
    counted.plot([m[0] for m in series["monitor"]], [m[1] for m in series["monitor"]])
    counted.set_ylabel("succeeded, counted by the monitor")
    bottom.set_xlabel("seconds since the first submission")
    bottom.grid(alpha=0.3)
    return save_chart(fig, BENCH)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=100_000, help="N (default %(default)s)")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--submit", choices=("batch", "single"), default="batch")
    parser.add_argument("--batch-size", type=int, default=1000, help="tasks per batch request")
    parser.add_argument(
        "--clients", type=int, default=4, help="requests in flight (single: e.g. 64)"
    )
    parser.add_argument("--executors", type=int, default=1, help="executor processes")
    parser.add_argument(
        "--concurrency", type=int, default=32, help="TASKSTREAM_EXECUTOR_CONCURRENCY"
    )
    parser.add_argument(
        "--log-level",
        default="WARNING",
        help="TASKSTREAM_LOG_LEVEL of the services (INFO logs two lines per execution)",
    )
    parser.add_argument(
        "--due-in",
        type=float,
        help="drain: every task due at one instant, this many seconds after the first "
        "submission (default: each due when sent)",
    )
    parser.add_argument(
        "--no-monitor", action="store_true", help="core and executors only (no monitor)"
    )
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for N")
    parser.add_argument("--chart", action="store_true", help="write docs/img/throughput.png")
    parser.add_argument(
        "--code",
        type=Path,
        help="run the services from this tree (e.g. `git archive <commit>` unpacked) "
        "instead of this checkout, to measure before and after a change",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="py-spy record the core and executors into this directory (raw stacks); "
        "with --due-in, from the due instant on (the drain alone, not the submission)",
    )
    args = parser.parse_args()
    if args.profile:
        args.profile = args.profile.resolve()
    started = machine()
    runs = each_run(args.runs, lambda bootstrap: one_run(bootstrap, args))
    figures = {
        "submissions_per_s": over_runs(runs, "submissions_per_s"),
        "executions_per_s": over_runs(runs, "executions_per_s"),
        "sustained_executions_per_s": over_runs(runs, "sustained_executions_per_s"),
        "fires_per_s": over_runs(runs, "fires_per_s"),
        **(
            {}
            if args.no_monitor
            else {"monitored_executions_per_s": over_runs(runs, "monitored_executions_per_s")}
        ),
        "due_to_finished_p50_ms": over_runs(runs, "due_to_finished_ms.p50"),
        "due_to_finished_p99_ms": over_runs(runs, "due_to_finished_ms.p99"),
    }
    for service in runs[0]["cpu_ms_per_execution"]:
        figures[f"cpu_ms_per_execution_{service}"] = over_runs(
            runs, f"cpu_ms_per_execution.{service}"
        )
    for process in runs[0]["drain_cpu_ms_per_execution"]:
        figures[f"drain_cpu_ms_per_execution_{process}"] = over_runs(
            runs, f"drain_cpu_ms_per_execution.{process}"
        )
    lags = [r["monitor"]["max_lag_records"] for r in runs if r["monitor"]["max_lag_records"]]
    rows = [
        [name.replace("_", " "), f["median"], f["min"], f["max"]] for name, f in figures.items()
    ]
    print(
        f"\n{args.tasks:,} no-op one-shot tasks {_workload(args)}, {args.submit} submission, "
        f"{args.executors} executor(s) x {args.concurrency}, {args.runs} run(s)\n"
    )
    print(markdown_table(["figure", "median", "min", "max"], rows))
    for number, run in enumerate(runs, 1):
        print(
            f"\nrun {number}: succeeded {run['succeeded']:,}/{run['tasks']:,}, failed "
            f"{run['failed']}; monitor max lag {run['monitor']['max_lag_records']} records, "
            f"all counted {run['monitor']['caught_up_after_last_finish_s']} s after the last "
            f"finish; CPU seconds {run['cpu_seconds']}; CPU ms per execution "
            + ", ".join(f"{k} {v:.2f}" for k, v in run["cpu_ms_per_execution"].items())
        )
    if lags:
        figures["monitor_max_lag_records"] = {
            "median": float(sorted(lags)[len(lags) // 2]),
            "min": float(min(lags)),
            "max": float(max(lags)),
        }
    path = write_results(BENCH, figures, runs, vars(args), started)
    print(f"\nresults: {path}")
    if args.chart:
        print(f"chart: {_chart(runs[-1], args)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
