"""The three services as processes against the test broker, on free ports."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from taskstream.cli.dev import ServiceProcess, service_env, start_service, wait_healthy
from taskstream.infra.processes import free_port


@dataclass
class Stack:
    env: dict[str, str]
    prefix: str
    urls: dict[str, str]
    services: dict[str, ServiceProcess] = field(default_factory=dict)

    @property
    def core(self) -> str:
        return self.urls["core"]

    @property
    def monitor(self) -> str:
        return self.urls["monitor"]

    def logs(self) -> str:
        return "\n".join(f"--- {name}\n{svc.log_tail(60)}" for name, svc in self.services.items())


def stack_env(bootstrap: str, prefix: str, workdir: Path) -> tuple[dict[str, str], dict[str, str]]:
    ports = {"core": free_port(), "executor": free_port(), "monitor": free_port()}
    env = service_env(
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        TASKSTREAM_KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        TASKSTREAM_TOPIC_PREFIX=prefix,
        TASKSTREAM_TASK_EVENTS_PARTITIONS="3",
        TASKSTREAM_EXECUTION_PARTITIONS="2",
        TASKSTREAM_DATABASE_URL=f"sqlite:///{workdir / 'store.db'}",
        TASKSTREAM_API_PORT=str(ports["core"]),
        TASKSTREAM_EXECUTOR_PORT=str(ports["executor"]),
        TASKSTREAM_MONITOR_PORT=str(ports["monitor"]),
        TASKSTREAM_MONITOR_DATA_DIR=str(workdir / "monitor"),
        TASKSTREAM_MONITOR_CORE_URL=f"http://127.0.0.1:{ports['core']}",
        TASKSTREAM_MONITOR_EXECUTOR_URLS=f"http://127.0.0.1:{ports['executor']}",
        TASKSTREAM_LOG_FORMAT="json",
    )
    return env, {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}


@contextmanager
def running_stack(
    bootstrap: str,
    prefix: str,
    workdir: Path,
    names: tuple[str, ...] = ("core", "executor", "monitor"),
    **settings: str,
) -> Iterator[Stack]:
    env, urls = stack_env(bootstrap, prefix, workdir)
    env.update(settings)
    stack = Stack(env, prefix, urls)
    try:
        for name in names:  # core first: it creates the topics
            service = start_service(name, env, f"{urls[name]}/health", workdir / f"{name}.log")
            stack.services[name] = service
            wait_healthy(service, ready=True)
        yield stack
    finally:
        for service in reversed(list(stack.services.values())):
            service.stop()
