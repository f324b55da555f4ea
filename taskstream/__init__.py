"""taskstream: a distributed task scheduler for Python teams, built on Kafka.

One import namespace; its packages, lowest layer first (``pyproject.toml`` holds the
contract that ``make lint`` enforces):

- ``taskstream.schemas``: the events, the API's models and the one exception tree;
- ``taskstream.handlers``: the ``TaskHandler`` SDK and the built-in handlers;
- ``taskstream.infra``: what the services share (Kafka settings, health, logging, HTTP);
- ``taskstream.core``, ``taskstream.executor``, ``taskstream.monitor``: the services, which
  never import each other;
- ``taskstream.cli``: the ``taskstream`` command; ``taskstream.dev_broker``: the local
  Kafka broker that ``taskstream dev`` and the tests start.

The folders ``core executor monitor handlers schemas`` sit at the top of the repository;
the build maps them into this package (``[tool.setuptools] package-dir``).
"""

__all__: list[str] = []
