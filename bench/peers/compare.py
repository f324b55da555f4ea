"""taskstream against its peers: reads the newest results in ``bench/results/`` and prints
the ratios (issue #6) as a Markdown table and one JSON line.

- throughput: taskstream ``throughput-*.json`` (``figures.executions_per_s``) against
  ``celery-noop-*.json`` and ``dramatiq-noop-*.json``; the ratio is taskstream / peer, so
  > 1 means taskstream executes more no-ops per second.
- precision: taskstream ``precision-*.json`` (``figures.fire_lateness_ms`` and
  ``figures.start_lateness_ms``, each ``p50``/``p99``/``max``) against
  ``apscheduler-precision-*.json``; the ratio is peer / taskstream, so here too > 1 means
  taskstream is better (less late).

A figure may be a number or a ``{"median", "min", "max"}`` summary (its median is used).
The targets of issue #6 are reported against, not asserted: >= 10,000 executions/s and
>= 2x Dramatiq's figure in the same run; lateness p99 <= 10 ms at 10,000 fires/s. The
issue asks for the figures of one run on one machine: the table says when each file was
written, and warns when they are more than ``--max-spread-hours`` apart.

    .venv/bin/python bench/peers/compare.py
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"


@dataclass
class Result:
    path: Path
    data: dict[str, Any]

    @property
    def written(self) -> datetime:
        """The ``at`` the benchmark recorded, else the file's modification time."""
        at = self.data.get("at")
        if isinstance(at, str):
            try:
                return datetime.fromisoformat(at).astimezone(UTC)
            except ValueError:
                pass
        return datetime.fromtimestamp(self.path.stat().st_mtime, UTC)

    def sized(self) -> str:
        """The workload's size, from ``config`` where the file has one."""
        config = self.data.get("config")
        if not isinstance(config, dict):
            return ""
        keys = ("tasks", "jobs", "seconds", "runs")
        return ", ".join(f"{k} {config[k]}" for k in keys if k in config)

    def figure(self, *keys: str) -> float | None:
        value: Any = self.data.get("figures", {})
        for key in keys:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        if isinstance(value, dict):
            value = value.get("median")
        return float(value) if isinstance(value, int | float) else None


def newest(results: Path, bench: str) -> Result | None:
    """The newest ``<bench>-*.json`` whose name does not continue ``bench`` with a word
    (``precision-*`` is not ``apscheduler-precision-*``, and the reverse)."""
    candidates = [
        p
        for p in results.glob(f"{bench}-*.json")
        if p.name[len(bench) + 1 : len(bench) + 2].isdigit()
    ]
    if not candidates:
        return None
    path = max(candidates, key=lambda p: p.stat().st_mtime)
    return Result(path, json.loads(path.read_text()))


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None or math.isnan(value):
        return "not measured"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return f"{text}{unit}"


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den == 0 or math.isnan(num) or math.isnan(den):
        return None
    return num / den


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--max-spread-hours", type=float, default=6.0)
    args = parser.parse_args()
    names = ["throughput", "precision", "celery-noop", "dramatiq-noop", "apscheduler-precision"]
    files = {name: newest(args.results, name) for name in names}
    ts_tput, ts_prec = files["throughput"], files["precision"]
    aps = files["apscheduler-precision"]
    rows: list[dict[str, Any]] = []

    ts_eps = ts_tput.figure("executions_per_s") if ts_tput else None
    for peer in ("celery-noop", "dramatiq-noop"):
        result = files[peer]
        peer_eps = result.figure("executions_per_s") if result else None
        rows.append(
            {
                "figure": "no-op executions/s",
                "peer": peer.removesuffix("-noop"),
                "taskstream": ts_eps,
                "peer_value": peer_eps,
                "ratio": _ratio(ts_eps, peer_eps),
                "ratio_is": "taskstream / peer",
                "target": ">= 2x" if peer == "dramatiq-noop" else "",
                "unit": "/s",
            }
        )
    for kind in ("fire_lateness_ms", "start_lateness_ms"):
        for stat in ("p50", "p99", "max"):
            ts_value = ts_prec.figure(kind, stat) if ts_prec else None
            peer_value = aps.figure(kind, stat) if aps else None
            rows.append(
                {
                    "figure": f"{kind.removesuffix('_ms').replace('_', ' ')} {stat}",
                    "peer": "apscheduler",
                    "taskstream": ts_value,
                    "peer_value": peer_value,
                    "ratio": _ratio(peer_value, ts_value),
                    "ratio_is": "peer / taskstream",
                    "target": "taskstream <= 10 ms" if stat == "p99" else "",
                    "unit": " ms",
                }
            )

    print("| figure | peer | taskstream | peer's | ratio (> 1: taskstream better) | target |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        ratio = row["ratio"]
        ratio_text = "n/a" if ratio is None else f"{ratio:.2f} ({row['ratio_is']})"
        print(
            f"| {row['figure']} | {row['peer']} | {_fmt(row['taskstream'], row['unit'])} "
            f"| {_fmt(row['peer_value'], row['unit'])} | {ratio_text} | {row['target']} |"
        )
    print()
    if ts_eps is not None:
        print(f"- taskstream >= 10,000 executions/s: {'yes' if ts_eps >= 10_000 else 'no'}")
    dramatiq_ratio = rows[1]["ratio"]
    if dramatiq_ratio is not None:
        print(f"- taskstream >= 2x Dramatiq: {'yes' if dramatiq_ratio >= 2 else 'no'}")
    for kind in ("fire", "start"):
        p99 = ts_prec.figure(f"{kind}_lateness_ms", "p99") if ts_prec else None
        if p99 is not None:
            print(f"- taskstream {kind} lateness p99 <= 10 ms: {'yes' if p99 <= 10 else 'no'}")
    fires = {
        "taskstream": ts_prec.figure("fires_per_s") if ts_prec else None,
        "apscheduler": aps.figure("fires_per_s") if aps else None,
    }
    print(
        "- fires/s achieved: " + ", ".join(f"{name} {_fmt(value)}" for name, value in fires.items())
    )

    present = {name: r for name, r in files.items() if r is not None}
    print("\nfiles:")
    for name, result in files.items():
        if result is None:
            print(f"- {name}: none in {args.results}")
        else:
            sized = f", {result.sized()}" if result.sized() else ""
            print(f"- {name}: {result.path.name} ({result.written:%Y-%m-%d %H:%M} UTC{sized})")
    if len(present) > 1:
        times = [r.written for r in present.values()]
        spread = (max(times) - min(times)).total_seconds() / 3600
        if spread > args.max_spread_hours:
            print(
                f"\nwarning: the results span {spread:.1f} h: the issue asks for one run "
                "on one machine, so run every benchmark again back to back",
                file=sys.stderr,
            )
    print(
        json.dumps(
            {
                "bench": "compare",
                "rows": rows,
                "files": {n: str(r.path.name) for n, r in present.items()},
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
