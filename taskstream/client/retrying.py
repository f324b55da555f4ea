"""When a call is sent again (tenacity): after a 503, or a connection that was refused.

A refused connection sent nothing, so every call may go again. A 503 or a timeout may
follow a write, so only the calls that are safe to repeat go again (``Call.retry``): not a
create, a batch or a run, which could be written twice.
"""

from __future__ import annotations

from typing import Any

from tenacity import RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_exponential_jitter

from taskstream.client.errors import ServiceUnavailable, ServiceUnreachable

__all__ = ["retry_policy"]

_MOST_WAIT = 30.0
_BACKOFF = wait_exponential_jitter(multiplier=0.5, max=8.0, jitter=0.5)


def _wait(state: RetryCallState) -> float:
    """The answer's ``Retry-After`` if it gave one (at most 30 s), else a backoff."""
    outcome = state.outcome
    error = outcome.exception() if outcome is not None else None
    if isinstance(error, ServiceUnavailable) and error.retry_after is not None:
        return min(error.retry_after, _MOST_WAIT)
    return float(_BACKOFF(state))


def retry_policy(*, repeatable: bool, retries: int) -> dict[str, Any]:
    """The keyword arguments of ``tenacity.Retrying`` (or ``AsyncRetrying``) for a call."""

    def worth_another_try(error: BaseException) -> bool:
        if isinstance(error, ServiceUnreachable):
            return repeatable or not error.sent
        return repeatable and isinstance(error, ServiceUnavailable)

    return {
        "retry": retry_if_exception(worth_another_try),
        "stop": stop_after_attempt(retries + 1),
        "wait": _wait,
        "reraise": True,
    }
