"""linger.ms on the dispatch path: the same workloads at several TASKSTREAM_KAFKA_LINGER_MS.

Every producer of the services (the API's, the scheduler's transactional one that writes
the work orders and ``ExecutionScheduled``, the executor's outcome events) waits up to
``linger.ms`` to fill a batch. For each value this runs, with every service started anew:

- ``precision.py --tasks K --seconds D``: K interval tasks a second, a rate the pipeline
  carries, so latency is the path's and not a queue's: fire lateness (due to the fire's
  record) and start lateness (due to the handler's start: the dispatch path);
- ``throughput.py --tasks N``: N no-op tasks due at once: executions/s and CPU per
  execution, where batches fill without waiting.

    .venv/bin/python bench/linger_sweep.py --lingers 0,2,10 --runs 3

Prints a Markdown table (median, min-max over the runs) and writes
``bench/results/linger-<UTC>.json``; the two benchmarks' own results go to
``bench/results/linger/`` so that ``peers/compare.py`` keeps reading the full-size ones.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, spread, table, write_results

BENCH_DIR = Path(__file__).resolve().parent
KEPT = BENCH_DIR / "results" / "linger"


def run_bench(script: str, arguments: list[str], linger: int) -> dict[str, Any]:
    """Run ``script`` with ``TASKSTREAM_KAFKA_LINGER_MS=linger``; its results document."""
    env = {**os.environ, "TASKSTREAM_KAFKA_LINGER_MS": str(linger)}
    command = [sys.executable, str(BENCH_DIR / script), *arguments]
    print(f"linger.ms={linger}: {' '.join(command[1:])}", file=sys.stderr, flush=True)
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{script} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    line = next((x for x in reversed(done.stdout.splitlines()) if x.startswith("results: ")), None)
    if line is None:
        raise SystemExit(f"{script} printed no results path:\n{done.stdout}")
    path = Path(line.removeprefix("results: ").strip())
    KEPT.mkdir(parents=True, exist_ok=True)
    kept = KEPT / f"linger{linger}-{path.name}"
    path.rename(kept)
    document: dict[str, Any] = json.loads(kept.read_text())
    document["kept_at"] = str(kept)
    return document


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lingers", default="0,2,10", help="linger.ms values, comma-separated")
    parser.add_argument("--runs", type=int, default=3, help="runs of each benchmark per value")
    parser.add_argument("--precision-tasks", type=int, default=200, help="fires due a second")
    parser.add_argument("--precision-seconds", type=int, default=30)
    parser.add_argument("--throughput-tasks", type=int, default=5000)
    args = parser.parse_args()
    lingers = [int(value) for value in args.lingers.split(",") if value.strip()]
    if not lingers or min(lingers) < 0:
        parser.error("--lingers: comma-separated milliseconds >= 0, e.g. 0,2,10")

    started = machine()
    results: dict[int, dict[str, Any]] = {}
    rows = []
    for linger in lingers:
        precision = run_bench(
            "precision.py",
            [
                f"--tasks={args.precision_tasks}",
                f"--seconds={args.precision_seconds}",
                f"--runs={args.runs}",
            ],
            linger,
        )
        throughput = run_bench(
            "throughput.py", [f"--tasks={args.throughput_tasks}", f"--runs={args.runs}"], linger
        )
        over = precision["figures"]
        fire, start = over["fire_lateness_ms_over_runs"], over["start_lateness_ms_over_runs"]
        tput = throughput["figures"]
        cpu = sum(
            tput[f"cpu_ms_per_execution_{service}"]["median"]
            for service in ("core", "executor-0", "monitor")
            if f"cpu_ms_per_execution_{service}" in tput
        )
        results[linger] = {
            "precision": {"figures": over, "file": precision["kept_at"]},
            "throughput": {"figures": tput, "file": throughput["kept_at"]},
        }
        rows.append(
            [
                linger,
                spread(fire["p50"], 1),
                spread(fire["p99"], 1),
                spread(start["p50"], 1),
                spread(start["p99"], 1),
                spread(tput["executions_per_s"]),
                spread(tput["due_to_finished_p50_ms"]),
                f"{cpu:.2f}",
            ]
        )
        print(f"linger.ms={linger} done", file=sys.stderr, flush=True)
    print(
        f"\n{args.precision_tasks} fires/s for {args.precision_seconds} s, and "
        f"{args.throughput_tasks:,} no-op tasks due at once; median (min-max) of "
        f"{args.runs} runs\n"
    )
    print(
        table(
            [
                "linger.ms",
                "fire p50 ms",
                "fire p99 ms",
                "start p50 ms",
                "start p99 ms",
                "executions/s",
                "due -> finished p50 ms",
                "CPU ms / execution (services)",
            ],
            rows,
        )
    )
    path = write_results(
        "linger",
        {"machine": started, "parameters": vars(args), "results": results},
    )
    print(f"results: {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
