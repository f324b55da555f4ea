"""Bootstrap of the monitor service: a faust worker with the web server."""

from __future__ import annotations

import logging

from faust.worker import Worker

from monitor.alerts.config import AlertConfigError
from monitor.alerts.rules import RuleError
from monitor.app import create_app
from monitor.settings import MonitorSettings
from taskstream.infra.kafka import ensure_topics, standard_topics

__all__ = ["run"]

logger = logging.getLogger(__name__)


def run(settings: MonitorSettings) -> None:
    """Run the monitor until SIGINT or SIGTERM."""
    try:
        app = create_app(settings)  # a bad rules file stops it before it connects
    except (RuleError, AlertConfigError) as exc:
        raise SystemExit(f"taskstream monitor: {exc}") from None
    ensure_topics(settings, standard_topics(settings, []))
    settings.monitor_data_dir.mkdir(parents=True, exist_ok=True)
    worker = Worker(app, loglevel=settings.log_level.lower(), quiet=True)
    worker.execute_from_commandline()
