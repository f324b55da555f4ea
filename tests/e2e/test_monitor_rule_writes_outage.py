"""kill -9 of the broker: the monitor's alert-rule writes answer 503 at once or in bounded time.

The test runs its own broker (the session's one must not die), kills it with SIGKILL and
starts it again on the same port and data; the monitor resumes taking writes.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from taskstream.dev_broker.local_kafka import LocalKafkaBroker
from tests.e2e.stack import running_stack
from tests.support import eventually

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

WRITE_TIMEOUT = 3.0
MARGIN = 2.0
RULE = {"kind": "dead_letter"}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[LocalKafkaBroker]:
    broker = LocalKafkaBroker(port=0, data_dir=tmp_path / "kafka")
    broker.start(timeout=120)
    try:
        yield broker
    finally:
        broker.stop()


def _timed(request: httpx.Request) -> tuple[httpx.Response, float]:
    began = time.monotonic()
    with httpx.Client(timeout=300) as client:
        response = client.send(request)
    return response, time.monotonic() - began


def _refused(response: httpx.Response) -> bool:
    return response.status_code == 503 and response.json()["error"] == "kafka_unavailable"


def test_rule_writes_fail_fast_while_the_broker_is_down(
    broker: LocalKafkaBroker, tmp_path: Path
) -> None:
    prefix = f"rule-outage-{uuid.uuid4().hex[:8]}."
    with running_stack(
        broker.bootstrap_servers,
        prefix,
        tmp_path,
        names=("monitor",),
        TASKSTREAM_KAFKA_WRITE_TIMEOUT=f"{WRITE_TIMEOUT:g}s",
    ) as stack:
        rules = f"{stack.monitor}/api/alerts/rules"
        eventually(
            lambda: httpx.get(f"{stack.monitor}/ready", timeout=5).status_code == 200,
            timeout=60,
            interval=0.5,
            what=lambda: f"the monitor to be ready\n{stack.logs()}",
        )
        assert httpx.put(f"{rules}/before", json=RULE, timeout=30).status_code == 201

        broker.kill()
        # right away (the probe may not know yet): bounded by TASKSTREAM_KAFKA_WRITE_TIMEOUT
        for request in (
            httpx.Request("PUT", f"{rules}/during", json=RULE),
            httpx.Request("DELETE", f"{rules}/before"),
        ):
            response, took = _timed(request)
            assert _refused(response), (request.method, response.text)
            assert took <= WRITE_TIMEOUT + MARGIN, f"{request.method} took {took:.1f}s"

        # once the outage is known: refused at once, nothing changed
        def known() -> httpx.Response | None:
            response, _ = _timed(httpx.Request("PUT", f"{rules}/known", json=RULE))
            return response if "unreachable since" in response.text else None

        refused = eventually(known, timeout=20, interval=0.5, what="the outage to be known")
        assert _refused(refused), refused.text
        response, took = _timed(httpx.Request("DELETE", f"{rules}/before"))
        assert _refused(response) and "unreachable since" in response.text, response.text
        assert took < 1.0, f"the delete took {took:.1f}s"

        broker.start(timeout=120)
        created = eventually(
            lambda: (
                (r := httpx.put(f"{rules}/after", json=RULE, timeout=30)).status_code in (200, 201)
                and r
            ),
            timeout=90,
            interval=0.5,
            what=lambda: f"rule writes to be taken again\n{stack.logs()}",
        )
        assert created.status_code == 201, created.text
        # refused at once while the outage was known: nothing was written
        assert httpx.get(f"{rules}/known", timeout=30).status_code == 404
        # unconfirmed ones may have held on the monitor; retrying them is safe
        assert httpx.put(f"{rules}/during", json=RULE, timeout=30).status_code in (200, 201)
        assert httpx.delete(f"{rules}/before", timeout=30).status_code in (204, 404)
        assert httpx.get(f"{rules}/before", timeout=30).status_code == 404
