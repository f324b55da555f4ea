"""APScheduler 3.x scheduling precision: K interval jobs every second for D seconds, the
lateness of every run, and the fires/s achieved.

The configuration users run: a ``BackgroundScheduler`` (UTC) with the default in-memory
job store and a ``ThreadPoolExecutor`` (APScheduler's default of 10 threads), every job
``interval`` 1 s with ``misfire_grace_time=None`` (a late run still runs, however late),
``coalesce=False`` (each late slot runs, none is merged) and the default
``max_instances=1`` (a slot whose previous run is still queued or running is skipped, and
counted here). The jobs' first runs are spread evenly over one second (job ``i`` starts
at ``T0 + i/K``), so K jobs make K fires/s; ``--aligned`` starts them all at ``T0``.

For each run scheduled in ``[T0, T0 + D)``:

- fire lateness: when the scheduler handed the run to the executor (``submit_job``, timed
  by a subclass that only records the time) minus the scheduled time;
- start lateness: when the job's function started in a pool thread (its return value,
  read from ``EVENT_JOB_EXECUTED``) minus the scheduled time.

Runs that APScheduler reports missed (``EVENT_JOB_MISSED``), skipped
(``EVENT_JOB_MAX_INSTANCES``) or failed, and any that never ran, are counted.
``fires_per_s`` is the runs executed over the time from ``T0`` to the last start (or
``D``, if longer).

    .venv/bin/python bench/peers/apscheduler_precision.py --jobs 10000 --seconds 60
    .venv/bin/python bench/peers/apscheduler_precision.py --jobs 1000 --seconds 10
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

from _common import Figures, package_versions, report
from apscheduler.events import (  # type: ignore[import-untyped]
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobExecutionEvent,
    JobSubmissionEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor  # type: ignore[import-untyped]
from apscheduler.schedulers.background import (  # type: ignore[import-untyped]
    BackgroundScheduler,
)


def job() -> float:
    """The no-op job: its start time is its return value."""
    return time.time()


class Recorder:
    """The measurements of one run, restricted to the runs scheduled in the window."""

    def __init__(self, start: float, end: float) -> None:
        self.start, self.end = start, end
        self.fire: list[float] = []  # seconds late
        self.begin: list[float] = []
        self.last_start = 0.0
        self.missed = self.skipped = self.failed = 0
        self._lock = threading.Lock()
        self.all_done = threading.Event()
        self.expected = 0

    def in_window(self, scheduled: float) -> bool:
        return self.start - 1e-6 <= scheduled < self.end - 1e-6

    def submitted(self, at: float, run_times: list[datetime]) -> None:
        for run_time in run_times:
            scheduled = run_time.timestamp()
            if self.in_window(scheduled):
                self.fire.append(at - scheduled)

    def on_event(self, event: Any) -> None:
        if isinstance(event, JobSubmissionEvent):  # skipped: max instances
            n = sum(self.in_window(t.timestamp()) for t in event.scheduled_run_times)
            with self._lock:
                self.skipped += n
            self._check()
            return
        assert isinstance(event, JobExecutionEvent)
        scheduled = event.scheduled_run_time.timestamp()
        if not self.in_window(scheduled):
            return
        with self._lock:
            if event.code == EVENT_JOB_EXECUTED:
                started = float(event.retval)
                self.begin.append(started - scheduled)
                self.last_start = max(self.last_start, started)
            elif event.code == EVENT_JOB_MISSED:
                self.missed += 1
            else:
                self.failed += 1
        self._check()

    def _check(self) -> None:
        if len(self.begin) + self.missed + self.skipped + self.failed >= self.expected:
            self.all_done.set()


class TimedThreadPoolExecutor(ThreadPoolExecutor):  # type: ignore[misc]
    """APScheduler's thread pool executor, recording when each run is handed over."""

    def __init__(self, recorder: Recorder, max_workers: int) -> None:
        super().__init__(max_workers)
        self.recorder = recorder

    def submit_job(self, job: Any, run_times: list[datetime]) -> None:
        at = time.time()
        super().submit_job(job, run_times)  # raises when max_instances is reached
        self.recorder.submitted(at, run_times)


def _ms(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return {
        "p50": statistics.median(ordered) * 1000,
        "p99": p99 * 1000,
        "max": ordered[-1] * 1000,
    }


def one_run(args: argparse.Namespace) -> Figures:
    t0 = time.time() + args.warmup
    recorder = Recorder(t0, t0 + args.seconds)
    recorder.expected = args.jobs * args.seconds
    scheduler = BackgroundScheduler(
        executors={"default": TimedThreadPoolExecutor(recorder, args.threads)},
        job_defaults={
            "misfire_grace_time": None,
            "coalesce": False,
            "max_instances": args.max_instances,
        },
        timezone=UTC,
    )
    scheduler.add_listener(
        recorder.on_event,
        EVENT_JOB_EXECUTED | EVENT_JOB_MISSED | EVENT_JOB_ERROR | EVENT_JOB_MAX_INSTANCES,
    )
    for i in range(args.jobs):
        offset = 0.0 if args.aligned else i / args.jobs
        scheduler.add_job(
            job,
            "interval",
            seconds=1,
            start_date=datetime.fromtimestamp(t0 + offset, UTC),
            id=f"job-{i}",
        )
    scheduler.start()
    if time.time() > t0:
        scheduler.shutdown(wait=False)
        raise RuntimeError(f"adding {args.jobs} jobs took past T0: raise --warmup")
    time.sleep(max(0.0, t0 - time.time()))
    cpu_start = time.process_time()
    recorder.all_done.wait(timeout=args.seconds + args.drain)
    end = time.time()
    cpu = time.process_time() - cpu_start
    scheduler.shutdown(wait=False)
    executed = len(recorder.begin)
    span = max(recorder.last_start - t0, float(args.seconds))
    unaccounted = recorder.expected - executed - recorder.missed - recorder.skipped
    return {
        "fires_per_s": executed / span,
        "fire_lateness_ms": _ms(recorder.fire),
        "start_lateness_ms": _ms(recorder.begin),
        "run_counts": {
            "expected": recorder.expected,
            "executed": executed,
            "missed": recorder.missed,
            "skipped_max_instances": recorder.skipped,
            "failed": recorder.failed,
            "never_ran": unaccounted - recorder.failed,
        },
        "cpu_percent": cpu / (end - t0) * 100,  # of one core, the whole process
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=10_000, help="interval jobs, every 1 s")
    parser.add_argument("--seconds", type=int, default=60, help="the measured window")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=10, help="the pool's max_workers")
    parser.add_argument("--max-instances", type=int, default=1)
    parser.add_argument("--aligned", action="store_true", help="every job at the same instant")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before T0")
    parser.add_argument(
        "--drain", type=float, default=30.0, help="seconds after the window for late runs"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    # one warning per skipped run would flood stderr: the events count them instead
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    runs: list[Figures] = []
    for n in range(args.runs):
        runs.append(one_run(args))
        print(f"run {n + 1}: {runs[-1]}", file=sys.stderr)
    config = {
        "jobs": args.jobs,
        "seconds": args.seconds,
        "interval_s": 1,
        "spread": "aligned" if args.aligned else "even over 1 s",
        "scheduler": "BackgroundScheduler, MemoryJobStore, UTC",
        "executor": f"ThreadPoolExecutor(max_workers={args.threads})",
        "misfire_grace_time": None,
        "coalesce": False,
        "max_instances": args.max_instances,
    }
    report("apscheduler-precision", runs, config, package_versions("apscheduler"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
