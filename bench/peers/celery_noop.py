"""Celery (Redis broker) no-op throughput: executions/s from the first enqueue to the last
execution, and the enqueue rate, on the same 2-core budget as taskstream.

Each run starts its own ``redis-server`` (free port, no persistence), the workers
(``celery -A _celery_worker worker``, see ``_celery_worker.py``), waits until they consume,
then one producer calls ``noop.delay()`` ``--tasks`` times while the workers run. Each
execution is counted by the task body (``_common.Completions``), so the end is observed.

Default configuration (see docs/benchmarks.md "Peers"): two worker nodes with
``--pool solo`` (each executes in its own main thread: two processes for two cores, with no
prefork parent passing every message to a child over a pipe), prefetch multiplier 128
(Celery's "Optimizing" guide: 64 or 128 for many short tasks), no result backend,
``--without-gossip --without-mingle --without-heartbeat``. The others can be measured with
``--pool prefork`` (one node, 2 children), ``--pool threads --threads T`` and
``--prefetch``; ``--prefill`` measures the workers' drain rate alone.

    .venv/bin/python bench/peers/celery_noop.py --tasks 100000 --runs 3
    .venv/bin/python bench/peers/celery_noop.py --pool prefork --prefetch 4 --prefill
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from _common import (
    Figures,
    noop_run,
    package_versions,
    redis_server_version,
    report,
    spawn_tied_to_interpreter,
    worker_env,
)
from celery import Celery  # type: ignore[import-untyped]


def start_workers(
    args: argparse.Namespace,
) -> Callable[[str, Path], list[subprocess.Popen[bytes]]]:
    def start(url: str, logdir: Path) -> list[subprocess.Popen[bytes]]:
        env = worker_env(url)
        env["BENCH_CELERY_PREFETCH"] = str(args.prefetch)
        if args.pool == "prefork":  # one node, its parent feeds `processes` children
            nodes, options = 1, ["--pool", "prefork", "--concurrency", str(args.processes)]
        elif args.pool == "threads":
            nodes, options = (
                args.processes,
                ["--pool", "threads", "--concurrency", str(args.threads)],
            )
        else:  # solo: each node executes in its own main thread
            nodes, options = args.processes, ["--pool", "solo"]
        workers = []
        for n in range(nodes):
            cmd = [
                *(sys.executable, "-m", "celery", "-A", "_celery_worker", "worker"),
                *("-n", f"w{n}@%h", "--loglevel", "WARNING"),
                *("--without-gossip", "--without-mingle", "--without-heartbeat", *options),
            ]
            with open(logdir / f"celery-w{n}.log", "ab") as log:  # the child keeps its copy
                workers.append(spawn_tied_to_interpreter(cmd, logdir, log, True, env))
        return workers

    return start


def producer(url: str) -> tuple[Callable[[], None], Callable[[], None]]:
    app = Celery("bench", broker=url)
    app.conf.task_ignore_result = True

    @app.task(name="bench.noop")  # type: ignore[untyped-decorator]
    def noop() -> None:  # the producer's side of the task: only its name is sent
        pass

    return noop.delay, app.close


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--processes", type=int, default=2, help="worker processes (2 cores)")
    parser.add_argument("--pool", choices=["solo", "prefork", "threads"], default="solo")
    parser.add_argument("--threads", type=int, default=4, help="per node, with --pool threads")
    parser.add_argument("--prefetch", type=int, default=128, help="worker_prefetch_multiplier")
    parser.add_argument(
        "--prefill",
        action="store_true",
        help="enqueue everything first, then start the workers: their drain rate alone",
    )
    args = parser.parse_args()
    ready = 1 if args.pool == "prefork" else args.processes
    workdir = Path(tempfile.mkdtemp(prefix="bench-celery-"))
    runs: list[Figures] = []
    for n in range(args.runs):
        runs.append(
            noop_run(workdir, args.tasks, start_workers(args), ready, producer, args.prefill)
        )
        print(f"run {n + 1}: {runs[-1]}", file=sys.stderr)
    config = {
        "tasks": args.tasks,
        "pool": args.pool,
        "processes": args.processes,
        "prefetch_multiplier": args.prefetch,
        "prefill": args.prefill,
        **({"threads": args.threads} if args.pool == "threads" else {}),
        "broker": f"redis-server {redis_server_version()}",
        "logs": str(workdir),
    }
    name = "celery-drain" if args.prefill else "celery-noop"
    report(name, runs, config, package_versions("celery", "kombu", "redis"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
