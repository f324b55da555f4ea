"""taskstream: a distributed task scheduler for Python teams, built on Kafka.

One import namespace; its packages, lowest layer first (``pyproject.toml`` holds the
contract that ``make lint`` enforces):

- ``taskstream.schemas``: the events, the API's models and the one exception tree;
- ``taskstream.handlers``: the ``TaskHandler`` SDK and the built-in handlers;
- ``taskstream.infra``: what the services share (Kafka settings, health, logging, HTTP);
- ``taskstream.core``, ``taskstream.executor``, ``taskstream.monitor``: the services, which
  never import each other;
- ``taskstream.client``: the public Python client (``taskstream.Client``,
  ``taskstream.AsyncClient``), beside the services;
- ``taskstream.cli``: the ``taskstream`` command; ``taskstream.dev_broker``: the local
  Kafka broker that ``taskstream dev`` and the tests start.

The folders ``core executor monitor handlers schemas`` sit at the top of the repository;
the build maps them into this package (``[tool.setuptools] package-dir``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskstream.client import AsyncClient, Client
    from taskstream.schemas.errors import TaskstreamError

__all__ = ["AsyncClient", "Client", "TaskstreamError"]
_HOMES = {
    "AsyncClient": "taskstream.client",
    "Client": "taskstream.client",
    "TaskstreamError": "taskstream.schemas.errors",
}


def __getattr__(name: str) -> Any:
    """``taskstream.Client``, ``AsyncClient`` and ``TaskstreamError``, imported on first
    use: ``import taskstream`` loads nothing, and a service that imports
    ``taskstream.core`` does not load the client (httpx, tenacity) with it."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'taskstream' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
