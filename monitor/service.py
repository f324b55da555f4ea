"""Bootstrap of the monitor service: a faust worker with the web server."""

from __future__ import annotations

import logging
import os
import signal

import faust
from faust.worker import Worker

from taskstream.infra.health import HealthBoard
from taskstream.infra.kafka import (
    TopicSpec,
    align_topic_configs,
    ensure_topics,
    standard_topics,
)
from taskstream.infra.security import check_exposure
from taskstream.infra.thread_health import EXIT_FATAL, Watchdog
from taskstream.monitor.alerts.config import AlertConfigError
from taskstream.monitor.alerts.rules import RuleError
from taskstream.monitor.app import create_app
from taskstream.monitor.security import monitor_exposure
from taskstream.monitor.settings import MonitorSettings

__all__ = ["CHANGELOG_CONFIG", "changelog_topics", "make_worker", "run"]

logger = logging.getLogger(__name__)

CHANGELOG_CONFIG = {
    "cleanup.policy": "compact",
    # The broker compacts closed segments only, and a segment closes at 1 GiB or after 7
    # days by default: the in-memory tables restored every record ever written (about
    # 50,000 after 2 minutes of 100 tasks/s, 11 s of restore). A segment a minute and a
    # tenth of dirty records keep a restore near one record per key.
    "segment.ms": str(60_000),
    "min.cleanable.dirty.ratio": "0.1",
    # Deletions (executions evicted from a history: about one per execution) are read by
    # every restore while they are kept; a full restore needs none of them, a RocksDB
    # store down for longer than this may keep a few evicted records (unreferenced).
    "delete.retention.ms": str(15 * 60_000),
}
"""The config of the tables' changelog topics, set on existing ones too at start."""


def changelog_topics(app: faust.App) -> list[TopicSpec]:
    """The changelog topics of the app's tables, compacted, partitioned like their tables.

    They are created before faust starts: a changelog that faust creates itself while its
    consumer already holds the cluster's metadata can look like it has 0 partitions until
    the next metadata refresh (minutes), and every table write fails meanwhile
    (``PartitionsMismatch``: the agent crashes and restarts in a loop).
    """
    return [
        TopicSpec(
            table.changelog_topic.get_topic_name(),
            table.partitions,
            dict(CHANGELOG_CONFIG),
        )
        for table in app.tables.values()
    ]


def run(settings: MonitorSettings) -> None:
    """Run the monitor until SIGINT or SIGTERM.

    Raises :class:`~taskstream.infra.security.InsecureConfigurationError` before anything
    connects if it would listen beyond this machine without tokens.
    """
    check_exposure(monitor_exposure(settings))
    board = HealthBoard("monitor")
    try:
        app = create_app(settings, board=board)  # a bad rules file stops it before it connects
    except (RuleError, AlertConfigError) as exc:
        raise SystemExit(f"taskstream monitor: {exc}") from None
    # an essential component died: stop the worker as SIGTERM would, then exit non-zero
    watchdog = Watchdog(board, lambda _: os.kill(os.getpid(), signal.SIGTERM))

    async def check_health() -> None:
        watchdog.check()

    app.timer(1.0, name="watchdog")(check_health)
    settings.monitor_data_dir.mkdir(parents=True, exist_ok=True)
    changelogs = changelog_topics(app)
    ensure_topics(settings, [*standard_topics(settings, []), *changelogs])
    align_topic_configs(settings, changelogs)  # changelogs made by an earlier version
    try:
        make_worker(app, settings).execute_from_commandline()
    finally:
        if watchdog.fired is not None:
            raise SystemExit(EXIT_FATAL)


def make_worker(app: faust.App, settings: MonitorSettings) -> Worker:
    """The faust worker, without its terminal spinner.

    At WARNING and above, faust's spinner handler sets the root logger to DEBUG, so every
    debug call of faust and aiokafka (several per record) built a log record only for the
    handler to drop it: about a tenth of the monitor's CPU.
    """
    worker = Worker(app, loglevel=settings.log_level.lower(), quiet=True)
    worker.spinner = None
    return worker
