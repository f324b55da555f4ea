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

from typing import TYPE_CHECKING, Any

from taskstream.schemas.errors import TaskstreamError

if TYPE_CHECKING:
    from taskstream.client import AsyncClient, Client

__all__ = ["AsyncClient", "Client", "TaskstreamError"]
_LAZY = ("AsyncClient", "Client")


def __getattr__(name: str) -> Any:
    """``taskstream.Client`` and ``AsyncClient``, imported on first use: a service that
    imports ``taskstream.core`` does not load the client (httpx, tenacity) with it."""
    if name in _LAZY:
        from taskstream import client

        return getattr(client, name)
    raise AttributeError(f"module 'taskstream' has no attribute {name!r}")
