"""The monitor asks the other services' /health over real HTTP, and never hangs on one.

Each peer is a real server on loopback: an :class:`OpsServer` (what the executor serves)
with a board whose essential component failed, one that is healthy, a port nobody listens
on, and a socket that accepts the connection but never answers.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from taskstream.infra.health import ComponentStatus, HealthBoard, State
from taskstream.infra.ops_http import OpsServer
from taskstream.infra.processes import free_port
from taskstream.monitor.peer_health import UNREACHABLE, Peer, ask_peers, health_report


class _Fixed:
    def __init__(self, name: str, status: ComponentStatus) -> None:
        self.name = name
        self.essential = True
        self._status = status

    def health(self) -> ComponentStatus:
        return self._status


def _ops(*sources: _Fixed) -> OpsServer:
    server = OpsServer("127.0.0.1", 0, HealthBoard("executor", sources), lambda: {"id": "x"})
    server.start()
    return server


@pytest.fixture
def silent() -> Iterator[str]:
    """A listener that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_each_peer_is_shown_as_it_answers_and_a_silent_one_within_the_timeout(
    silent: str,
) -> None:
    broken = _ops(_Fixed("consumer:default", ComponentStatus(State.FAILED, "stopped: boom")))
    healthy = _ops(_Fixed("kafka", ComponentStatus.ok()))
    try:
        peers = [
            Peer("executor", f"http://127.0.0.1:{broken.port}"),
            Peer("executor", f"http://127.0.0.1:{healthy.port}"),
            Peer("core", f"http://127.0.0.1:{free_port()}"),  # nobody listens
            Peer("executor", silent),
        ]
        started = time.monotonic()
        answers = asyncio.run(ask_peers(peers, timeout=0.5))
        took = time.monotonic() - started
    finally:
        broken.stop()
        healthy.stop()
    assert took < 2.0, f"asking took {took:.1f}s: a silent peer held up the others"
    shown = [answer.as_json() for answer in answers]
    assert [s["url"] for s in shown] == [p.url for p in peers]
    assert shown[0]["state"] == "failed"
    assert shown[0]["components"]["consumer:default"] == {
        "state": "failed",
        "reason": "stopped: boom",
    }
    assert "consumer:default: stopped: boom" in shown[0]["reason"]
    assert shown[1]["state"] == "ok" and shown[1]["components"] == {"kafka": {"state": "ok"}}
    assert shown[2]["state"] == UNREACHABLE and "ConnectError" in shown[2]["reason"]
    assert shown[3]["state"] == UNREACHABLE
    assert shown[3]["reason"] == f"no answer from {silent}/health within 0.5s"

    own = HealthBoard("monitor", [_Fixed("tables", ComponentStatus(State.RECOVERING, "restoring"))])
    report = health_report(own.snapshot(), answers, datetime.now(UTC))
    assert report["state"] == "failing"
    assert [s["service"] for s in report["services"]] == [
        "monitor",
        "executor",
        "executor",
        "core",
        "executor",
    ]
    assert [(p["service"], p["component"], p["state"]) for p in report["problems"]] == [
        ("executor", "consumer:default", "failed"),
        ("core", None, UNREACHABLE),
        ("executor", None, UNREACHABLE),
    ]
    assert report["waiting"] == [
        {"service": "monitor", "component": "tables", "state": "recovering", "reason": "restoring"}
    ]


def test_a_server_that_is_not_a_health_endpoint_is_unreachable() -> None:
    server = _ops()
    try:  # the ops server answers 404 (JSON, but no health state) for another path
        peer = Peer("core", f"http://127.0.0.1:{server.port}/nothing")
        [answer] = asyncio.run(ask_peers([peer], timeout=2))
    finally:
        server.stop()
    assert answer.as_json()["state"] == UNREACHABLE
    assert answer.as_json()["reason"].endswith("/health answered HTTP 404")
