from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from taskstream.cli import main
from taskstream.core.settings import CoreSettings
from taskstream.executor.settings import ExecutorSettings
from taskstream.infra.kafka import producer_config
from taskstream.infra.settings import EXTRA_VARIABLES, unknown_variables
from taskstream.monitor.settings import MonitorSettings

SERVICES = [CoreSettings, ExecutorSettings, MonitorSettings]
README = Path(__file__).parents[2] / "README.md"


def test_a_typo_is_refused_with_a_suggestion() -> None:
    problems = unknown_variables(
        SERVICES, {"TASKSTREAM_API_PROT": "1", "TASKSTREAM_API_PORT": "2", "HOME": "/root"}
    )
    assert problems == ["unknown setting TASKSTREAM_API_PROT; did you mean TASKSTREAM_API_PORT?"]


def test_the_cli_refuses_unknown_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TASKSTREAM_MONITOR_POTR", "1")
    assert main(["monitor"]) == 2
    assert "did you mean TASKSTREAM_MONITOR_PORT?" in capsys.readouterr().err


def test_the_broker_address_answers_to_the_plain_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TASKSTREAM_KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker:29092")
    assert CoreSettings().kafka_bootstrap_servers == "broker:29092"


def test_bad_values_are_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKSTREAM_API_PORT", "eighty")
    with pytest.raises(ValidationError, match="api_port"):
        CoreSettings()


def test_every_setting_is_documented_in_the_readme_with_its_default() -> None:
    table = {
        match[0]: match[1]
        for match in re.findall(
            r"^\| `(TASKSTREAM_[A-Z_]+)`[^|]*\| `?([^`|]*)`? \|",
            README.read_text(),
            flags=re.MULTILINE,
        )
    }
    for cls in SERVICES:
        for name, field in cls.model_fields.items():
            variable = f"TASKSTREAM_{name.upper()}"
            assert variable in table, f"{variable} is not in the README's configuration table"
            if field.default_factory is None and isinstance(field.default, str | int | float):
                assert table[variable] == str(field.default), variable
    assert EXTRA_VARIABLES <= set(table)


def test_every_producer_lingers_as_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKSTREAM_KAFKA_LINGER_MS", "7")
    assert producer_config(CoreSettings())["linger.ms"] == 7
    assert producer_config(ExecutorSettings(), **{"linger.ms": 0})["linger.ms"] == 0
    monkeypatch.setenv("TASKSTREAM_KAFKA_LINGER_MS", "-1")
    with pytest.raises(ValidationError, match="kafka_linger_ms"):
        CoreSettings()


def test_min_insync_replicas_is_on_every_topic_and_never_above_the_replication() -> None:
    from taskstream.infra.kafka import standard_topics
    from taskstream.infra.settings import CommonSettings

    settings = CommonSettings(replication_factor=3, min_insync_replicas=2)
    specs = standard_topics(settings, ["default"])
    assert {spec.config["min.insync.replicas"] for spec in specs} == {"2"}
    assert {
        spec.config["min.insync.replicas"]
        for spec in standard_topics(CommonSettings(), ["default"])
    } == {"1"}
    with pytest.raises(ValidationError, match="cannot exceed replication_factor"):
        CommonSettings(replication_factor=1, min_insync_replicas=2)
