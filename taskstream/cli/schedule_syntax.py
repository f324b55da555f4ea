"""The SCHEDULE argument of ``taskstream tasks add``: a short form for the API's ``schedule``.

30s, 15m, 1h30m, "every 30s", "@every 30s"   an interval, first run one interval from now
"*/5 * * * *", "0 */5 * * * *"                cron: 5 fields, or 6 with seconds first
@hourly, @daily, @weekly, @monthly, @yearly   cron shorthands
"at 2030-01-01T09:00:00+01:00"               one shot (the time needs an offset or Z)
"""

from __future__ import annotations

from datetime import datetime

from taskstream.schemas import DurationError, parse_duration
from taskstream.schemas.errors import TaskstreamError

__all__ = ["ScheduleArgumentError", "parse_schedule"]

_CRON_SHORTHANDS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_SCHEDULE_FORMS = (
    "write a duration ('30s', '15m', '1h30m', 'every 30s'), a cron expression of 5 fields "
    "('*/5 * * * *') or 6 with seconds first ('*/5 * * * * *'), or 'at' and an ISO-8601 "
    "time with an offset ('at 2030-01-01T09:00:00+01:00')"
)


class ScheduleArgumentError(TaskstreamError, ValueError):
    """SCHEDULE is none of the forms ``taskstream tasks add`` understands."""


def parse_schedule(text: str) -> dict[str, str]:
    """Turn a SCHEDULE argument into the API's ``schedule`` object (without timezone).

    Durations are sent as written (the API parses them); cron fields are only counted
    here, the API validates them and names ``schedule.cron`` when they are wrong.
    """
    words = text.split()
    if not words:
        raise ScheduleArgumentError(f"empty schedule: {_SCHEDULE_FORMS}")
    head, rest = words[0].lower(), " ".join(words[1:])
    if head in ("every", "@every"):
        return {"every": _interval(rest, text)}
    if head == "at":
        return {"at": _instant(rest)}
    if head in _CRON_SHORTHANDS and len(words) == 1:
        return {"cron": _CRON_SHORTHANDS[head]}
    if len(words) in (5, 6):
        return {"cron": " ".join(words)}
    if _is_duration(text):
        return {"every": text.strip()}
    if _is_datetime(text):
        return {"at": _instant(text)}
    raise ScheduleArgumentError(f"cannot read schedule {text!r}: {_SCHEDULE_FORMS}")


def _is_duration(text: str) -> bool:
    try:
        parse_duration(text)
    except DurationError:
        return False
    return True


def _interval(duration: str, schedule: str) -> str:
    if not duration:
        raise ScheduleArgumentError(f"{schedule!r} lacks its interval: write it like 'every 30s'")
    if not _is_duration(duration):
        raise ScheduleArgumentError(
            f"invalid interval {duration!r} in {schedule!r}: write it like '30s', '15m', "
            "'1h30m' or '250ms' (units ms, s, m, h, d)"
        )
    return duration


def _is_datetime(text: str) -> bool:
    try:
        datetime.fromisoformat(text.strip())
    except ValueError:
        return False
    return True


def _instant(text: str) -> str:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ScheduleArgumentError(
            f"invalid time {text!r}: write an ISO-8601 time with an offset, "
            "like 'at 2030-01-01T09:00:00+01:00' or 'at 2030-01-01T08:00:00Z'"
        ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ScheduleArgumentError(
            f"the time {text!r} has no offset: add one, like '{moment.isoformat()}+00:00' "
            "or a trailing 'Z' for UTC"
        )
    return moment.isoformat()
