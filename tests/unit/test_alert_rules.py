"""Alert rules and the rules file: what is accepted, and what bad input is told."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import taskstream.monitor.alerts
from taskstream.monitor.alerts.config import load_rules_file, unconfigured
from taskstream.monitor.alerts.rules import (
    Channel,
    ConsecutiveFailuresRule,
    ExecutorLostRule,
    FailureRateRule,
    RuleError,
    parse_rule,
    parse_rules,
    rule_as_dict,
)
from taskstream.schemas import EventDecodeError, WorkerHeartbeat
from taskstream.schemas.workers import read_workers_record, worker_view


def test_defaults_and_round_trip() -> None:
    rule = parse_rule({"id": "fails", "kind": "consecutive_failures"})
    assert isinstance(rule, ConsecutiveFailuresRule)
    assert rule.threshold == 3 and rule.throttle == timedelta(minutes=15)
    assert rule.channels == (Channel.WEBHOOK, Channel.EMAIL, Channel.TOPIC)
    assert rule_as_dict(rule)["throttle"] == "15m"
    assert parse_rule(rule_as_dict(rule)) == rule


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"id": "x"}, "kind", "missing: use one of consecutive_failures, failure_rate"),
        ({"id": "x", "kind": "cpu"}, "kind", "unknown rule kind 'cpu': use one of"),
        ({"id": "X Y", "kind": "dead_letter"}, "id", "lower-case letters, digits"),
        ({"id": "x", "kind": "long_run"}, "limit", "required for kind 'long_run'"),
        ({"id": "x", "kind": "long_run", "limit": "soon"}, "limit", "invalid duration 'soon'"),
        ({"id": "x", "kind": "long_run", "limit": "0s"}, "limit", "more than 0s"),
        (
            {"id": "x", "kind": "failure_rate", "threshold": 50},
            "threshold",
            "less than or equal to 1",
        ),
        ({"id": "x", "kind": "dead_letter", "threshold": 2}, "threshold", "unknown field"),
        (
            {"id": "x", "kind": "executor_lost", "tasks": ["a"]},
            "tasks",
            "unknown field for kind 'executor_lost'",
        ),
        ({"id": "x", "kind": "dead_letter", "channels": []}, "channels", "at least one channel"),
        ({"id": "x", "kind": "dead_letter", "channels": ["sms"]}, "channels.0", "'webhook'"),
        ({"id": "x", "kind": "dead_letter", "throttle": "10ms"}, "throttle", "at least 1s"),
        ({"id": "x", "kind": "dead_letter", "severity": "high"}, "severity", "'critical'"),
    ],
)
def test_bad_rules_name_the_field_and_how_to_fix_it(
    body: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(RuleError) as caught:
        parse_rule(body)
    fields = {error["field"]: error["message"] for error in caught.value.errors}
    assert field in fields, caught.value.errors
    assert message in fields[field]
    assert message in str(caught.value)


def test_the_url_id_fills_or_must_match_the_body() -> None:
    assert parse_rule({"kind": "dead_letter"}, rule_id="dl").id == "dl"
    with pytest.raises(RuleError, match="the body's id 'b' is not the URL's 'a'"):
        parse_rule({"id": "b", "kind": "dead_letter"}, rule_id="a")


def test_a_list_reports_every_bad_rule_and_duplicate_ids() -> None:
    with pytest.raises(RuleError) as caught:
        parse_rules(
            [
                {"id": "a", "kind": "dead_letter"},
                {"id": "a", "kind": "long_run", "limit": "1m"},
                {"id": "b", "kind": "failure_rate"},
            ]
        )
    assert [e["field"] for e in caught.value.errors] == ["rules[1].id", "rules[2].threshold"]


def test_a_toml_rules_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(
        """
[[rules]]
id = "rate"
kind = "failure_rate"
threshold = 0.25
window = "30m"
channels = ["email"]

[[rules]]
id = "lost"
kind = "executor_lost"
timeout = "1m"
severity = "critical"
"""
    )
    rate, lost = load_rules_file(path)
    assert isinstance(rate, FailureRateRule) and rate.window == timedelta(minutes=30)
    assert isinstance(lost, ExecutorLostRule) and lost.timeout == timedelta(minutes=1)
    assert unconfigured([rate, lost], {Channel.EMAIL: object()}) == [  # type: ignore[dict-item]
        "alert rule 'lost' names channel 'webhook', which is not configured",
        "alert rule 'lost' names channel 'topic', which is not configured",
    ]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("r.toml", "[[rules]\n", "not valid TOML"),
        ("r.json", "{", "not valid JSON"),
        ("r.toml", 'rule = "x"\n', "the file holds one list, 'rules'"),
        ("r.toml", '[[rules]]\nid = "x"\nkind = "long_run"\n', "rules[0].limit: required for kind"),
    ],
)
def test_a_bad_rules_file_says_where_and_what(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(RuleError, match=f"alert rules file {path}") as caught:
        load_rules_file(path)
    assert message in str(caught.value)
    with pytest.raises(RuleError, match="cannot read it"):
        load_rules_file(tmp_path / "missing.toml")


def test_workers_records_and_view() -> None:
    now = datetime.now(UTC)
    beat = WorkerHeartbeat(
        executor_id="e1",
        host="h",
        pid=1,
        queues=["default"],
        handlers=["echo"],
        capacity=2,
        in_flight=1,
        cpu_percent=1.5,
        memory_rss_bytes=10,
        started_at=now,
        sent_at=now - timedelta(seconds=5),
    )
    assert read_workers_record(b"e1", beat.encode()) == ("e1", beat)
    assert read_workers_record(b"e1", None) == ("e1", None)
    with pytest.raises(EventDecodeError):
        read_workers_record(None, None)
    view = worker_view(beat, now, timedelta(seconds=20))
    assert view["live"] is True and view["last_seen_seconds"] == 5.0
    assert view["executor_id"] == "e1" and view["in_flight"] == 1
    assert worker_view(beat, now, timedelta(seconds=5))["live"] is False


def test_public_surface_is_pinned() -> None:
    assert sorted(taskstream.monitor.alerts.__all__) == [
        "Channel",
        "ConsecutiveFailuresRule",
        "DeadLetterRule",
        "ExecutorLostRule",
        "FailureRateRule",
        "LongRunRule",
        "MissedScheduleRule",
        "Rule",
        "RuleError",
        "install_alerts",
        "parse_rule",
        "parse_rules",
    ]


def test_the_monitor_refuses_to_start_on_bad_alert_configuration(tmp_path: Path) -> None:
    from taskstream.monitor.alerts.config import AlertConfigError
    from taskstream.monitor.app import create_app
    from taskstream.monitor.service import run
    from taskstream.monitor.settings import MonitorSettings

    bad = tmp_path / "rules.toml"
    bad.write_text('[[rules]]\nid = "x"\nkind = "failure_rate"\n')
    settings = MonitorSettings(monitor_alert_rules_file=bad, kafka_bootstrap_servers="nowhere:1")
    with pytest.raises(SystemExit, match=r"taskstream monitor: alert rules file .*threshold"):
        run(settings)  # before any connection
    with pytest.raises(AlertConfigError, match="TASKSTREAM_MONITOR_ALERT_EMAIL_TO"):
        create_app(MonitorSettings(monitor_alert_smtp_host="127.0.0.1"))
    with pytest.raises(AlertConfigError, match="without a password"):
        create_app(
            MonitorSettings(
                monitor_alert_smtp_host="127.0.0.1",
                monitor_alert_email_to=["a@b"],
                monitor_alert_smtp_username="u",
            )
        )
    good = tmp_path / "good.toml"
    good.write_text('[[rules]]\nid = "x"\nkind = "dead_letter"\n')
    create_app(MonitorSettings(monitor_alert_rules_file=good))  # builds, connects nothing
