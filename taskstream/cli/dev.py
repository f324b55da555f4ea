"""``taskstream dev``: the whole system on this machine, stopped by Ctrl-C.

Starts a local Kafka broker (unless ``KAFKA_BOOTSTRAP_SERVERS`` names one), then the
core, an executor and the monitor as child processes with SQLite under the state
directory, waits until each answers ``/health``, prints where they listen, and then
supervises them: a service (or the broker) that exits is restarted with exponential
backoff (1 s, doubling, at most 30 s; reset once it stayed up a minute), and a service
whose ``/health`` turns 503 is reported with the reason, and again once it recovers.
Only Ctrl-C or SIGTERM stops them all (the broker last). Logs go to ``<state>/logs``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

import httpx

from taskstream.dev_broker.local_kafka import LocalKafkaBroker
from taskstream.infra.processes import spawn_tied_to_interpreter
from taskstream.schemas.errors import TaskstreamError

__all__ = [
    "Backoff",
    "ServiceProcess",
    "run_dev",
    "service_env",
    "start_service",
    "wait_healthy",
]

_SERVICES = (
    ("core", "TASKSTREAM_API_PORT", 8080),
    ("executor", "TASKSTREAM_EXECUTOR_PORT", 8081),
    ("monitor", "TASKSTREAM_MONITOR_PORT", 6066),
)


@dataclass
class ServiceProcess:
    name: str
    process: subprocess.Popen[bytes]
    health_url: str
    log_path: Path
    _log: IO[bytes]

    def stop(self, timeout: float = 20.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def service_env(base: dict[str, str] | None = None, **settings: str) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env.update(settings)
    return env


def start_service(
    name: str, env: dict[str, str], health_url: str, log_path: Path
) -> ServiceProcess:
    """Start ``taskstream <name>`` as a child process logging to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab")
    process = spawn_tied_to_interpreter(
        [sys.executable, "-m", "taskstream", name], cwd=None, stdout=log, new_session=False, env=env
    )
    return ServiceProcess(name, process, health_url, log_path, log)


def wait_healthy(service: ServiceProcess, timeout: float = 90.0, *, ready: bool = False) -> None:
    """Poll the service's ``/health`` (``ready``: its ``/ready``) until it answers 200;
    raise with its log if not."""
    url = service.health_url.removesuffix("/health") + "/ready" if ready else service.health_url
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise RuntimeError(
                f"{service.name} exited with {service.process.returncode}:\n{service.log_tail()}"
            )
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{service.name} not healthy after {timeout:.0f}s:\n{service.log_tail()}")


class _Stop(TaskstreamError):
    pass


@dataclass
class Backoff:
    """Exponential restart delays: ``first``, doubling, capped at ``cap``; a child that
    stayed up ``stable`` seconds starts again from ``first``."""

    first: float = 1.0
    cap: float = 30.0
    stable: float = 60.0
    restarts: int = 0
    _streak: int = 0

    def next_delay(self, uptime: float) -> float:
        if uptime >= self.stable:
            self._streak = 0
        delay = min(self.first * 2.0**self._streak, self.cap)
        self._streak += 1
        self.restarts += 1
        return delay


@dataclass
class _Child:
    """One supervised child: how to start it, how to tell it exited, its restarts."""

    name: str
    start: Callable[[], None]
    exit_code: Callable[[], int | None]
    health_url: str | None = None
    backoff: Backoff = field(default_factory=Backoff)
    started_at: float = field(default_factory=time.monotonic)
    restart_at: float | None = None
    unhealthy: str | None = None
    next_probe: float = 0.0


def _say(message: str) -> None:
    print(message, flush=True)


def _supervise(child: _Child, now: float) -> None:
    """One round for ``child``: notice an exit, restart when due, report its health."""
    if child.restart_at is None:
        code = child.exit_code()
        if code is not None:
            delay = child.backoff.next_delay(now - child.started_at)
            child.restart_at = now + delay
            child.unhealthy = None
            _say(
                f"{child.name} exited with {code}; restarting in {delay:g}s "
                f"(restart {child.backoff.restarts})"
            )
            return
    elif now >= child.restart_at:
        child.restart_at = None
        try:
            child.start()
        except Exception as exc:  # e.g. the broker did not come up: try again later
            _say(f"{child.name} did not start: {exc}")
        child.started_at = time.monotonic()
        return
    if child.health_url is not None and child.restart_at is None and now >= child.next_probe:
        child.next_probe = now + 2.0
        _report_health(child)


def _report_health(child: _Child) -> None:
    assert child.health_url is not None
    try:
        response = httpx.get(child.health_url, timeout=2.0)
    except httpx.HTTPError:
        return  # starting, or exiting: the exit is noticed above
    if response.status_code == 503:
        try:
            reason = str(response.json().get("message", response.text))
        except ValueError:
            reason = response.text
        if reason != child.unhealthy:
            _say(f"{child.name} is unhealthy: {reason}")
        child.unhealthy = reason
    elif response.status_code == 200 and child.unhealthy is not None:
        _say(f"{child.name} is healthy again")
        child.unhealthy = None


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def run_dev(state_dir: Path, fresh: bool = False) -> int:
    state_dir = state_dir.resolve()
    if fresh and state_dir.exists():
        shutil.rmtree(state_dir)
    logs = state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    broker: LocalKafkaBroker | None = None
    services: list[ServiceProcess] = []
    env = service_env()
    env.setdefault("TASKSTREAM_DATABASE_URL", f"sqlite:///{state_dir / 'taskstream.db'}")
    env.setdefault("TASKSTREAM_MONITOR_DATA_DIR", str(state_dir / "monitor"))
    env.setdefault("TASKSTREAM_LOG_FORMAT", "text")
    # the dashboard shows the core's and the executor's /health
    core_port = env.get("TASKSTREAM_API_PORT", "8080")
    executor_port = env.get("TASKSTREAM_EXECUTOR_PORT", "8081")
    env.setdefault("TASKSTREAM_MONITOR_CORE_URL", f"http://127.0.0.1:{core_port}")
    env.setdefault("TASKSTREAM_MONITOR_EXECUTOR_URLS", f"http://127.0.0.1:{executor_port}")
    try:
        bootstrap = env.get("TASKSTREAM_KAFKA_BOOTSTRAP_SERVERS") or env.get(
            "KAFKA_BOOTSTRAP_SERVERS"
        )
        if not bootstrap:
            port = int(env.get("TASKSTREAM_KAFKA_PORT", "9092"))
            print(
                f"starting Kafka on 127.0.0.1:{port} (data in {state_dir / 'kafka'}) ...",
                flush=True,
            )
            broker = LocalKafkaBroker(
                port=port, data_dir=state_dir / "kafka", log_file=logs / "kafka.log"
            )
            bootstrap = broker.start()
        env["TASKSTREAM_KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
        urls = {}
        children: list[_Child] = []
        if broker is not None:
            local = broker

            def start_broker() -> None:
                local.start()

            children.append(_Child("kafka", start_broker, lambda: local.wait(0)))
        for index, (name, port_variable, default_port) in enumerate(_SERVICES):
            port = int(env.get(port_variable, default_port))
            urls[name] = f"http://127.0.0.1:{port}"
            print(f"starting {name} ...", flush=True)
            service = start_service(name, env, f"{urls[name]}/health", logs / f"{name}.log")
            services.append(service)
            wait_healthy(service)
            children.append(_service_child(services, index, env, logs))
        prefix = env.get("TASKSTREAM_TOPIC_PREFIX", "taskstream.")
        print(
            "\ntaskstream is running:\n"
            f"  Kafka     {bootstrap}   (topics prefixed {prefix})\n"
            f"  core API  {urls['core']}/api/tasks   (OpenAPI: {urls['core']}/docs)\n"
            f"  executor  {urls['executor']}/health\n"
            f"  monitor   {urls['monitor']}/api/monitor/tasks/<id>/executions\n"
            f"  logs      {logs}\n"
            "Press Ctrl-C to stop.",
            flush=True,
        )
        while True:
            for child in children:
                _supervise(child, time.monotonic())
            time.sleep(0.5)  # the supervision round's pace (Ctrl-C interrupts it)
    except _Stop:
        print("\nstopping ...", flush=True)
        return 0
    except RuntimeError as exc:
        print(f"taskstream dev: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for service in reversed(services):
            service.stop()
        if broker is not None:
            broker.stop()
        print("stopped.", flush=True)


def _service_child(
    services: list[ServiceProcess], index: int, env: dict[str, str], logs: Path
) -> _Child:
    """Supervision of ``services[index]``: a restart replaces it in the list."""
    first = services[index]

    def start() -> None:
        old = services[index]
        old.stop(timeout=0)  # reaped already; closes its log
        services[index] = start_service(old.name, env, old.health_url, old.log_path)

    return _Child(
        first.name,
        start,
        lambda: services[index].process.poll(),
        health_url=first.health_url,
    )
