"""One round of faults under a steady load, checked by the independent ledger.

The whole stack (core, executor, monitor as processes) runs on a 3-node KRaft cluster
(replication 3, min.insync.replicas 2) while 100 interval tasks fire every second (a tenth
of them fail their first attempt and succeed on the retry). Then, in turn: kill -9 one
broker and restart it; kill -9 every broker and restart them; kill -9 the core, the
executor and the monitor, each restarted. The load is then deleted, the pipeline drains,
and the ledger (``tests/faults/ledger.py``, which shares no code with the services) must
show zero lost slots, zero duplicate fires, every fired execution terminal, no rerun of a
finished execution, and the store and the monitor agreeing with the log.

The time each fault took to recover is printed and written to
``$TASKSTREAM_TEST_ARTIFACTS/faults.json`` (default ``.taskstream/test-artifacts/``).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.faults.harness import (
    FAULT_KINDS,
    RECOVERY_TIMEOUT,
    create_load,
    fault_rig,
    stop_load,
    wait_for,
)
from tests.faults.ledger import build_ledger

pytestmark = [pytest.mark.kafka, pytest.mark.e2e, pytest.mark.fault_round]
# In the default run (`make test`); `make test-faults` runs it alone.

TASKS = 100
STEADY = 5.0  # seconds of load with no fault between two faults


def _artifacts() -> Path:
    path = Path(os.environ.get("TASKSTREAM_TEST_ARTIFACTS", ".taskstream/test-artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.mark.timeout(900)
def test_a_round_of_faults_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    round_started = time.monotonic()
    with fault_rig(tmp_path, rate=TASKS) as rig:
        load = create_load(rig.stack.core, TASKS, None)
        wait_for(
            lambda: rig.watch.flowing_since(time.monotonic() - 3, TASKS / 2),
            timeout=60,
            what=f"the load to flow at {TASKS // 2}/s",
        )
        for fault in FAULT_KINDS:
            rig.inject(fault)
            rig.steady(STEADY)
        stopped = stop_load(rig.stack.core, load)

        last_answer: list[str] = []

        def drained() -> bool:
            if datetime.now(UTC) < stopped + timedelta(seconds=5):
                return False
            response = httpx.get(f"{rig.stack.monitor}/api/monitor/metrics?minutes=1")
            if response.status_code != 200:  # still restoring its tables after its kill
                last_answer[:] = [f"{response.status_code} {response.text[:300]}"]
                return False
            totals = response.json()["totals"]
            return bool(totals["scheduled"] == 0 and totals["running"] == 0)

        drain_error = None
        try:
            wait_for(drained, timeout=90, what="the load to drain")
        except AssertionError as exc:
            drain_error = f"{exc} (the monitor last answered: {last_answer or 'totals'})"
        ledger = build_ledger(
            rig.cluster.bootstrap_servers,
            rig.stack.prefix,
            load.task_ids,
            core_url=rig.stack.core,
            monitor_url=rig.stack.monitor,
            executor_kills=[
                datetime.fromisoformat(r.started_at)
                for r in rig.recoveries
                if r.fault == "executor"
            ],
        )
        logs = rig.stack.logs()
        recoveries = list(rig.recoveries)
    result = {
        "tasks": TASKS,
        "round_seconds": round(time.monotonic() - round_started, 1),
        "recoveries": [asdict(r) for r in recoveries],
        "ledger": ledger.summary(),
    }
    (_artifacts() / "faults.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(ledger.report())

    failures = []
    if drain_error:
        failures.append(f"drain: {drain_error}")
    failures += [
        f"{r.fault} did not recover within {RECOVERY_TIMEOUT:.0f} s after its restart: {asdict(r)}"
        for r in recoveries
        if not r.recovered
    ]
    if not ledger.ok():
        failures.append(f"ledger:\n{ledger.report(examples=8)}")
    assert ledger.slots_expected >= TASKS * 60, "the load ran long enough to mean something"
    assert not failures, "\n".join(failures) + f"\n\nservice logs:\n{logs}"
