"""Is the broker reachable? A :class:`~taskstream.infra.health.HealthSource` named ``kafka``.

A thread asks the cluster for its metadata (one cheap request) every few seconds with a
short timeout; the admin client's ``error_cb`` reports ``_ALL_BROKERS_DOWN`` (every
connection lost) at once. No answer for ``kafka_unreachable_after``, or all brokers down:
``unavailable`` with ``kafka: unreachable since <time> (<error>)``. It is not essential:
every client reconnects by itself, so the first answer after the broker returns turns it
``ok`` again, with no restart. Writers ask :meth:`BrokerHealth.unreachable` to refuse a
write at once (503 ``kafka_unavailable``) instead of queuing it for a dead broker.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from taskstream.infra.health import ComponentStatus, State
from taskstream.infra.kafka import client_config
from taskstream.infra.settings import CommonSettings

__all__ = ["BrokerHealth"]

logger = logging.getLogger(__name__)

_DOWN_CODES = frozenset({KafkaError._ALL_BROKERS_DOWN})


class BrokerHealth:
    """The broker as one service's clients see it (started by the service's bootstrap)."""

    name = "kafka"
    essential = False

    def __init__(self, settings: CommonSettings) -> None:
        self._after = settings.kafka_unreachable_after.total_seconds()
        self._interval = min(2.0, self._after / 3)
        self._timeout = max(0.5, self._after / 2)
        self._config: dict[str, Any] = {
            **client_config(settings, logging.getLogger("librdkafka.health")),
            "error_cb": self._on_error,
            "socket.connection.setup.timeout.ms": int(self._timeout * 1000),
            "reconnect.backoff.max.ms": 1000,
        }
        self._lock = threading.Lock()
        self._last_ok = time.monotonic()
        self._down_since: float | None = None
        """monotonic time the broker was first found unreachable, until it answers again."""
        self._down_wall: datetime | None = None
        self._error = "no answer yet"
        self._brokers = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="broker-health", daemon=True)

    def start(self) -> None:
        """Connect and probe (nothing connects before)."""
        self._last_ok = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self._timeout + 1)

    def unreachable(self) -> str | None:
        """Why the broker counts as unreachable right now, or None if it answers."""
        status = self.health()
        return status.reason if status.state is State.UNAVAILABLE else None

    def health(self) -> ComponentStatus:
        now = time.monotonic()
        with self._lock:
            down_since = self._down_since
            if down_since is None and now - self._last_ok > self._after:
                down_since = self._last_ok  # the probe itself is stuck
            if down_since is None:
                return ComponentStatus.ok(brokers=self._brokers)
            since = self._down_wall or datetime.now(UTC) - timedelta(seconds=now - down_since)
            return ComponentStatus(
                State.UNAVAILABLE,
                f"unreachable since {since.isoformat(timespec='seconds')} ({self._error})",
                {"unreachable_seconds": round(now - down_since, 1)},
            )

    # -- the probe ----------------------------------------------------------------------

    def _run(self) -> None:
        self._admin = AdminClient(self._config)
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                metadata = self._admin.list_topics(timeout=self._timeout)
            except KafkaException as exc:
                self._failed(str(exc.args[0].str() if exc.args else exc))
            except Exception as exc:  # never let the probe die: it would read as "ok"
                self._failed(repr(exc))
            else:
                self._answered(len(metadata.brokers))
            self._admin.poll(0)  # serves error_cb
            self._stop.wait(max(0.0, self._interval - (time.monotonic() - began)))

    def _answered(self, brokers: int) -> None:
        with self._lock:
            if self._down_since is not None:
                logger.info(
                    "Kafka reachable again after %.1fs", time.monotonic() - self._down_since
                )
            self._last_ok = time.monotonic()
            self._down_since = None
            self._down_wall = None
            self._brokers = brokers

    def _failed(self, error: str) -> None:
        with self._lock:
            self._error = error
            if self._down_since is None and time.monotonic() - self._last_ok > self._after:
                self._mark_down(self._last_ok)

    def _on_error(self, error: KafkaError) -> None:
        """librdkafka's ``error_cb`` (called from the probe's poll)."""
        if error.code() in _DOWN_CODES:
            with self._lock:
                self._error = error.str()
                if self._down_since is None:
                    self._mark_down(time.monotonic())

    def _mark_down(self, since: float) -> None:
        self._down_since = since
        self._down_wall = datetime.now(UTC) - timedelta(seconds=time.monotonic() - since)
        logger.error("Kafka unreachable: %s", self._error)

    def __repr__(self) -> str:
        state: Any = self.health().state.value
        return f"<BrokerHealth {state}>"
