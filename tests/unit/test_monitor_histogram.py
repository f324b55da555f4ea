from __future__ import annotations

import math
import random
from typing import Any

import pytest

from taskstream.monitor.histogram import MAX_TRACKED, RELATIVE_ERROR, Histogram


def exact_quantile(values: list[float], q: float) -> float:
    """The nearest-rank quantile: the smallest value with at least q of them at or below."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


SAMPLES = {
    "lognormal": lambda rng: rng.lognormvariate(0, 2),
    "uniform": lambda rng: rng.uniform(0.001, 300),
    "milliseconds": lambda rng: rng.expovariate(1 / 0.004),
    "with zeros": lambda rng: 0.0 if rng.random() < 0.1 else rng.paretovariate(1.5),
}


@pytest.mark.parametrize("kind", SAMPLES)
@pytest.mark.parametrize("size", [1, 7, 100, 5000])
def test_quantiles_are_within_the_relative_error_of_the_exact_ones(kind: str, size: int) -> None:
    rng = random.Random(f"{kind}-{size}")
    values = [SAMPLES[kind](rng) for _ in range(size)]
    histogram = Histogram()
    for value in values:
        histogram.add(value)
    assert histogram.count == size
    assert histogram.maximum == max(values)
    assert histogram.total == pytest.approx(sum(values))
    for q in (0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0):
        exact = exact_quantile(values, q)
        estimate = histogram.quantile(q)
        assert estimate is not None
        if exact < 1e-6:
            assert estimate == 0.0
        else:
            assert abs(estimate - exact) <= RELATIVE_ERROR * exact * (1 + 1e-9), (q, exact)


def test_merging_is_the_same_as_adding_everything_to_one() -> None:
    rng = random.Random(5)
    parts = [[rng.lognormvariate(1, 1) for _ in range(rng.randint(0, 300))] for _ in range(6)]
    merged = Histogram.merged(_histogram(part) for part in parts)
    whole = _histogram([value for part in parts for value in part])
    assert merged.buckets == whole.buckets
    assert (merged.count, merged.maximum, merged.zeros) == (whole.count, whole.maximum, 0)
    assert merged.total == pytest.approx(whole.total)


def test_the_json_form_round_trips_through_json_keys() -> None:
    import json

    histogram = _histogram([0.0, 0.002, 0.5, 3.0, 3.0, 7200.0])
    restored = Histogram.from_json(json.loads(json.dumps(histogram.to_json())))
    assert restored == histogram
    assert Histogram.from_json(None) == Histogram()


def test_it_is_bounded_whatever_it_is_fed() -> None:
    histogram = _histogram([10 ** (e / 50) for e in range(-600, 600)] + [1e12, 1e-12])
    assert len(histogram.buckets) < 1500
    assert histogram.quantile(1.0) == 1e12  # the maximum is exact even past the top bucket
    assert histogram.quantile(0.999) == pytest.approx(MAX_TRACKED, rel=2 * RELATIVE_ERROR)


def test_an_empty_histogram_has_no_quantiles() -> None:
    assert Histogram().quantile(0.5) is None
    assert Histogram().summary({"p50": 0.5}) == {"p50": None, "max": None}
    with pytest.raises(ValueError, match="quantile"):
        Histogram().quantile(0)


def _histogram(values: list[float]) -> Histogram:
    histogram = Histogram()
    for value in values:
        histogram.add(value)
    return histogram


def test_adding_to_the_json_form_equals_adding_to_the_histogram() -> None:
    rng = random.Random(5)
    stored: dict[str, Any] | None = None
    histogram = Histogram()
    for _ in range(2000):
        value = rng.choice([0.0, 1e-9, -1.0, 2e7, rng.expovariate(3.0), rng.uniform(0, 50)])
        stored = Histogram.added_json(stored, value)
        histogram.add(value)
        assert stored == histogram.to_json()
    assert Histogram.added_json(None, 0.5) == Histogram.added_json({}, 0.5)
