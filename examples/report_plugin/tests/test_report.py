"""Tests of ``example.report``, run with taskstream's harness: no broker, no executor."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from report_plugin.handlers import DailyReport, ReportParams

from taskstream.handlers import PermanentError
from taskstream.handlers.params import InvalidParamsError
from taskstream.handlers.testing import run_handler

ROWS = [
    {"region": "eu", "amount": 120.5},
    {"region": "us", "amount": 200},
    {"region": "eu", "amount": 39.5},
    {"region": "us", "amount": 50},
    {"region": "apac", "amount": 90},
]
PARAMS = {"title": "Daily sales", "rows": ROWS, "group_by": "region", "measure": "amount"}


def test_report_totals_each_group() -> None:
    run = run_handler(DailyReport, PARAMS, scheduled_for=datetime(2026, 11, 23, 2, 30, tzinfo=UTC))
    run.raise_error()
    assert run.output == {
        "title": "Daily sales",
        "day": "2026-11-23",
        "rows": 5,
        "total": 500.0,
        "groups": [
            {"key": "us", "total": 250.0, "count": 2, "share": 0.5},
            {"key": "eu", "total": 160.0, "count": 2, "share": 0.32},
            {"key": "apac", "total": 90.0, "count": 1, "share": 0.18},
        ],
    }
    assert run.logs == ["built report 'Daily sales' for 2026-11-23: 5 rows in 3 groups"]


def test_top_keeps_the_largest_groups() -> None:
    run = run_handler(DailyReport, {**PARAMS, "top": 1})
    assert [group["key"] for group in run.output["groups"]] == ["us"]
    assert run.output["total"] == 500.0


def test_an_empty_day_is_a_report_too() -> None:
    run = run_handler(DailyReport, {**PARAMS, "rows": []})
    assert run.succeeded
    assert run.output["total"] == 0.0 and run.output["groups"] == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rows": "lots"}, r"params.rows must be a list such as \[\{.region.: .eu."),
        (
            {"group_by": None},
            r"params.group_by must be a non-empty string, e.g. .region., not null",
        ),
        ({"measure": ""}, r"params.measure must be a non-empty string, e.g. .amount."),
        ({"colour": "red"}, r"unknown parameter 'colour'"),
        ({"top": 0}, r"params.top must be a whole number"),
        ({"rows": [{"region": "eu"}]}, r"params.rows\[0\].amount must be a number, not None"),
        ({"rows": [{"amount": 1}]}, r"params.rows\[0\] has no 'region'"),
        ({"rows": [3]}, r"params.rows\[0\] must be an object"),
    ],
)
def test_bad_params_fail_permanently_naming_them(change: dict[str, Any], message: str) -> None:
    run = run_handler(DailyReport, {**PARAMS, **change})
    assert isinstance(run.error, InvalidParamsError)  # a PermanentError: never retried
    assert run.logs == []  # the handler was not called
    with pytest.raises(PermanentError, match=message):
        run.raise_error()


def test_the_params_model_is_the_handlers_type_argument() -> None:
    assert DailyReport.params_model is ReportParams
    run = run_handler(DailyReport, PARAMS)
    assert run.context.args == ReportParams.model_validate(PARAMS)
