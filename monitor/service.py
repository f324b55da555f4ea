"""Bootstrap of the monitor service: a faust worker with the web server."""

from __future__ import annotations

import logging

from faust.worker import Worker

from monitor.app import create_app
from monitor.settings import MonitorSettings
from taskstream.infra.kafka import ensure_topics, standard_topics

__all__ = ["run"]

logger = logging.getLogger(__name__)


def run(settings: MonitorSettings) -> None:
    """Run the monitor until SIGINT or SIGTERM."""
    ensure_topics(settings, standard_topics(settings, []))
    settings.monitor_data_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(settings)
    worker = Worker(app, loglevel=settings.log_level.lower(), quiet=True)
    worker.execute_from_commandline()
