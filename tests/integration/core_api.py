"""A core runtime in-process on the test broker, and its API served by uvicorn on a free port."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from taskstream.core.api import CoreRuntime, create_api
from taskstream.core.service import bootstrap, shutdown
from taskstream.core.settings import CoreSettings
from taskstream.handlers import HandlerRegistry
from taskstream.handlers.builtin import EchoHandler, NoopHandler
from taskstream.infra.processes import free_port
from tests.support import eventually


@contextmanager
def core_runtime(
    kafka_bootstrap: str,
    topic_prefix: str,
    workdir: Path,
    registry: HandlerRegistry | None = None,
    **settings: Any,
) -> Iterator[CoreRuntime]:
    """A core runtime with SQLite in ``workdir`` that knows ``registry``'s handlers
    (default: noop and echo)."""
    if registry is None:
        registry = HandlerRegistry()
        registry.register(NoopHandler)
        registry.register(EchoHandler)
    configured = CoreSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        topic_prefix=topic_prefix,
        task_events_partitions=3,
        execution_partitions=1,
        database_url=f"sqlite:///{workdir / 'store.db'}",
        unserved_handler="ignore",
        **settings,
    )
    runtime = bootstrap(configured, registry)
    try:
        yield runtime
    finally:
        shutdown(runtime)


@contextmanager
def served(runtime: CoreRuntime, **settings: Any) -> Iterator[httpx.Client]:
    """The API over ``runtime`` (some settings changed), a client on its free port."""
    changed = runtime.settings.model_copy(update=settings)
    app = create_api(dataclasses.replace(runtime, settings=changed))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, port=port, log_config=None, access_log=False, lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="test-api", daemon=True)
    thread.start()
    try:
        eventually(lambda: server.started, what="the API to listen")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(10)
