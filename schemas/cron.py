"""The cron grammar: what ``cronsim`` (the evaluator that fires the slots) can evaluate.

Validation and evaluation read an expression through the one function here,
:func:`parse_cron`, so an expression the API accepts is one the scheduler can fire:
both are ``cronsim``. An expression has 5 fields (``min hour day month weekday``) or 6
with seconds first (``sec min hour day month weekday``); the seconds field is read by
``cronsim`` too and expanded inside each matching minute (see :mod:`taskstream.schemas.schedules`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from cronsim import CronSim, CronSimError

from taskstream.schemas.errors import CronError

__all__ = ["CronExpression", "parse_cron"]

_LAYOUT = {5: "min hour day month weekday", 6: "sec min hour day month weekday"}
_PROBE = datetime(2000, 1, 1, tzinfo=UTC)
"""Any instant: cronsim parses an expression when it is given a start."""


@dataclass(frozen=True, slots=True)
class CronExpression:
    minutes: str
    """The five minute-level fields, for cronsim."""
    seconds: tuple[int, ...]
    """The seconds of each matching minute at which a slot falls, ascending."""
    fixed_time: bool
    """Minute and hour fields without ``*``: runs once in a repeated hour."""


@lru_cache(maxsize=4096)  # an error is raised again each time, never cached
def parse_cron(expression: str) -> CronExpression:
    """The expression as the scheduler evaluates it; raise :class:`CronError` if it cannot."""
    fields = expression.split()
    expression = " ".join(fields)
    if len(fields) not in _LAYOUT:
        raise CronError(
            f"cron expression {expression!r} has {len(fields)} fields: use 5 fields "
            f"'{_LAYOUT[5]}' or 6 with seconds first '{_LAYOUT[6]}'"
        )
    if any(not field.isascii() for field in fields):
        raise CronError(f"invalid cron expression {expression!r}: use ASCII characters only")
    try:
        parsed = CronSim(expression, _PROBE)
    except CronSimError as exc:
        raise CronError(_explain(expression, fields, str(exc))) from None
    except (ValueError, IndexError, OverflowError) as exc:  # cronsim's own parsing slips
        raise CronError(
            f"invalid cron expression {expression!r}: {exc} (fields: {_LAYOUT[len(fields)]})"
        ) from None
    minutes = fields[-5:]
    fixed = not (minutes[0].startswith("*") or minutes[1].startswith("*"))
    return CronExpression(" ".join(minutes), tuple(sorted(parsed.seconds)), fixed)


def _explain(expression: str, fields: list[str], reason: str) -> str:
    """cronsim's reason, with "never fires" when the day and month fields never meet."""
    layout = _LAYOUT[len(fields)]
    if reason.endswith("day-of-month"):
        any_month = [*fields[:-2], "*", fields[-1]]
        try:
            CronSim(" ".join(any_month), _PROBE)
        except CronSimError:
            pass
        else:
            return (
                f"cron expression {expression!r} never fires: no month in "
                f"{fields[-2]!r} has day {fields[-3]!r} (fields: {layout})"
            )
    return f"invalid cron expression {expression!r}: {reason.lower()} (fields: {layout})"
