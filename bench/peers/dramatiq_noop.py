"""Dramatiq (Redis broker) no-op throughput: executions/s from the first enqueue to the
last execution, and the enqueue rate, on the same 2-core budget as taskstream.

Each run starts its own ``redis-server`` (free port, no persistence), the workers
(``dramatiq _dramatiq_worker --processes P --threads T``, see ``_dramatiq_worker.py``),
waits until every worker process has booted, then one producer calls ``noop.send()``
``--tasks`` times while the workers run. Each execution is counted by the actor's body
(``_common.Completions``), so the end is observed.

Default configuration (see docs/benchmarks.md "Peers"): 2 worker processes (one per core,
Dramatiq's own default) with 8 threads each (Dramatiq's default) and a queue prefetch of
128 messages per process (``dramatiq_queue_prefetch``; the default is 2 x threads). On the
smoke runs 8 threads drained 3-6x faster than 1 or 2 (a thread waiting on Redis lets
another run), and prefetch 128 used less CPU per task than 16 (fewer fetch round trips).
Default middleware, no result backend. An idle Dramatiq consumer polls Redis with a
backoff of up to 1 s, which shows in ``first_execution_s``.

    .venv/bin/python bench/peers/dramatiq_noop.py --tasks 100000 --runs 3
    .venv/bin/python bench/peers/dramatiq_noop.py --threads 1 --prefetch 0
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import dramatiq
from _common import (
    Figures,
    noop_run,
    package_versions,
    redis_server_version,
    report,
    spawn_tied_to_interpreter,
    worker_env,
)
from dramatiq.brokers.redis import RedisBroker


def start_workers(
    args: argparse.Namespace,
) -> Callable[[str, Path], list[subprocess.Popen[bytes]]]:
    def start(url: str, logdir: Path) -> list[subprocess.Popen[bytes]]:
        env = worker_env(url)
        if args.prefetch:
            env["dramatiq_queue_prefetch"] = str(args.prefetch)
        cmd = [
            *(sys.executable, "-m", "dramatiq", "_dramatiq_worker"),
            *("--processes", str(args.processes), "--threads", str(args.threads)),
        ]
        with open(logdir / "dramatiq.log", "ab") as log:  # the child keeps its copy
            return [spawn_tied_to_interpreter(cmd, logdir, log, True, env)]

    return start


def producer(url: str) -> tuple[Callable[[], None], Callable[[], None]]:
    broker = RedisBroker(url=url)  # type: ignore[no-untyped-call]

    def noop() -> None:  # the producer's side of the actor: only its name is sent
        pass

    actor = dramatiq.actor(actor_name="noop", max_retries=0, broker=broker)(noop)

    def send() -> None:
        actor.send()

    return send, broker.close


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--processes", type=int, default=2, help="worker processes (2 cores)")
    parser.add_argument("--threads", type=int, default=8, help="worker threads per process")
    parser.add_argument(
        "--prefetch", type=int, default=128, help="queue prefetch per process (0: 2 x threads)"
    )
    parser.add_argument(
        "--prefill",
        action="store_true",
        help="enqueue everything first, then start the workers: their drain rate alone",
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-dramatiq-"))
    runs: list[Figures] = []
    for n in range(args.runs):
        runs.append(
            noop_run(
                workdir, args.tasks, start_workers(args), args.processes, producer, args.prefill
            )
        )
        print(f"run {n + 1}: {runs[-1]}", file=sys.stderr)
    config = {
        "tasks": args.tasks,
        "processes": args.processes,
        "threads": args.threads,
        "queue_prefetch": args.prefetch or 2 * args.threads,
        "prefill": args.prefill,
        "broker": f"redis-server {redis_server_version()}",
        "logs": str(workdir),
    }
    name = "dramatiq-drain" if args.prefill else "dramatiq-noop"
    report(name, runs, config, package_versions("dramatiq", "redis"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
