"""Rebuild the task store from the log: drop every table, migrate, replay ``task-events``.

The store is a projection of ``task-events`` (the log keeps every record forever), so it
can always be thrown away and rebuilt: after a projection bug is fixed, after a lost or
corrupt database, or to move to another database (point ``TASKSTREAM_DATABASE_URL`` at
it). :func:`rebuild` checks that the topic exists *before* it drops anything, resets the
schema with Alembic (down to base, then up to head) and replays every partition from its
first record with the core's own :class:`~taskstream.core.projection.Projection`, until each
partition reports its end. A record the store cannot apply is stepped over and logged, as
the live projection does (the report counts them), so the rebuilt store equals the live one.

Stop every core instance that uses the database first: they would write into tables
being dropped. ``taskstream rebuild`` (``taskstream/cli/rebuild.py``) is the command.
"""

from __future__ import annotations

import gc
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from alembic.util import CommandError
from confluent_kafka import KafkaException
from sqlalchemy import MetaData, Table
from sqlalchemy.engine import Engine

from taskstream.core.migrate import downgrade, upgrade
from taskstream.core.projection import Projection
from taskstream.core.settings import CoreSettings
from taskstream.core.store import Base, TaskStore, make_engine
from taskstream.infra.kafka import admin_client
from taskstream.schemas.errors import TaskstreamError

__all__ = ["RebuildError", "RebuildReport", "rebuild", "reset_store"]

ALEMBIC_VERSION_TABLE = "alembic_version"
METADATA_TIMEOUT = 30.0
REBUILD_BATCH = 20_000
"""Records per transaction in a rebuild: fewer commits and task reads than the live 1000."""


class RebuildError(TaskstreamError):
    """The rebuild could not start or finish; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class RebuildReport:
    """What a rebuild did: records replayed (undecodable ones included) and how fast."""

    events: int
    seconds: float
    """Wall time of the whole rebuild: schema reset and replay."""
    events_per_second: float
    stepped_over: int = 0
    """Records the store could not apply: stepped over as the live projection does, logged."""


def reset_store(engine: Engine) -> None:
    """Drop every table of the store, then create them again at the newest revision.

    Alembic downgrades to base (dropping what the migrations created); the tables a
    pre-migration store has without Alembic's bookkeeping, and ``alembic_version``
    itself, are dropped next, so the upgrade starts from an empty database.
    """
    try:
        downgrade(engine, "base")
    except CommandError as exc:
        raise RebuildError(
            f"cannot downgrade the store's schema: {exc}. The database was migrated by "
            "another version of taskstream; rebuild with that version, or drop the "
            "store's tables by hand"
        ) from exc
    Base.metadata.drop_all(engine, checkfirst=True)
    Table(ALEMBIC_VERSION_TABLE, MetaData()).drop(engine, checkfirst=True)
    upgrade(engine)


def _check_topic(settings: CoreSettings) -> None:
    """Fail before anything is dropped if the broker or the topic is not there."""
    topic = settings.topics.task_events
    try:
        metadata = admin_client(settings).list_topics(timeout=METADATA_TIMEOUT)
    except KafkaException as exc:
        raise RebuildError(
            f"cannot reach Kafka at {settings.kafka_bootstrap_servers} "
            f"(TASKSTREAM_KAFKA_BOOTSTRAP_SERVERS): {exc}; the store was not touched"
        ) from exc
    found = metadata.topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        reason = f" ({found.error})" if found is not None and found.error is not None else ""
        raise RebuildError(
            f"topic {topic} does not exist on {settings.kafka_bootstrap_servers}{reason}; "
            f"check TASKSTREAM_TOPIC_PREFIX (now {settings.topic_prefix!r}). "
            "The store was not touched"
        )


def rebuild(
    settings: CoreSettings,
    progress: Callable[[int], None] | None = None,
    timeout: float = 3600,
) -> RebuildReport:
    """Drop the store at ``settings.database_url`` and replay ``task-events`` into it.

    ``progress`` is called with the number of records applied so far, after each batch.
    Raises :class:`RebuildError` if Kafka or the topic is missing (nothing is dropped
    then), and :class:`TimeoutError` if the end of the log is not reached in ``timeout``
    seconds (the store is then incomplete: run the rebuild again).
    """
    _check_topic(settings)
    engine = make_engine(settings.database_url)
    try:
        started = time.monotonic()
        reset_store(engine)
        store = TaskStore(engine, settings.topics.task_events)
        projection = Projection(
            settings, store, instance_id=f"rebuild-{uuid.uuid4().hex}", batch_size=REBUILD_BATCH
        )
        # The objects alive now (modules, models, metadata) are out of the collector's
        # full passes while millions of short-lived records go through: about 10% less CPU.
        gc.freeze()
        try:
            events = projection.catch_up(timeout, progress)
        finally:
            gc.unfreeze()
        seconds = time.monotonic() - started
    finally:
        engine.dispose()
    return RebuildReport(
        events=events,
        seconds=seconds,
        events_per_second=events / seconds if seconds > 0 else 0.0,
        stepped_over=projection.record_errors,
    )
