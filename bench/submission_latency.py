"""Submission latency: POST /api/tasks at steady open-loop rates, and the rate the API holds.

Starts a broker (unless ``KAFKA_BOOTSTRAP_SERVERS`` is set) and the core, an executor and
the monitor as ``taskstream dev`` does. For each offered rate it sends single
``POST /api/tasks`` requests on a fixed timetable (request ``i`` at ``start + i / rate``,
whether or not earlier ones have answered: an open loop, so a slow API cannot slow the
offered load down) over ``--connections`` keep-alive connections, for ``--seconds``
after ``--warmup`` seconds at the same rate. The client is a minimal HTTP/1.1 one on
asyncio streams (``--client raw``, the default) or httpx's ``AsyncClient`` with a
connection pool (``--client httpx``), which costs this machine 15 to 70 times more CPU a
request and so becomes the limit first; the client's CPU per request is reported. A
request's latency counts from its slot in the timetable, so time spent waiting for a free
connection counts too (no coordinated omission). The tasks run every hour
(``--schedule``), so executions do not load the machine meanwhile.

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
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    distribution,
    each_run,
    machine,
    markdown_table,
    over_runs,
    pyplot,
    running_stack,
    save_chart,
    spread,
    write_results,
)

BENCH = "submission_latency"
_KEEP_ALIVE_SECONDS = 4.0
"""An idle connection older than this is not reused (uvicorn closes them after 5 s)."""


class RawClient:
    """A minimal HTTP/1.1 keep-alive client of one host, on asyncio streams.

    httpx costs this machine 2 to 3 ms of CPU a request (11 ms with 64 pooled
    connections: httpcore matches waiting requests to connections in quadratic time), so
    past ~100 requests/s it measured itself rather than the API. This one costs about
    0.15 ms. It sends ``Content-Length`` bodies and reads ``Content-Length`` answers,
    which is all uvicorn sends here.
    """

    def __init__(self, url: str) -> None:
        address = url.removeprefix("http://").rstrip("/")
        self.host, port = address.rsplit(":", 1)
        self.port = int(port)
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while self._idle:
            reader, writer, since = self._idle.pop()
            if time.monotonic() - since < _KEEP_ALIVE_SECONDS:
                return reader, writer
            writer.close()  # uvicorn may have closed it already (keep-alive timeout, 5 s)
        return await asyncio.open_connection(self.host, self.port)

    async def post(self, path: str, body: bytes) -> int:
        reader, writer = await self._connection()
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        status = int((await reader.readuntil(b"\r\n")).split(b" ", 2)[1])
        length = 0
        while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await reader.readexactly(length)
        self._idle.append((reader, writer, time.monotonic()))
        return status

    async def close(self) -> None:
        for _, writer, _ in self._idle:
            writer.close()


class HttpxClient:
    def __init__(self, url: str, connections: int) -> None:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self._client = httpx.AsyncClient(base_url=url, limits=limits, timeout=120)

    async def post(self, path: str, body: bytes) -> int:
        headers = {"Content-Type": "application/json"}
        return (await self._client.post(path, content=body, headers=headers)).status_code

    async def close(self) -> None:
        await self._client.aclose()


Client = RawClient | HttpxClient


async def _offer(
    client: Client,
    gate: asyncio.Semaphore,
    rate: float,
    seconds: float,
    schedule: dict[str, Any],
    tag: str,
) -> dict[str, Any]:
    """Requests on the timetable of ``rate`` for ``seconds``; their latencies.

    At most ``gate``'s count are in flight (one per connection): the others wait for a
    free one here, and their wait counts as latency.
    """
    count = max(1, round(rate * seconds))
    latencies: list[float] = []
    errors: list[str] = []
    finished: list[float] = []

    async def one(n: int, slot: float) -> None:
        body = orjson.dumps({"name": f"{tag}-{n}", "schedule": schedule, "handler": "noop"})
        try:
            async with gate:
                status = await client.post("/api/tasks", body)
        except (httpx.HTTPError, OSError, asyncio.IncompleteReadError) as exc:
            errors.append(type(exc).__name__)
            return
        done = time.perf_counter()
        if status == 201:
            latencies.append(done - slot)
            finished.append(done)
        else:
            errors.append(str(status))

    cpu = time.process_time()
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
        "client_cpu_ms_per_request": 1000 * (time.process_time() - cpu) / count,
    }


def _held(result: dict[str, Any], args: argparse.Namespace) -> bool:
    return (
        result["errors"] == 0
        and result["latency_ms"]["p99"] <= args.p99_limit_ms
        and result["achieved_per_s"] >= 0.95 * result["offered_per_s"]
    )


async def _sweep(api: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    schedule = {"every": args.schedule}
    results: list[dict[str, Any]] = []
    gate = asyncio.Semaphore(args.connections)
    client: Client = RawClient(api) if args.client == "raw" else HttpxClient(api, args.connections)
    try:

        async def measure(rate: float) -> dict[str, Any]:
            if args.warmup > 0:
                await _offer(client, gate, rate, args.warmup, schedule, f"warmup-{rate:g}")
            result = await _offer(client, gate, rate, args.seconds, schedule, f"rate-{rate:g}")
            result["held"] = _held(result, args)
            print(
                f"  {rate:8.1f}/s offered: {result['achieved_per_s']:8.1f}/s achieved, "
                f"p50 {result['latency_ms']['p50']:.1f} ms, p99 "
                f"{result['latency_ms']['p99']:.1f} ms, {result['errors']} errors, client "
                f"{result['client_cpu_ms_per_request']:.2f} ms CPU/request"
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
    finally:
        await client.close()
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
    return save_chart(fig, BENCH)


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
    parser.add_argument(
        "--connections", type=int, default=64, help="client connections (requests in flight)"
    )
    parser.add_argument(
        "--client",
        choices=("raw", "httpx"),
        default="raw",
        help="raw: asyncio streams, ~0.15 ms CPU a request; httpx: 2-11 ms (see RawClient)",
    )
    parser.add_argument("--schedule", default="1h", help="the tasks' interval (default 1h)")
    parser.add_argument("--log-level", default="WARNING", help="TASKSTREAM_LOG_LEVEL")
    parser.add_argument("--code", type=Path, help="run the services from this tree")
    parser.add_argument("--chart", action="store_true", help="write the chart")
    args = parser.parse_args()
    started = machine()
    runs = each_run(args.runs, lambda bootstrap: one_run(bootstrap, args))
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
            "client_cpu_ms_per_request": spread([r["client_cpu_ms_per_request"] for r in results]),
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
                figures["client_cpu_ms_per_request"]["median"],
            ]
        )
    figures = {"max_rate_held": over_runs(runs, "max_rate_held"), "by_rate": by_rate}
    print(
        f"\nPOST /api/tasks, open loop ({args.client} client, {args.connections} connections), "
        f"{args.seconds:g} s per rate after {args.warmup:g} s "
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
                "client CPU ms/req",
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
