"""The monitor's faust app: tables built from ``task-events``, its web API and metrics.

:func:`create_app` only wires the parts: the tables (:mod:`taskstream.monitor.tables`), the agent
that folds events into them (:mod:`taskstream.monitor.projection`), the JSON API
(:mod:`taskstream.monitor.api`, described at ``/openapi.json``: :mod:`taskstream.monitor.openapi`,
errors in one shape: :mod:`taskstream.monitor.http_errors`), the Prometheus metrics
(:mod:`taskstream.monitor.metrics`), the alerts (:mod:`taskstream.monitor.alerts`) and the dashboard
(:mod:`taskstream.monitor.dashboard`). Tables are changelogged in Kafka and rebuilt on restart.
"""

from __future__ import annotations

import faust
from prometheus_client import CollectorRegistry

from taskstream.infra.broker_health import BrokerHealth
from taskstream.infra.health import HealthBoard, HealthSource
from taskstream.monitor.agent_health import AgentHealth
from taskstream.monitor.alerts import install_alerts
from taskstream.monitor.api import install_api
from taskstream.monitor.api_docs import install_api_docs
from taskstream.monitor.dashboard import install_dashboard
from taskstream.monitor.health_view import install_health_view
from taskstream.monitor.http_errors import MAX_BODY_BYTES, error_middleware
from taskstream.monitor.lag import ConsumerLag
from taskstream.monitor.metrics import event_counters, install_metrics
from taskstream.monitor.openapi import install_openapi
from taskstream.monitor.projection import install_projection
from taskstream.monitor.readiness import TablesReadiness
from taskstream.monitor.security import auth_middleware
from taskstream.monitor.settings import MonitorSettings
from taskstream.monitor.tables import MonitorTables
from taskstream.monitor.task_faults import TaskFaults
from taskstream.monitor.transport import use_read_committed

__all__ = ["create_app", "health_sources"]

_READINESS_REFRESH_SECONDS = 1.0


_PRODUCER_BUFFER_MESSAGES = 50_000


def create_app(
    settings: MonitorSettings,
    registry: CollectorRegistry | None = None,
    board: HealthBoard | None = None,
) -> faust.App:
    """Build the faust app (nothing connects until a worker starts it); its components'
    health goes on ``board`` (the monitor's ``/health`` and ``/ready``)."""
    metrics = registry or CollectorRegistry()
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{server}" for server in settings.kafka_bootstrap_servers.split(",")],
        store=settings.monitor_store,
        datadir=str(settings.monitor_data_dir),
        web_host=settings.monitor_host,
        web_bind=settings.monitor_host,  # faust binds web_bind (0.0.0.0 by default), not web_host
        web_port=settings.monitor_port,
        # errors first (outermost): the token check's 401 passes through it as it is
        web_application_options={
            "middlewares": [error_middleware(), auth_middleware(settings)],
            "client_max_size": MAX_BODY_BYTES,
        },
        web_enabled=True,
        # faust's own pages (/router, /table: raw table contents) are not the monitor's API
        web_router_enabled=False,
        web_tables_enabled=False,
        topic_partitions=settings.task_events_partitions,
        topic_replication_factor=settings.replication_factor,
        consumer_auto_offset_reset="earliest",
        table_cleanup_interval=30.0,
        # a batch writes its changelog records in a burst; aiokafka's default 16 KiB
        # batches made it wait for the broker every few records (librdkafka's default)
        producer_max_batch_size=1_000_000,
        # after a kill -9 the dead member holds the partitions until its session ends
        broker_session_timeout=settings.monitor_session_timeout.total_seconds(),
        broker_heartbeat_interval=settings.monitor_session_timeout.total_seconds() / 5,
    )
    use_read_committed(app)  # never fold what an aborted transaction wrote
    # faust pauses the stream whenever more than 100 changelog records wait to be sent and
    # then drains them one event-loop round trip each ("producer buffer full"): a batch
    # writes a few thousand, so let the buffer hold a few batches' worth instead.
    app.producer.buffer.max_messages = _PRODUCER_BUFFER_MESSAGES
    tables = MonitorTables.create(app, settings.task_events_partitions)
    lag = ConsumerLag(settings.topics.task_events)
    faults = TaskFaults(metrics)
    task_events = install_projection(
        app, settings, tables, lag, *event_counters(metrics), faults
    )  # task_events.health: the agent's HealthSource (monitor/agent_health.py)
    broker = BrokerHealth(settings)
    readiness = TablesReadiness(app, lag)
    board = board or HealthBoard("monitor")
    for source in health_sources(broker, readiness, task_events.health):
        board.add(source)
    board.register_metrics(metrics)

    @app.task  # type: ignore[untyped-decorator]
    async def probe_broker() -> None:
        broker.start()

    async def refresh_readiness() -> None:
        await readiness.refresh()

    app.timer(_READINESS_REFRESH_SECONDS, name="tables-readiness")(refresh_readiness)
    install_api(app, settings, tables, lag, board, readiness)
    install_metrics(app, metrics, tables, lag)
    book = install_alerts(
        app, settings, metrics, task_events, broker
    )  # alerts and GET /api/workers: monitor/alerts/
    install_health_view(app, settings, board, readiness, book.quarantined)
    install_dashboard(app)
    install_openapi(app)
    install_api_docs(app)
    return app


def health_sources(
    broker: BrokerHealth, readiness: TablesReadiness, agent: AgentHealth | None
) -> list[HealthSource]:
    """Every component ``/health`` and ``/ready`` report, in the order they show."""
    return [broker, readiness, *([agent] if agent is not None else [])]
