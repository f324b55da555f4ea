"""Scheduling precision: K interval tasks every second for D seconds; how late each fire is.

Starts a broker (unless ``KAFKA_BOOTSTRAP_SERVERS`` is set) and the core, the executor(s)
and the monitor as ``taskstream dev`` does, and creates K tasks through
``POST /api/tasks/batch``: ``{"every": "1s", "start": T0 + i/K s, "end": ...}`` for task
``i``, so their slots are spread evenly over each second (K fires a second) for D seconds
from T0, which leaves time to create them all first. It then reads ``task-events`` back:

- fire lateness: an ``ExecutionScheduled`` record's timestamp (the scheduler's producer
  stamps it inside the fire transaction, in milliseconds) minus its ``scheduled_for``;
  the transaction commits a little later: the core's histogram
  ``taskstream_schedule_lag_seconds`` (commit time minus due time) is scraped before and
  after, and the share of fires it counts within 10 ms is reported too;
- start lateness: an ``ExecutionStarted`` event's ``occurred_at`` (the executor stamps it
  right before the handler runs, in microseconds) minus its ``scheduled_for``;
- fires/s achieved: the fires of slots in [T0, T0 + D) over D, against K; slots skipped
  (``ExecutionSkipped``: a misfire when a fire is later than the 5 s grace) are counted.

Each is p50, p99 and max over every slot of the window. ``--scheduler-only`` runs the
core alone (no executor, no monitor): the scheduler's own lateness, without the CPU the
rest of the pipeline takes from it; nothing starts, so there is no start lateness. Its
results are ``precision-core-<UTC>.json`` (and ``docs/img/precision-core.png``).

    .venv/bin/python bench/precision.py --tasks 10000 --seconds 60 --runs 3 --chart

Results: a Markdown table on stdout, ``bench/results/precision-<UTC>.json``, and with
``--chart`` ``docs/img/precision.png`` (p50/p99 lateness per second and fires per second
over the window, last run).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    Record,
    distribution,
    each_run,
    machine,
    markdown_table,
    over_runs,
    profile,
    pyplot,
    quantile,
    read_events,
    running_stack,
    save_chart,
    spread,
    stop_profiles,
    write_results,
)

BENCH = "precision"
_LAG_METRIC = "taskstream_schedule_lag_seconds_bucket"


def _bodies(count: int, start: datetime, seconds: int) -> list[dict[str, Any]]:
    bodies = []
    for n in range(count):
        first = start + timedelta(seconds=n / count)
        bodies.append(
            {
                "name": f"precision-{n}",
                "schedule": {
                    "every": "1s",
                    "start": first.isoformat(),
                    "end": (first + timedelta(seconds=seconds - 0.5)).isoformat(),
                },
                "handler": "noop",
            }
        )
    return bodies


def _lag_buckets(core: str) -> dict[float, float]:
    """The core's fire-lag histogram, cumulative counts by upper bound (all labels summed)."""
    text = httpx.get(f"{core}/metrics", timeout=10).text
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if not line.startswith(_LAG_METRIC + "{"):
            continue
        labels, value = line.rsplit(" ", 1)
        bound = labels.split('le="', 1)[1].split('"', 1)[0]
        upper = float("inf") if bound == "+Inf" else float(bound)
        buckets[upper] = buckets.get(upper, 0.0) + float(value)
    return buckets


def _commit_lateness(before: dict[float, float], after: dict[float, float]) -> dict[str, Any]:
    delta = {le: after.get(le, 0.0) - before.get(le, 0.0) for le in after}
    total = delta.get(float("inf"), 0.0)
    if not total:
        return {"fires": 0}
    within = {f"le_{le * 1000:g}ms": delta[le] / total for le in sorted(delta) if le <= 0.1}
    p99_bucket = next((le for le in sorted(delta) if delta[le] >= 0.99 * total), float("inf"))
    return {"fires": int(total), "share": within, "p99_at_most_ms": p99_bucket * 1000}


def _submit(api: str, bodies: list[dict[str, Any]], batch: int) -> None:
    with httpx.Client(base_url=api, timeout=120) as client:
        for offset in range(0, len(bodies), batch):
            response = client.post(
                "/api/tasks/batch",
                content=orjson.dumps(bodies[offset : offset + batch]),
                headers={"Content-Type": "application/json"},
            )
            if response.status_code not in (201, 202):
                raise RuntimeError(f"batch: {response.status_code} {response.text[:2000]}")


def one_run(bootstrap: str, args: argparse.Namespace) -> dict[str, Any]:
    executor_settings = {"TASKSTREAM_EXECUTOR_CONCURRENCY": str(args.concurrency)}
    with running_stack(
        bootstrap,
        BENCH,
        executors=0 if args.scheduler_only else args.executors,
        monitor=not args.scheduler_only,
        settings={"TASKSTREAM_LOG_LEVEL": args.log_level},
        executor_settings=executor_settings,
        code=args.code,
    ) as stack:
        lead = args.lead if args.lead is not None else 5.0 + args.tasks / 250
        t0 = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=round(lead) + 1)
        began = time.time()
        _submit(stack.core, _bodies(args.tasks, t0, args.seconds), args.batch_size)
        submitted = time.time()
        spare = t0.timestamp() - submitted
        print(
            f"  created {args.tasks:,} tasks in {submitted - began:.1f}s; "
            f"{spare:.1f}s before the first slot",
            file=sys.stderr,
            flush=True,
        )
        while time.time() < t0.timestamp() - 1:
            time.sleep(0.2)
        lag_before = _lag_buckets(stack.core)
        profilers = profile(stack, args.profile) if args.profile else []
        end = t0.timestamp() + args.seconds
        while time.time() < end + args.drain:
            time.sleep(0.5)
        stop_profiles(profilers)
        lag_after = _lag_buckets(stack.core)
        records = read_events(
            bootstrap,
            stack.task_events,
            {"ExecutionScheduled", "ExecutionStarted", "ExecutionSkipped"},
        )
    return _figures(args, t0, spare, records, _commit_lateness(lag_before, lag_after))


def _figures(
    args: argparse.Namespace,
    t0: datetime,
    spare: float,
    records: list[Record],
    committed: dict[str, Any],
) -> dict[str, Any]:
    origin = t0.timestamp()
    window = (origin, origin + args.seconds)
    fires: list[tuple[float, float]] = []  # (slot, lateness s)
    starts: list[tuple[float, float]] = []
    skipped = 0
    for record in records:
        document = orjson.loads(record.value)
        data = document["data"]
        slot = datetime.fromisoformat(data["scheduled_for"]).timestamp()
        if not window[0] <= slot < window[1]:
            continue
        if record.type == "ExecutionScheduled":
            fires.append((slot, record.timestamp - slot))
        elif record.type == "ExecutionStarted":
            started = datetime.fromisoformat(document["occurred_at"]).timestamp()
            starts.append((slot, started - slot))
        else:
            skipped += int(data.get("count", 1))
    expected = args.tasks * args.seconds
    return {
        "tasks": args.tasks,
        "seconds": args.seconds,
        "spare_before_first_slot_s": spare,
        "expected_fires": expected,
        "fires": len(fires),
        "starts": len(starts),
        "skipped_slots": skipped,
        "fires_per_s": len(fires) / args.seconds,
        "fire_lateness_ms": {k: v * 1000 for k, v in distribution([x for _, x in fires]).items()},
        "start_lateness_ms": {k: v * 1000 for k, v in distribution([x for _, x in starts]).items()},
        "commit_lateness": committed,
        "series": {
            "fire": _per_second(fires, origin),
            "start": _per_second(starts, origin),
        },
    }


def _per_second(points: list[tuple[float, float]], origin: float) -> list[list[float]]:
    """[second since T0, count, p50 ms, p99 ms] by the slot's second."""
    by_second: dict[int, list[float]] = {}
    for slot, lateness in points:
        by_second.setdefault(int(slot - origin), []).append(lateness)
    rows = []
    for second in sorted(by_second):
        values = sorted(by_second[second])
        rows.append(
            [
                float(second),
                float(len(values)),
                quantile(values, 0.5) * 1000,
                quantile(values, 0.99) * 1000,
            ]
        )
    return rows


def _bench(args: argparse.Namespace) -> str:
    """The results' and the chart's name: ``precision-core`` for the core alone."""
    return f"{BENCH}-core" if args.scheduler_only else BENCH


def _services(args: argparse.Namespace) -> str:
    if args.scheduler_only:
        return "the core alone"
    return f"{args.executors} executor(s) x {args.concurrency}, monitor"


def _chart(run: dict[str, Any], args: argparse.Namespace) -> Path:
    plt = pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for key, label, color in (("fire", "fire", "tab:blue"), ("start", "start", "tab:orange")):
        rows = run["series"][key]
        seconds = [r[0] for r in rows]
        top.plot(seconds, [r[2] for r in rows], color=color, label=f"{label} p50")
        top.plot(seconds, [r[3] for r in rows], color=color, linestyle="--", label=f"{label} p99")
    top.axhline(10, color="grey", linestyle=":", label="10 ms")
    top.set_yscale("log")
    top.set_ylabel("lateness (ms) of the slots of that second")
    top.set_title(
        f"precision: {args.tasks:,} tasks every second for {args.seconds} s ({_services(args)})"
    )
    top.legend(fontsize="small", ncol=3)
    top.grid(alpha=0.3, which="both")
    rows = run["series"]["fire"]
    bottom.step([r[0] for r in rows], [r[1] for r in rows], where="post", label="fired")
    rows = run["series"]["start"]
    bottom.step([r[0] for r in rows], [r[1] for r in rows], where="post", label="started")
    bottom.axhline(args.tasks, color="grey", linestyle=":", label="due")
    bottom.set_ylabel("slots per second")
    bottom.set_xlabel("seconds since the first slot")
    bottom.legend(fontsize="small")
    bottom.grid(alpha=0.3)
    return save_chart(fig, _bench(args))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=10_000, help="K (default %(default)s)")
    parser.add_argument("--seconds", type=int, default=60, help="D (default %(default)s)")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--executors", type=int, default=1, help="executor processes")
    parser.add_argument(
        "--concurrency", type=int, default=32, help="TASKSTREAM_EXECUTOR_CONCURRENCY"
    )
    parser.add_argument("--batch-size", type=int, default=1000, help="tasks per batch request")
    parser.add_argument(
        "--lead", type=float, help="seconds from creation to the first slot (default 5 + K/250)"
    )
    parser.add_argument(
        "--drain", type=float, default=15.0, help="seconds to wait after the last slot"
    )
    parser.add_argument(
        "--scheduler-only",
        action="store_true",
        help="the core alone: no executor or monitor (fire lateness only; nothing starts)",
    )
    parser.add_argument("--log-level", default="WARNING", help="TASKSTREAM_LOG_LEVEL")
    parser.add_argument("--code", type=Path, help="run the services from this tree")
    parser.add_argument("--chart", action="store_true", help="write docs/img/precision.png")
    parser.add_argument(
        "--profile",
        type=Path,
        help="py-spy record every service over the window, into this directory",
    )
    args = parser.parse_args()
    if args.profile:
        args.profile = args.profile.resolve()
    started = machine()
    runs = each_run(args.runs, lambda bootstrap: one_run(bootstrap, args))
    figures: dict[str, Any] = {}
    rows = []
    for kind in ("fire_lateness_ms", "start_lateness_ms"):
        spreads = {q: over_runs(runs, f"{kind}.{q}") for q in ("p50", "p99", "max")}
        figures[kind] = {q: s["median"] for q, s in spreads.items()}
        figures[f"{kind}_over_runs"] = spreads
        for q, s in spreads.items():
            rows.append([f"{kind.removesuffix('_ms').replace('_', ' ')} {q} (ms)", *s.values()])
    figures["fires_per_s"] = over_runs(runs, "fires_per_s")
    rows.append(["fires per second", *figures["fires_per_s"].values()])
    figures["skipped_slots"] = spread([float(r["skipped_slots"]) for r in runs])
    rows.append(["skipped slots", *figures["skipped_slots"].values()])
    print(
        f"\n{args.tasks:,} tasks every 1 s for {args.seconds} s ({args.tasks:,} fires/s due), "
        f"{_services(args)}, {args.runs} run(s)\n"
    )
    print(markdown_table(["figure", "median", "min", "max"], rows))
    for number, run in enumerate(runs, 1):
        committed = run["commit_lateness"]
        print(
            f"\nrun {number}: {run['fires']:,}/{run['expected_fires']:,} slots fired, "
            f"{run['starts']:,} started, {run['skipped_slots']} skipped; "
            f"{run['spare_before_first_slot_s']:.1f}s spare before the first slot; "
            f"commit lateness (core histogram): p99 <= {committed.get('p99_at_most_ms')} ms, "
            f"share within: {committed.get('share')}"
        )
    path = write_results(_bench(args), figures, runs, vars(args), started)
    print(f"\nresults: {path}")
    if args.chart:
        print(f"chart: {_chart(runs[-1], args)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
