"""``taskstream dev`` (the README's run command) brings everything up and down cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from taskstream.infra.processes import free_port
from tests.support import eventually

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]


def _pids_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in command:
            found.append(int(entry.name))
    return found


def _children(pid: int) -> list[int]:
    tasks = Path(f"/proc/{pid}/task")
    return [
        int(child) for task in tasks.iterdir() for child in (task / "children").read_text().split()
    ]


def test_dev_runs_the_whole_system_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("kafka", "api", "executor", "monitor")}
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KAFKA_BOOTSTRAP_SERVERS", "TASKSTREAM_KAFKA_BOOTSTRAP_SERVERS")
    }
    env.update(
        TASKSTREAM_KAFKA_PORT=str(ports["kafka"]),
        TASKSTREAM_API_PORT=str(ports["api"]),
        TASKSTREAM_EXECUTOR_PORT=str(ports["executor"]),
        TASKSTREAM_MONITOR_PORT=str(ports["monitor"]),
        TASKSTREAM_TASK_EVENTS_PARTITIONS="3",
    )
    state = tmp_path / "state"
    output = tmp_path / "dev.out"
    with output.open("wb") as out:
        dev = subprocess.Popen(
            [sys.executable, "-m", "taskstream", "dev", "--state-dir", str(state)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    children: list[int] = []
    try:
        eventually(
            lambda: "Press Ctrl-C to stop." in output.read_text() or dev.poll() is not None,
            timeout=180,
            what="taskstream dev to report it is running",
        )
        assert dev.poll() is None, output.read_text()
        banner = output.read_text()
        assert f"http://127.0.0.1:{ports['api']}/api/tasks" in banner
        assert f"127.0.0.1:{ports['kafka']}" in banner

        api, monitor = f"http://127.0.0.1:{ports['api']}", f"http://127.0.0.1:{ports['monitor']}"
        created = httpx.post(
            f"{api}/api/tasks",
            timeout=30,
            json={
                "name": "dev-check",
                "cronExpression": "*/1 * * * * *",
                "handlerClass": "echo",
                "parameters": {"hello": "dev"},
                "maxRetries": 0,
            },
        )
        assert created.status_code == 201, created.text
        task_id = created.json()["id"]

        def succeeded() -> bool:
            items = httpx.get(f"{monitor}/api/monitor/tasks/{task_id}/executions").json()["items"]
            return any(item["status"] == "succeeded" for item in items)

        eventually(succeeded, timeout=60, what="an execution in the monitor")
        assert (state / "taskstream.db").exists(), "the store is SQLite under the state dir"
        assert _pids_mentioning(str(state / "kafka")), "the broker keeps its data in the state dir"
        children = _children(dev.pid)
        assert len(children) >= 4, "broker, core, executor and monitor run as child processes"
    finally:
        dev.send_signal(signal.SIGINT)
        code = dev.wait(90)
    assert code == 0, output.read_text()
    assert "stopped." in output.read_text()
    assert _pids_mentioning(str(state / "kafka")) == [], "no orphan Kafka JVM"
    assert [pid for pid in children if Path(f"/proc/{pid}").exists()] == [], "no orphan services"
