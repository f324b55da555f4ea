"""The executor's Prometheus metrics (served on ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "CONSUMER_LAG",
    "DEAD_LETTERS",
    "DISPATCH_LATENCY",
    "DURATION",
    "EXECUTIONS",
    "IN_FLIGHT",
    "LINGERING_THREADS",
    "PAUSED_PARTITIONS",
    "RETRIES_SCHEDULED",
]

EXECUTIONS = Counter(
    "taskstream_executions_total", "executions finished", ["outcome", "handler", "queue"]
)
DURATION = Histogram(
    "taskstream_execution_duration_seconds",
    "handler run time",
    ["handler", "queue"],
    buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
DISPATCH_LATENCY = Histogram(
    "taskstream_dispatch_latency_seconds",
    "handler start minus the slot's due time (scheduled_for), first attempts only",
    ["queue", "priority"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
IN_FLIGHT = Gauge("taskstream_executions_in_flight", "executions running now")
LINGERING_THREADS = Gauge(
    "taskstream_executor_lingering_threads",
    "sync handler threads still running after their execution timed out or was cancelled",
)
RETRIES_SCHEDULED = Counter(
    "taskstream_retries_scheduled_total", "RetryScheduled events appended", ["queue"]
)
DEAD_LETTERS = Counter(
    "taskstream_dead_letters_total", "records sent to the dead-letter topic", ["reason"]
)
CONSUMER_LAG = Gauge(
    "taskstream_executor_consumer_lag",
    "records of a queue's execution topics not finished yet (high watermark - committable)",
    ["queue"],
)
PAUSED_PARTITIONS = Gauge(
    "taskstream_executor_paused_partitions", "partitions paused by back-pressure", ["queue"]
)
