"""Prometheus metrics of the monitor, on its own registry, served at ``/metrics``.

What the tables count is *collected* from them at every scrape rather than counted in
the process, so the numbers are the tables' (once per execution, whatever arrives
twice) and survive a restart: the tables come back from their changelogs.

- ``taskstream_monitor_executions_total{outcome}``: executions by outcome
  (``succeeded``, ``failed``, ``timed_out``, ``cancelled``, ``dead_lettered``)
- ``taskstream_monitor_skipped_slots_total``: slots skipped (``ExecutionSkipped``)
- ``taskstream_monitor_executions_unfinished{status}``: executions ``scheduled`` or
  ``running`` now
- ``taskstream_monitor_execution_duration_seconds``: handler run time of finished
  executions (histogram)
- ``taskstream_monitor_consumer_lag_records``: records of ``task-events`` not yet
  processed (absent while unknown)
- ``taskstream_monitor_events_total{type}``, ``taskstream_monitor_undecodable_total``:
  records read by this process
"""

from __future__ import annotations

from collections.abc import Iterator

import faust
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from taskstream.monitor.contract import Operation
from taskstream.monitor.lag import ConsumerLag
from taskstream.monitor.stats import DURATION_BUCKETS, LIVE
from taskstream.monitor.tables import MonitorTables
from taskstream.monitor.transitions import OUTCOMES

__all__ = ["OPERATIONS", "TablesCollector", "event_counters", "install_metrics"]

PROMETHEUS = Operation(
    method="get",
    path="/metrics",
    operation_id="getPrometheusMetrics",
    summary="Prometheus metrics (text exposition format)",
    responses={
        200: {
            "description": "the metrics",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
    open=True,
    tags=("probes",),
)
OPERATIONS = (PROMETHEUS,)


def event_counters(registry: CollectorRegistry) -> tuple[Counter, Counter]:
    """The counters of records read: ``(events_seen by type, undecodable)``."""
    events_seen = Counter(
        "taskstream_monitor_events_total",
        "task-events records read by the monitor",
        ["type"],
        registry=registry,
    )
    undecodable = Counter(
        "taskstream_monitor_undecodable_total",
        "task-events records the monitor could not decode",
        registry=registry,
    )
    return events_seen, undecodable


class TablesCollector(Collector):
    def __init__(self, tables: MonitorTables, lag: ConsumerLag) -> None:
        self.tables = tables
        self.lag = lag

    def collect(self) -> Iterator[Metric]:
        totals = self.tables.merged_totals()
        counts = totals["counts"]
        executions = CounterMetricFamily(
            "taskstream_monitor_executions",
            "executions by outcome, once per execution (dead_lettered besides its run outcome)",
            labels=["outcome"],
        )
        for outcome in (*OUTCOMES, "dead_lettered"):
            executions.add_metric([outcome], counts[outcome])
        yield executions
        yield CounterMetricFamily(
            "taskstream_monitor_skipped_slots",
            "schedule slots that did not run (ExecutionSkipped)",
            value=counts["skipped"],
        )
        unfinished = GaugeMetricFamily(
            "taskstream_monitor_executions_unfinished",
            "executions scheduled or running now",
            labels=["status"],
        )
        for status in LIVE:
            unfinished.add_metric([status], totals["live"][status])
        yield unfinished
        cumulative, buckets = 0, []
        for bound, n in zip(
            (*DURATION_BUCKETS, float("inf")), totals["duration_buckets"], strict=True
        ):
            cumulative += n
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        yield HistogramMetricFamily(
            "taskstream_monitor_execution_duration_seconds",
            "handler run time of finished executions",
            buckets=buckets,
            sum_value=totals["duration_sum"],
        )
        if self.lag.records is not None:
            yield GaugeMetricFamily(
                "taskstream_monitor_consumer_lag_records",
                "task-events records not yet processed by the monitor",
                value=self.lag.records,
            )


def install_metrics(
    app: faust.App, registry: CollectorRegistry, tables: MonitorTables, lag: ConsumerLag
) -> None:
    """Collect the tables' numbers into ``registry`` and serve it at ``/metrics``."""
    registry.register(TablesCollector(tables, lag))

    @app.page(PROMETHEUS.path)
    async def prometheus(self: View, request: Request) -> Response:
        return self.bytes(generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})
