"""``taskstream dev`` (the README's run command) brings everything up, keeps it up (a killed
service is restarted) and brings it down cleanly."""

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


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


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
            items = (
                httpx.get(f"{monitor}/api/monitor/tasks/{task_id}/executions")
                .json()
                .get("items", [])
            )  # 503 while recovering
            return any(item["status"] == "succeeded" for item in items)

        eventually(succeeded, timeout=60, what="an execution in the monitor")
        assert (state / "taskstream.db").exists(), "the store is SQLite under the state dir"
        assert _pids_mentioning(str(state / "kafka")), "the broker keeps its data in the state dir"
        children = _children(dev.pid)
        assert len(children) >= 4, "broker, core, executor and monitor run as child processes"

        # kill -9 of the executor: dev says so and restarts it; the others keep running
        [executor] = [pid for pid in children if "taskstream executor" in _cmdline(pid)]
        others = [pid for pid in children if pid != executor]
        os.kill(executor, signal.SIGKILL)
        eventually(
            lambda: "executor exited with -9; restarting in 1s (restart 1)" in output.read_text(),
            timeout=30,
            what=lambda: f"dev to report the restart:\n{output.read_text()}",
        )

        def restarted() -> bool:
            now = _children(dev.pid)
            if not any("taskstream executor" in _cmdline(pid) for pid in now):
                return False
            try:
                health = httpx.get(f"http://127.0.0.1:{ports['executor']}/health", timeout=5)
            except httpx.HTTPError:
                return False  # not listening yet
            return health.status_code == 200

        eventually(restarted, timeout=90, what=lambda: f"the executor back:\n{output.read_text()}")
        assert dev.poll() is None, output.read_text()
        assert all(Path(f"/proc/{pid}").exists() for pid in others), "nothing else stopped"
        run = httpx.post(f"{api}/api/tasks/{task_id}/run", timeout=30)
        assert run.status_code == 202, run.text
        execution = run.json()["execution_id"]

        def ran_again() -> bool:
            items = (
                httpx.get(f"{monitor}/api/monitor/tasks/{task_id}/executions")
                .json()
                .get("items", [])
            )  # 503 while recovering
            return any(i["execution_id"] == execution and i["status"] == "succeeded" for i in items)

        eventually(ran_again, timeout=60, what="the restarted executor to run work")
        children = _children(dev.pid)
    finally:
        dev.send_signal(signal.SIGINT)
        code = dev.wait(90)
    assert code == 0, output.read_text()
    assert "stopped." in output.read_text()
    assert _pids_mentioning(str(state / "kafka")) == [], "no orphan Kafka JVM"
    assert [pid for pid in children if Path(f"/proc/{pid}").exists()] == [], "no orphan services"
