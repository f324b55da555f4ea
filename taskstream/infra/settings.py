"""Settings every service shares: where Kafka is and what the topics are called.

Every setting is an environment variable with the ``TASKSTREAM_`` prefix (the broker
address also answers to the plain ``KAFKA_BOOTSTRAP_SERVERS``). Each service's own
settings class extends :class:`CommonSettings`; only settings modules read the
environment.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Annotated, Literal, Self

from pydantic import AliasChoices, BeforeValidator, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from taskstream.schemas import Duration

__all__ = [
    "ENV_PREFIX",
    "EXTRA_VARIABLES",
    "CommonSettings",
    "TokenList",
    "Topics",
    "split_list",
    "unknown_variables",
]

ENV_PREFIX = "TASKSTREAM_"


def split_list(value: object) -> object:
    """A comma-separated variable as a list of its non-empty, stripped items."""
    if isinstance(value, str):
        return [token.strip() for token in value.split(",") if token.strip()]
    return value


TokenList = Annotated[list[str], NoDecode, BeforeValidator(split_list)]
"""Bearer tokens of a listener: a comma-separated variable (``a,b``), or a list."""


EXTRA_VARIABLES = frozenset(
    {
        "TASKSTREAM_KAFKA_PORT",
        "TASKSTREAM_CACHE_DIR",
        "TASKSTREAM_API_URL",
        "TASKSTREAM_API_TOKEN",
        "TASKSTREAM_MONITOR_API_URL",
        "TASKSTREAM_MONITOR_API_TOKEN",
        "TASKSTREAM_TEST_ARTIFACTS",
        "TASKSTREAM_TEST_POSTGRES_URL",
    }
)
"""Variables read outside the settings classes (``taskstream dev``, the broker, the CLI, tests)."""


def unknown_variables(
    settings_classes: Iterable[type[CommonSettings]], environ: Mapping[str, str] | None = None
) -> list[str]:
    """One message per ``TASKSTREAM_*`` variable no settings class knows, with a hint."""
    known = set(EXTRA_VARIABLES)
    for cls in settings_classes:
        known.update(f"{ENV_PREFIX}{name.upper()}" for name in cls.model_fields)
    messages = []
    for name in sorted(os.environ if environ is None else environ):
        if name.startswith(ENV_PREFIX) and name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"; did you mean {close[0]}?" if close else "; see the README's Configuration"
            messages.append(f"unknown setting {name}{hint}")
    return messages


class Topics:
    """Topic names under one prefix (default ``taskstream.``)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.task_events = f"{prefix}task-events"
        self.dead_letter = f"{prefix}dead-letter"
        self.workers = f"{prefix}workers"
        self.alerts = f"{prefix}alerts"
        self.execution_logs = f"{prefix}execution-logs"
        self.cancellations = f"{prefix}cancellations"
        """Copies of the ``CancelRequested`` events, forwarded by the schedulers in their
        fire transactions: what executors read instead of all of ``task-events``."""

    def execution(self, queue: str, priority: str) -> str:
        """The work-order topic of one queue's priority lane."""
        return f"{self.prefix}executions.{queue}.{priority}"


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices(
            "kafka_bootstrap_servers",
            f"{ENV_PREFIX}KAFKA_BOOTSTRAP_SERVERS",
            "KAFKA_BOOTSTRAP_SERVERS",
        ),
        description="Kafka bootstrap servers, host:port[,host:port]",
    )
    topic_prefix: str = Field(default="taskstream.", description="prefix of every topic name")
    task_events_partitions: int = Field(
        default=12, ge=1, description="partitions of task-events: the unit of sharding"
    )
    execution_partitions: int = Field(
        default=6, ge=1, description="partitions of each execution topic"
    )
    kafka_compression: Literal["none", "lz4", "zstd", "snappy", "gzip"] = Field(
        default="lz4", description="compression of produced batches"
    )
    kafka_linger_ms: int = Field(
        default=2,
        ge=0,
        le=1000,
        description=(
            "how long a producer waits to fill a batch (librdkafka's linger.ms): every "
            "service's, on the dispatch path too (see docs/benchmarks.md for the sweep)"
        ),
    )
    execution_log_retention: Duration = Field(
        default=timedelta(days=7),
        description="how long per-execution logs are kept (the topic and the core's table)",
    )
    replication_factor: int = Field(default=1, ge=1, description="replication of new topics")
    min_insync_replicas: int = Field(
        default=1,
        ge=1,
        description=(
            "min.insync.replicas of the topics the services create: how many replicas must "
            "have a write before acks=all succeeds (at most the replication factor; 2 of 3 "
            "keeps writing with one broker down without losing an acknowledged write)"
        ),
    )
    kafka_consumer_queue_kbytes: int = Field(
        default=8192,
        ge=1024,
        description=(
            "most KiB of fetched, not yet consumed records a Kafka consumer holds "
            "(librdkafka's queued.max.messages.kbytes; its default, 64 MiB, held hundreds "
            "of MiB per consumer while the core caught up with a long log)"
        ),
    )
    loop_stall_after: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description=(
            "seconds a consumer loop may go without advancing while records wait (or one "
            "call into its component may take) before its health says unavailable"
        ),
    )
    kafka_write_timeout: Duration = Field(
        default=timedelta(seconds=10),
        description=(
            "the longest an API write (a task change, an alert rule) waits for the broker "
            "before it answers 503 kafka_unavailable (librdkafka's message.timeout.ms)"
        ),
    )
    kafka_unreachable_after: Duration = Field(
        default=timedelta(seconds=6),
        description=(
            "a broker that answered no metadata request for this long (or that every "
            "connection lost) is unreachable: /health answers 503 and writes are refused"
        ),
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = Field(
        default="json", description="'json' lines for machines, 'text' for people"
    )

    @field_validator("execution_log_retention")
    @classmethod
    def _positive_retention(cls, value: timedelta) -> timedelta:
        if value.total_seconds() < 60:
            raise ValueError(f"must be at least a minute, got {value}")
        return value

    @field_validator("kafka_write_timeout", "kafka_unreachable_after")
    @classmethod
    def _kafka_timeouts(cls, value: timedelta) -> timedelta:
        if not 1 <= value.total_seconds() <= 300:
            raise ValueError(f"must be between 1s and 5m, got {value}")
        return value

    @model_validator(mode="after")
    def _insync_within_replicas(self) -> Self:
        if self.min_insync_replicas > self.replication_factor:
            raise ValueError(
                f"min_insync_replicas ({self.min_insync_replicas}) cannot exceed "
                f"replication_factor ({self.replication_factor}): no write could succeed; "
                "lower TASKSTREAM_MIN_INSYNC_REPLICAS or raise TASKSTREAM_REPLICATION_FACTOR"
            )
        return self

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)
