"""docs/metrics.md lists every metric the core and the executor register, as registered."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

import taskstream.core.service
import taskstream.executor.service
from tests.metrics_docs import DocumentedMetric, documented_metrics, exposed_name

SERVICES = {"core": taskstream.core.service, "executor": taskstream.executor.service}
SHARED = "taskstream.infra"
"""The shared runtime's metrics (the consumer loops') are listed once, under ``shared``."""


_COLLECTED = {"taskstream_component_up", "taskstream_component_state"}
"""Collected from a health board at each scrape (taskstream.infra.health), not module-level."""


def _module_metrics(package: str) -> Iterator[tuple[str, MetricWrapperBase]]:
    """The metrics defined at module level in ``package`` (what its service imports)."""
    for name, module in list(sys.modules.items()):
        if name == package or name.startswith(f"{package}."):
            for value in vars(module).values():
                if isinstance(value, MetricWrapperBase):
                    yield name, value


def _as_documented(service: str, metric: MetricWrapperBase) -> DocumentedMetric:
    [family] = metric.describe()
    labels = frozenset(metric._labelnames)  # no public accessor; stable since client 0.1
    return DocumentedMetric(service, exposed_name(family.name, family.type), family.type, labels)


@pytest.fixture(scope="module")
def documented() -> dict[str, DocumentedMetric]:
    return documented_metrics()


@pytest.mark.parametrize("service", [*sorted(SERVICES), "shared"])
def test_each_metric_of_a_service_is_documented_as_it_is(
    service: str, documented: dict[str, DocumentedMetric]
) -> None:
    metrics = [
        v for _, v in _module_metrics(SHARED if service == "shared" else f"taskstream.{service}")
    ]
    found = {m.name: m for m in (_as_documented(service, v) for v in metrics)}
    assert found, f"no metric found in {service}'s modules"
    for name, metric in sorted(found.items()):
        assert name in documented, f"{name} ({service}) is missing from docs/metrics.md"
        assert documented[name] == metric, f"docs/metrics.md describes {name} otherwise"
    listed = {
        name
        for name, m in documented.items()
        if m.service == service and name not in _COLLECTED  # collected, not module-level
    }
    assert listed - found.keys() == set(), "docs/metrics.md lists metrics the service lacks"


def test_nothing_registered_escapes_the_docs(documented: dict[str, DocumentedMetric]) -> None:
    """A metric made inside a function (not at module level) is still in the registry."""
    names = {
        exposed_name(family.name, family.type)
        for family in REGISTRY.collect()
        if family.name.startswith("taskstream_")
    }
    assert names, "the default registry holds no taskstream_ metric"
    assert names - documented.keys() == set()


def test_names_follow_the_conventions(documented: dict[str, DocumentedMetric]) -> None:
    """What `promtool check metrics` checks, for the monitor's rows too, plus our own rules."""
    assert {m.service for m in documented.values()} == {"core", "executor", "monitor", "shared"}
    for name, metric in documented.items():
        assert metric.type in {"counter", "gauge", "histogram"}, name
        assert name.endswith("_total") == (metric.type == "counter"), name
        if metric.type == "histogram":
            assert name.endswith("_seconds") or name.endswith("_bytes"), f"{name}: no unit"
        assert "le" not in metric.labels and "quantile" not in metric.labels, name
        abbreviated = {"ms", "sec", "secs", "msec", "millis", "milliseconds", "kb", "mb"}
        assert not abbreviated & set(name.split("_")), f"{name}: use base units (seconds, bytes)"
