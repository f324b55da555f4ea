"""Submission latency: POST /api/tasks at steady open-loop rates, and the rate the API holds.

Starts a broker (unless ``KAFKA_BOOTSTRAP_SERVERS`` is set) and the core, an executor and
the monitor as ``taskstream dev`` does. For each offered rate it sends single
``POST /api/tasks`` requests on a fixed timetable (request ``i`` at ``start + i / rate``,
whether or not earlier ones have answered: an open loop, so a slow API cannot slow the
offered load down) from an async httpx client with a connection pool, for ``--seconds``
after ``--warmup`` seconds at the same rate. A request's latency counts from its slot in
the timetable, so time spent waiting for a free connection counts too (no coordinated
omission). The tasks run every hour (``--schedule``), so executions do not load the
machine meanwhile.

Per rate: p50, p99 and max latency, the achieved rate (answers / time from the first
slot to the last answer) and errors. The API *holds* a rate when its p99 is at most
``--p99-limit-ms`` (100), it achieves at least 95 % of it and nothing failed; the highest
such rate of a run is its ``max_rate_held``. ``--search`` keeps doubling the rate past
the list until one is not held, then bisects between the last two (3 steps).

    .venv/bin/python bench/submission_latency.py --rates 50,100,200,400 --runs 3 --chart

Results: a Markdown table on stdout, ``bench/results/submission_latency-<UTC>.json``, and
with ``--chart`` ``docs/img/submission_latency.png`` (latency and achieved rate against
the offered rate).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    chart_path,
    distribution,
    kafka,
    machine,
    markdown_table,
    over_runs,
    pyplot,
    running_stack,
    spread,
    write_results,
)

BENCH = "submission_latency"


async def _offer(
    client: httpx.AsyncClient, rate: float, seconds: float, schedule: dict[str, Any], tag: str
) -> dict[str, Any]:
    """Requests on the timetable of ``rate`` for ``seconds``; their latencies."""
    count = max(1, round(rate * seconds))
    latencies: list[float] = []
    errors: list[str] = []
    finished: list[float] = []

    async def one(n: int, slot: float) -> None:
        body = {"name": f"{tag}-{n}", "schedule": schedule, "handler": "noop"}
        try:
            response = await client.post("/api/tasks", json=body)
        except httpx.HTTPError as exc:
            errors.append(type(exc).__name__)
            return
        done = time.perf_counter()
        if response.status_code == 201:
            latencies.append(done - slot)
            finished.append(done)
        else:
            errors.append(str(response.status_code))

    start = time.perf_counter() + 0.05
    pending = []
    for n in range(count):
        slot = start + n / rate
        delay = slot - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        pending.append(asyncio.create_task(one(n, slot)))
    await asyncio.gather(*pending)
    elapsed = (max(finished) - start) if finished else float("nan")
    return {
        "offered_per_s": rate,
        "requests": count,
        "answered": len(latencies),
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        "achieved_per_s": len(latencies) / elapsed if finished else 0.0,
        "latency_ms": {k: v * 1000 for k, v in distribution(latencies).items()},
    }


def _held(result: dict[str, Any], args: argparse.Namespace) -> bool:
    return (
        result["errors"] == 0
        and result["latency_ms"]["p99"] <= args.p99_limit_ms
        and result["achieved_per_s"] >= 0.95 * result["offered_per_s"]
    )


async def _sweep(api: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    limits = httpx.Limits(max_connections=args.connections, max_keepalive_connections=64)
    schedule = {"every": args.schedule}
    results: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=api, limits=limits, timeout=60) as client:

        async def measure(rate: float) -> dict[str, Any]:
            if args.warmup > 0:
                await _offer(client, rate, args.warmup, schedule, f"warmup-{rate:g}")
            result = await _offer(client, rate, args.seconds, schedule, f"rate-{rate:g}")
            result["held"] = _held(result, args)
            print(
                f"  {rate:8.1f}/s offered: {result['achieved_per_s']:8.1f}/s achieved, "
                f"p50 {result['latency_ms']['p50']:.1f} ms, p99 "
                f"{result['latency_ms']['p99']:.1f} ms, {result['errors']} errors"
                f"{'' if result['held'] else '  (not held)'}",
                file=sys.stderr,
                flush=True,
            )
            results.append(result)
            return result

        for rate in args.rates:
            await measure(rate)
        if args.search:
            held = [r["offered_per_s"] for r in results if r["held"]]
            low = max(held) if held else 0.0
            high = min((r["offered_per_s"] for r in results if not r["held"]), default=None)
            while high is None:
                rate = 2 * max(low, args.rates[-1])
                if (await measure(rate))["held"]:
                    low = rate
                else:
                    high = rate
            for _ in range(3):
                middle = round((low + high) / 2, 1)
                if (await measure(middle))["held"]:
                    low = middle
                else:
                    high = middle
    return results


def one_run(bootstrap: str, args: argparse.Namespace) -> dict[str, Any]:
    with running_stack(
        bootstrap, BENCH, settings={"TASKSTREAM_LOG_LEVEL": args.log_level}, code=args.code
    ) as stack:
        results = asyncio.run(_sweep(stack.core, args))
    held = [r["offered_per_s"] for r in results if r["held"]]
    return {"rates": results, "max_rate_held": max(held) if held else 0.0}


def _chart(runs: list[dict[str, Any]], args: argparse.Namespace) -> Path:
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    for number, run in enumerate(runs, 1):
        rates = sorted(run["rates"], key=lambda r: r["offered_per_s"])
        offered = [r["offered_per_s"] for r in rates]
        p50 = [r["latency_ms"]["p50"] for r in rates]
        p99 = [r["latency_ms"]["p99"] for r in rates]
        left.plot(offered, p50, "o-", label=f"p50 run {number}")
        left.plot(offered, p99, "s--", label=f"p99 run {number}")
        right.plot(offered, [r["achieved_per_s"] for r in rates], "o-", label=f"run {number}")
    left.axhline(args.p99_limit_ms, color="grey", linestyle=":", label="p99 limit")
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("offered POST /api/tasks per second")
    left.set_ylabel("latency (ms, from the request's slot)")
    left.legend(fontsize="small")
    left.grid(alpha=0.3, which="both")
    top = max(r["offered_per_s"] for run in runs for r in run["rates"])
    right.plot([0, top], [0, top], color="grey", linestyle=":", label="offered")
    right.set_xlabel("offered per second")
    right.set_ylabel("achieved per second")
    right.legend(fontsize="small")
    right.grid(alpha=0.3)
    fig.suptitle("submission latency: single POST /api/tasks, open loop")
    fig.tight_layout()
    path = chart_path(BENCH)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rates",
        type=lambda text: [float(part) for part in text.split(",")],
        default=[25.0, 50.0, 100.0, 200.0, 400.0],
        help="offered rates per second, comma-separated (default 25,50,100,200,400)",
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per rate")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--search", action="store_true", help="find the highest rate held")
    parser.add_argument("--p99-limit-ms", type=float, default=100.0)
    parser.add_argument("--connections", type=int, default=256, help="client connection pool")
    parser.add_argument("--schedule", default="1h", help="the tasks' interval (default 1h)")
    parser.add_argument("--log-level", default="WARNING", help="TASKSTREAM_LOG_LEVEL")
    parser.add_argument("--code", type=Path, help="run the services from this tree")
    parser.add_argument("--chart", action="store_true", help="write the chart")
    args = parser.parse_args()
    started = machine()
    runs = []
    with kafka() as bootstrap:
        for number in range(args.runs):
            print(f"run {number + 1}/{args.runs}", file=sys.stderr, flush=True)
            runs.append(one_run(bootstrap, args))
    rows = []
    by_rate: dict[str, Any] = {}
    for rate in sorted({r["offered_per_s"] for run in runs for r in run["rates"]}):
        results = [r for run in runs for r in run["rates"] if r["offered_per_s"] == rate]
        figures = {
            "p50_ms": spread([r["latency_ms"]["p50"] for r in results]),
            "p99_ms": spread([r["latency_ms"]["p99"] for r in results]),
            "max_ms": spread([r["latency_ms"]["max"] for r in results]),
            "achieved_per_s": spread([r["achieved_per_s"] for r in results]),
            "errors": sum(r["errors"] for r in results),
            "held_in_runs": sum(r["held"] for r in results),
            "runs": len(results),
        }
        by_rate[f"{rate:g}"] = figures
        rows.append(
            [
                f"{rate:g}",
                figures["achieved_per_s"]["median"],
                figures["p50_ms"]["median"],
                figures["p99_ms"]["median"],
                f"{figures['p99_ms']['min']:.1f} to {figures['p99_ms']['max']:.1f}",
                figures["max_ms"]["median"],
                figures["errors"],
                f"{figures['held_in_runs']}/{figures['runs']}",
            ]
        )
    figures = {"max_rate_held": over_runs(runs, "max_rate_held"), "by_rate": by_rate}
    print(
        f"\nPOST /api/tasks, open loop, {args.seconds:g} s per rate after {args.warmup:g} s "
        f"warm-up, {args.runs} run(s); held = p99 <= {args.p99_limit_ms:g} ms, >= 95 % "
        "achieved, no errors (medians over runs)\n"
    )
    print(
        markdown_table(
            [
                "offered/s",
                "achieved/s",
                "p50 ms",
                "p99 ms",
                "p99 range ms",
                "max ms",
                "errors",
                "held",
            ],
            rows,
        )
    )
    held = figures["max_rate_held"]
    print(
        f"\nmax rate held: median {held['median']:g}/s (min {held['min']:g}, "
        f"max {held['max']:g}); per run: " + ", ".join(f"{run['max_rate_held']:g}" for run in runs)
    )
    path = write_results(BENCH, figures, runs, vars(args), started)
    print(f"\nresults: {path}")
    if args.chart:
        print(f"chart: {_chart(runs, args)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
