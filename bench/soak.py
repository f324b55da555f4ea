"""Soak: the fault round of ``tests/faults`` for half an hour, with a fault every few minutes.

Runs a 3-node KRaft cluster on loopback (replication 3, min.insync.replicas 2), the core,
an executor and the monitor as processes, and ``--tasks`` interval tasks every second
(default 50: half of the 100 fires/s the fault round carries on a 2-core machine; a
tenth fail their first attempt and succeed on the retry) for ``--minutes``. Every
``--fault-every`` seconds it injects the next fault of a seeded random order (each cycle
a shuffle of: kill -9 one broker, kill -9 the whole cluster, kill -9 the core, the
executor, the monitor; each restarted after ``--outage`` seconds). When the load ends it
lets the pipeline drain and runs the independent ledger (``tests/faults/ledger.py``).

Prints the ledger and a Markdown table of the recovery times (for docs/faults.md), and
writes ``bench/results/soak-<time>.json``. Exits 1 if the ledger found a problem or a
fault did not recover.

    .venv/bin/python bench/soak.py                      # 30 minutes
    .venv/bin/python bench/soak.py --minutes 5 --fault-every 45
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import machine, table, write_results
from tests.faults.harness import FAULT_KINDS, Recovery, create_load, fault_rig, wait_for
from tests.faults.ledger import Ledger, build_ledger


def fault_order(seed: int, count: int) -> list[str]:
    """``count`` faults: shuffled cycles of every kind, reproducible from ``seed``."""
    rng = random.Random(seed)
    order: list[str] = []
    while len(order) < count:
        cycle = list(FAULT_KINDS)
        rng.shuffle(cycle)
        order += cycle
    return order[:count]


def _cell(values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "not recovered"
    text = f"{statistics.median(known):.1f} ({min(known):.1f}-{max(known):.1f})"
    missing = len(values) - len(known)
    return text + (f", {missing} not recovered" if missing else "")


def recovery_table(recoveries: list[Recovery]) -> str:
    rows = []
    for kind in FAULT_KINDS:
        mine = [r for r in recoveries if r.fault == kind]
        if not mine:
            continue
        rows.append(
            [
                kind,
                len(mine),
                _cell([r.restart_seconds for r in mine]),
                _cell([r.flow_seconds for r in mine]),
                _cell([r.health_seconds for r in mine]),
                _cell([r.monitor_seconds for r in mine]),
            ]
        )
    return table(
        [
            "fault (kill -9)",
            "times",
            "restart s",
            "fires + outcomes flow again, s",
            "every /health 200, s",
            "monitor counts again, s",
        ],
        rows,
    )


def ledger_table(ledger: Ledger) -> str:
    summary = ledger.summary()
    keys = [
        "slots_expected",
        "slots_fired",
        "slots_skipped",
        "lost",
        "duplicated",
        "executions_fired",
        "terminal",
        "missing_outcomes",
        "lost_retries",
        "reran_after_finish",
        "reran_in_flight",
        "disagreements",
    ]
    return table(["ledger", "count"], [[key, f"{summary[key]:,}"] for key in keys])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="load duration")
    parser.add_argument("--tasks", type=int, default=50, help="interval tasks every second")
    parser.add_argument("--fault-every", type=float, default=180.0, help="seconds between faults")
    parser.add_argument("--outage", type=float, default=3.0, help="seconds a part stays down")
    parser.add_argument("--seed", type=int, default=11, help="seed of the fault order")
    parser.add_argument("--workdir", type=Path, help="default: a temporary directory")
    args = parser.parse_args(argv)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="taskstream-soak-"))
    duration = timedelta(minutes=args.minutes)
    faults = max(1, int((duration.total_seconds() - 30) // args.fault_every))
    order = fault_order(args.seed, faults)
    print(f"soak: {args.tasks} tasks/s for {args.minutes} min, faults {order}", flush=True)
    started = time.monotonic()
    with fault_rig(workdir, rate=args.tasks) as rig:
        load = create_load(rig.stack.core, args.tasks, duration)
        wait_for(
            lambda: rig.watch.flowing_since(time.monotonic() - 3, args.tasks / 2),
            timeout=60,
            what="the load to flow",
        )
        load_started = time.monotonic()
        for n, fault in enumerate(order, start=1):
            at = load_started + n * args.fault_every - args.fault_every / 2
            wait_for(lambda at=at: time.monotonic() >= at, args.fault_every + 5, "the next fault")
            if datetime.now(UTC) > load.ends_at - timedelta(seconds=20):
                print(f"skipping {fault}: the load is about to end", flush=True)
                break
            rig.inject(fault, outage=args.outage)

        def drained() -> bool:
            if datetime.now(UTC) < load.ends_at + timedelta(seconds=10):
                return False
            totals = httpx.get(f"{rig.stack.monitor}/api/monitor/metrics?minutes=1").json()
            return bool(totals["totals"]["scheduled"] == 0 and totals["totals"]["running"] == 0)

        remaining = (load.ends_at - datetime.now(UTC)).total_seconds()
        drain_error = None
        try:
            wait_for(drained, timeout=remaining + 120, what="the load to end and drain")
        except AssertionError as exc:
            drain_error = str(exc)
        ledger = build_ledger(
            rig.cluster.bootstrap_servers,
            rig.stack.prefix,
            load.task_ids,
            core_url=rig.stack.core,
            monitor_url=rig.stack.monitor,
            executor_kills=[
                datetime.fromisoformat(r.started_at)
                for r in rig.recoveries
                if r.fault == "executor"
            ],
        )
        recoveries = list(rig.recoveries)
    print(ledger.report(examples=10))
    tables = f"{recovery_table(recoveries)}\n\n{ledger_table(ledger)}"
    print(f"\n{tables}\n")
    path = write_results(
        "soak",
        {
            "machine": machine(),
            "minutes": args.minutes,
            "tasks": args.tasks,
            "fault_every": args.fault_every,
            "seed": args.seed,
            "wall_seconds": round(time.monotonic() - started, 1),
            "drain_error": drain_error,
            "recoveries": [asdict(r) for r in recoveries],
            "ledger": ledger.summary(),
            "ledger_report": ledger.report(examples=20),
            "markdown": tables,
        },
    )
    print(f"results: {path}")
    print(json.dumps(ledger.summary()))
    failed = drain_error or not ledger.ok() or not all(r.recovered for r in recoveries)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
