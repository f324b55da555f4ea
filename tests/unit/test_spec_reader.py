"""Specs read back from the store equal a full validation, shape cache or not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from taskstream.core.spec_reader import SpecReader
from taskstream.schemas import RetryPolicy, Schedule, TaskSpec

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def _stored(spec: TaskSpec) -> dict[str, Any]:
    return spec.model_dump(mode="json")  # what TaskRow.spec holds


SPECS = [
    TaskSpec(name="a", handler="noop", schedule=Schedule(every=timedelta(hours=1), start=T0)),
    TaskSpec(
        name="b",
        handler="noop",
        params={"x": [1, {"y": None}]},
        schedule=Schedule(every=timedelta(hours=1), start=T0 + timedelta(microseconds=1)),
    ),
    TaskSpec(
        name="c",
        handler="noop",
        schedule=Schedule(
            every=timedelta(hours=1),
            start=datetime(2030, 1, 1, 9, tzinfo=timezone(timedelta(hours=9))),
        ),
    ),
    TaskSpec(name="d", handler="noop", schedule=Schedule(every=timedelta(hours=1))),
    TaskSpec(
        name="e",
        handler="other",
        queue="q",
        retry=RetryPolicy(max_attempts=3),
        schedule=Schedule(cron="*/5 * * * *", timezone="Europe/Berlin", start=T0),
    ),
    TaskSpec(name="f", handler="noop", schedule=Schedule(at=T0)),
    TaskSpec(
        name="g",
        handler="noop",
        schedule=Schedule(every=timedelta(hours=1), start=T0, end=T0 + timedelta(days=1)),
    ),
]


@pytest.mark.parametrize("order", [SPECS, SPECS[::-1], SPECS + SPECS])
def test_every_spec_equals_its_full_validation(order: list[TaskSpec]) -> None:
    reader = SpecReader()
    for spec in order:
        stored = _stored(spec)
        read = reader.read(stored)
        assert read == TaskSpec.model_validate(stored) == spec
        start = read.schedule.start
        assert (start.utcoffset() if start else None) == (
            spec.schedule.start.utcoffset() if spec.schedule.start else None
        )


def test_specs_of_one_shape_share_what_is_not_their_own() -> None:
    reader = SpecReader()
    first, second = (
        reader.read(_stored(spec.model_copy(update={"name": f"n{n}"})))
        for n, spec in enumerate([SPECS[0], SPECS[1]])
    )
    assert first.retry is second.retry
    assert first.params is not second.params
    assert (first.name, second.name) == ("n0", "n1")
