"""Every Kafka client of the services, the handlers and the CLI takes its settings from
:mod:`taskstream.infra.kafka`, so a connection setting (a linger, TLS, SASL) reaches all.

A static check: each ``Producer(...)``, ``Consumer(...)`` and ``AdminClient(...)`` in the
code is given a configuration built by one of :data:`BUILDERS`.
"""

from __future__ import annotations

import ast
from pathlib import Path

from taskstream.infra.kafka import client_config, consumer_config, producer_config
from taskstream.infra.settings import CommonSettings

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["core", "executor", "monitor", "handlers", "taskstream/cli", "taskstream/infra"]
CLIENTS = {"Producer", "Consumer", "AdminClient"}
BUILDERS = {"producer_config", "consumer_config", "client_config", "producer_settings"}
"""``producer_settings``: the ``kafka`` handler's, over the executor's producer settings."""
BUILT_BEFORE = {("taskstream/infra/broker_health.py", "self._config")}
"""Clients whose configuration is built a few lines before (from ``client_config``)."""


def _constructions() -> list[tuple[str, int, str]]:
    """(file, line, how the configuration is given) of every Kafka client built."""
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                if name not in CLIENTS or not node.args:
                    continue
                given = node.args[0]
                source = ast.unparse(given.func if isinstance(given, ast.Call) else given)
                found.append((str(path.relative_to(ROOT)), node.lineno, source))
    return found


def _stray(built: list[tuple[str, int, str]]) -> list[tuple[str, int, str]]:
    return [
        (path, line, source)
        for path, line, source in built
        if source.split(".")[-1] not in BUILDERS and (path, source) not in BUILT_BEFORE
    ]


def test_every_kafka_client_takes_the_shared_configuration() -> None:
    built = _constructions()
    assert len(built) >= 10, built  # the check reads the code it is meant to
    assert _stray(built) == [], "build these clients' settings with taskstream.infra.kafka"


def test_a_client_given_its_own_settings_is_found() -> None:
    planted = [("cli/x.py", 3, "{'bootstrap.servers': servers}"), ("core/y.py", 9, "config")]
    assert _stray(planted) == planted


def test_the_builders_share_the_connection_settings() -> None:
    settings = CommonSettings(kafka_bootstrap_servers="broker:9092")
    connection = client_config(settings)
    assert connection["bootstrap.servers"] == "broker:9092"
    for config in (producer_config(settings), consumer_config(settings, "group")):
        assert {key: config[key] for key in connection} == connection
