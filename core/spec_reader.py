"""Task specs read back from the store, each distinct shape validated once.

Restoring a million tasks from the store validated a million ``TaskSpec`` models, the
largest part of a restart. The specs of that many tasks mostly differ by ``name``,
``params`` and their schedule's ``start`` (tasks spread over an interval): the rest, the
*shape*, is validated once; every spec of that shape is then the validated one with
these three fields put in. Anything else (a one-shot, an ``end``, a name validation could
change) is validated in full, as before.

The store's rows were validated when they were written, so the result equals
``TaskSpec.model_validate(raw)``: ``tests/unit/test_spec_reader.py`` checks it.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import AwareDatetime, TypeAdapter

from taskstream.schemas import TaskSpec, recorded

__all__ = ["SpecReader"]

_OWN = ("name", "params", "schedule")
_START: TypeAdapter[AwareDatetime | None] = TypeAdapter(AwareDatetime | None)
_MAX_SHAPES = 10_000
"""Shapes remembered; past this, new shapes are validated in full (memory stays bounded)."""


class SpecReader:
    """``read(raw)`` is ``TaskSpec.model_validate(raw)`` for a stored, validated spec."""

    def __init__(self) -> None:
        self._shapes: dict[bytes, TaskSpec] = {}

    def read(self, raw: dict[str, Any]) -> TaskSpec:
        with recorded():  # stored: read as it was accepted
            return self._read(raw)

    def _read(self, raw: dict[str, Any]) -> TaskSpec:
        shape_key = self._key(raw)
        if shape_key is None:
            return TaskSpec.model_validate(raw)
        shape = self._shapes.get(shape_key)
        if shape is None:
            spec = TaskSpec.model_validate(raw)
            if len(self._shapes) < _MAX_SHAPES:
                self._shapes[shape_key] = spec
            return spec
        schedule = shape.schedule.model_copy(
            update={"start": _START.validate_python(raw["schedule"].get("start"))}
        )
        return shape.model_copy(
            update={"name": raw["name"], "params": dict(raw["params"]), "schedule": schedule}
        )

    @staticmethod
    def _key(raw: dict[str, Any]) -> bytes | None:
        """The spec without its own fields, or None if it must be validated in full."""
        name, params, schedule = raw.get("name"), raw.get("params"), raw.get("schedule")
        if not (
            isinstance(name, str)
            and name
            and name == name.strip()
            and len(name) <= 200  # TaskSpec.name's max_length
            and isinstance(params, dict)
            and all(isinstance(key, str) for key in params)
            and isinstance(schedule, dict)
            and schedule.get("at") is None
            and schedule.get("end") is None
        ):
            return None
        rest = {key: value for key, value in raw.items() if key not in _OWN}
        rest["schedule"] = {key: value for key, value in schedule.items() if key != "start"}
        try:
            return orjson.dumps(rest, option=orjson.OPT_SORT_KEYS)
        except TypeError:
            return None
