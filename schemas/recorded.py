"""Reading what is already recorded: the log and the store are read as they were written.

The grammar tightens over time (a cron the scheduler cannot evaluate, a duration past 100
years, a date past 9000 are refused since 0.x), but records accepted before are still on
the log. Decoding them must not fail: a record that no longer decodes would vanish from
every projection without a trace. Inside :func:`recorded`, the checks that are rules of
*admission* are not applied (the cron grammar, the duration and date bounds); the checks
of *structure* are (types, required fields, a duration that is a time span at all). What
then cannot be evaluated is found where it is evaluated (the scheduler, the store) and
quarantined there, visibly, instead of being dropped.

New input (the API) is read outside :func:`recorded`, so it gets every check.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from types import TracebackType

__all__ = ["reading_recorded", "recorded"]

_RECORDED: ContextVar[bool] = ContextVar("taskstream_reading_recorded", default=False)


class recorded:
    """Decode what the log or the store holds: admission rules are not re-applied.

    A class rather than a ``@contextmanager``: it wraps every decoded record (cheaper).
    """

    __slots__ = ("_token",)

    def __enter__(self) -> None:
        self._token: Token[bool] = _RECORDED.set(True)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        _RECORDED.reset(self._token)


def reading_recorded() -> bool:
    """True inside :func:`recorded`."""
    return _RECORDED.get()
