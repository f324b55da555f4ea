"""Shared fixtures: a real Kafka broker for the whole session, and unique topic prefixes.

The broker is, in order: ``KAFKA_BOOTSTRAP_SERVERS`` if set; a testcontainers Kafka if
a Docker engine answers; else the project's own broker (jars from Maven Central). A
test marked ``kafka`` never skips: without a broker it errors. Under CI (``CI`` set)
any skipped test fails the run.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Generator, Iterator

import pytest

from taskstream.dev_broker.local_kafka import LocalKafkaBroker

pytest_plugins = ["tests.postgres"]


def _docker_answers() -> bool:
    """True if a Docker engine answers ``/_ping`` on its local socket."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(3)
            sock.connect(host.removeprefix("unix://"))
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return b" 200 " in sock.recv(64)
    except OSError:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured
        return
    if _docker_answers():
        from testcontainers.community.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    broker = LocalKafkaBroker(port=0)
    try:
        yield broker.start()
    finally:
        broker.stop()


@pytest.fixture
def topic_prefix() -> str:
    """A topic prefix no other test uses."""
    return f"test-{uuid.uuid4().hex[:10]}."


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Under CI a skipped test fails: a test that needs Kafka must never skip."""
    report = yield
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI, which is not allowed: {report.longrepr}"
    return report
