"""A bounded, mergeable histogram of durations with a relative-error guarantee.

Log buckets, as in DDSketch: with ``gamma = (1 + a) / (1 - a)``, bucket ``i`` holds the
values in ``(gamma^(i-1), gamma^i]`` and stands for ``2 gamma^i / (gamma + 1)``, which is
within relative error ``a`` of every value in it. So a quantile read from the histogram
is within relative error :data:`RELATIVE_ERROR` (1 %) of the exact nearest-rank quantile
of the values added, and the maximum is exact. Two histograms merge by adding their
bucket counts, so per-minute windows and per-partition totals combine without losing
that guarantee.

Bounds: values under :data:`MIN_TRACKED` (1 µs) count as 0; values over
:data:`MAX_TRACKED` (10^6 s, 11.6 days) share the top bucket (only ``max`` stays exact
for them). Between the two there are at most about 1,400 buckets; a task's durations
usually fill a few dozen. The JSON form (:meth:`Histogram.to_json`) is what the tables
store: bucket indexes are strings because JSON object keys are.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MAX_TRACKED", "MIN_TRACKED", "RELATIVE_ERROR", "Histogram"]

RELATIVE_ERROR = 0.01
MIN_TRACKED = 1e-6
MAX_TRACKED = 1e6

_GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
_LOG_GAMMA = math.log(_GAMMA)
_TOP_INDEX = math.ceil(math.log(MAX_TRACKED) / _LOG_GAMMA)


def _index(value: float) -> int:
    return min(math.ceil(math.log(value) / _LOG_GAMMA), _TOP_INDEX)


_EMPTY_JSON: Mapping[str, Any] = {"count": 0, "sum": 0.0, "max": None, "zeros": 0, "buckets": {}}


def _estimate(index: int) -> float:
    return 2 * _GAMMA**index / (_GAMMA + 1)


@dataclass
class Histogram:
    count: int = 0
    total: float = 0.0
    maximum: float | None = None
    zeros: int = 0
    buckets: dict[int, int] = field(default_factory=dict)

    def add(self, value: float) -> None:
        value = max(0.0, value)
        self.count += 1
        self.total += value
        self.maximum = value if self.maximum is None else max(self.maximum, value)
        if value < MIN_TRACKED:
            self.zeros += 1
        else:
            index = _index(value)
            self.buckets[index] = self.buckets.get(index, 0) + 1

    def merge(self, other: Histogram) -> None:
        self.count += other.count
        self.total += other.total
        if other.maximum is not None:
            self.maximum = (
                other.maximum if self.maximum is None else max(self.maximum, other.maximum)
            )
        self.zeros += other.zeros
        for index, n in other.buckets.items():
            self.buckets[index] = self.buckets.get(index, 0) + n

    def quantile(self, q: float) -> float | None:
        """The nearest-rank ``q`` quantile (0 < q <= 1), or None when empty."""
        if not 0 < q <= 1:
            raise ValueError(f"a quantile is in (0, 1], got {q}")
        if self.count == 0 or self.maximum is None:
            return None
        rank = max(1, math.ceil(q * self.count))
        if rank >= self.count:
            return self.maximum
        seen = self.zeros
        if rank <= seen:
            return 0.0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if rank <= seen:
                return min(_estimate(index), self.maximum)
        return self.maximum  # pragma: no cover - counts always add up to count

    def summary(self, quantiles: Mapping[str, float]) -> dict[str, float | None]:
        """``{name: quantile}`` for each named quantile, plus ``max``."""
        shown: dict[str, float | None] = {name: self.quantile(q) for name, q in quantiles.items()}
        shown["max"] = self.maximum
        return shown

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "sum": self.total,
            "max": self.maximum,
            "zeros": self.zeros,
            "buckets": {str(index): n for index, n in self.buckets.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Histogram:
        if not data:
            return cls()
        return cls(
            count=int(data["count"]),
            total=float(data["sum"]),
            maximum=None if data["max"] is None else float(data["max"]),
            zeros=int(data["zeros"]),
            buckets={int(index): int(n) for index, n in data["buckets"].items()},
        )

    @staticmethod
    def added_json(data: Mapping[str, Any] | None, value: float) -> dict[str, Any]:
        """``from_json(data)`` with ``value`` added, ``to_json()``: without building the
        histogram (a fold adds one duration per event to a stored one)."""
        if not data:
            data = _EMPTY_JSON
        value = max(0.0, value)
        maximum = data["max"]
        buckets = dict(data["buckets"])
        zeros = int(data["zeros"])
        if value < MIN_TRACKED:
            zeros += 1
        else:
            key = str(_index(value))
            buckets[key] = int(buckets.get(key, 0)) + 1
        return {
            "count": int(data["count"]) + 1,
            "sum": float(data["sum"]) + value,
            "max": value if maximum is None else max(float(maximum), value),
            "zeros": zeros,
            "buckets": buckets,
        }

    @classmethod
    def merged(cls, histograms: Iterable[Histogram]) -> Histogram:
        result = cls()
        for histogram in histograms:
            result.merge(histogram)
        return result
