"""The ``http`` handler: call a webhook and succeed on the status codes you expect.

Params::

    {"url": "https://example.com/hook",      required; http or https
     "method": "POST",                        default POST
     "headers": {"Authorization": "..."},     strings only
     "json": {...}  or  "body": "text",       at most one of the two
     "timeout": "10s",                        default: the time left before the task's timeout
     "success_codes": [200, "2xx", "300-304"]} default ["2xx"]

The request carries ``X-Taskstream-Execution-Id`` (the same on a re-delivery, so the
receiver can deduplicate) unless ``headers`` sets it. Redirects are not followed.

Output: ``{"status": 200, "headers": {...}, "body": "..."}`` with the response headers
in :data:`KEPT_HEADERS` and the body as text, cut after 64 KiB.

Failures: 5xx and 429 raise :class:`~taskstream.handlers.base.RetryableError` (with ``delay`` from
``Retry-After``), so the task's retry policy applies; any other unexpected status raises
:class:`~taskstream.handlers.base.PermanentError`. A connection error or a server that does not
answer within ``timeout`` is retryable; running into the task's own deadline raises
``TimeoutError``, which the executor reports as a timeout.
"""

from __future__ import annotations

import email.utils
import re
import time
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Self

import httpx
from pydantic import BeforeValidator, Field, WithJsonSchema, field_validator, model_validator

from taskstream.handlers.base import (
    PermanentError,
    RetryableError,
    TaskContext,
    TaskHandler,
    TaskResult,
)
from taskstream.handlers.params import Duration, HandlerParams, Invalid, time_left

__all__ = ["KEPT_HEADERS", "MAX_BODY_BYTES", "HttpHandler", "HttpParams", "parse_success_codes"]

MAX_BODY_BYTES = 64 * 1024
"""Bytes of the response body kept in the output."""
KEPT_HEADERS = (
    "content-type",
    "content-length",
    "location",
    "etag",
    "last-modified",
    "retry-after",
    "x-request-id",
)
"""Response headers copied to the output, when present."""

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_CODE_CLASS = re.compile(r"^([1-5])xx$")
_CODE_RANGE = re.compile(r"^(\d{3})-(\d{3})$")
_ERROR_SNIPPET = 300


def parse_success_codes(value: Any) -> frozenset[int]:
    """The status codes ``value`` names: ints, ``"2xx"`` classes, ``"200-299"`` ranges."""
    if value is None:
        return frozenset(range(200, 300))
    if isinstance(value, frozenset):  # parsed already
        return value
    example = '[200, 201] or ["2xx", 304]'
    if not isinstance(value, list) or not value:
        raise Invalid(f"must be a non-empty list such as {example}")
    codes: set[int] = set()
    for item in value:
        if isinstance(item, int) and not isinstance(item, bool) and 100 <= item <= 599:
            codes.add(item)
        elif isinstance(item, str) and (match := _CODE_CLASS.match(item.strip().lower())):
            first = int(match.group(1)) * 100
            codes.update(range(first, first + 100))
        elif isinstance(item, str) and (match := _CODE_RANGE.match(item.strip())):
            low, high = int(match.group(1)), int(match.group(2))
            if not 100 <= low <= high <= 599:
                raise Invalid(f"has an empty or invalid range {item!r}")
            codes.update(range(low, high + 1))
        elif isinstance(item, str) and item.strip().isdigit() and 100 <= int(item) <= 599:
            codes.add(int(item))
        else:
            raise Invalid(
                f"has {item!r}, which is not a status code (100-599), a class such as "
                f'"2xx" or a range such as "200-299"'
            )
    return frozenset(codes)


SuccessCodes = Annotated[
    frozenset[int],
    BeforeValidator(parse_success_codes),
    WithJsonSchema(
        {
            "type": "array",
            "minItems": 1,
            "items": {
                "anyOf": [
                    {"type": "integer", "minimum": 100, "maximum": 599},
                    {"type": "string", "pattern": r"^([1-5]xx|\d{3}|\d{3}-\d{3})$"},
                ]
            },
            "default": ["2xx"],
            "description": 'status codes, classes ("2xx") and ranges ("200-299")',
        }
    ),
]


class HttpParams(HandlerParams):
    """The ``http`` handler's params."""

    url: str = Field(min_length=1, examples=["https://example.com/hook"])
    """Where to send the request: an absolute http:// or https:// URL."""
    method: str = Field("POST", examples=["GET"])
    """One of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS (any case)."""
    headers: dict[str, str] = Field(default_factory=dict, examples=[{"Authorization": "..."}])
    """Request headers; ``X-Taskstream-Execution-Id`` is added unless set here."""
    json_body: Any = Field(None, alias="json", examples=[{"report": "sales"}])
    """A JSON body (excludes ``body``)."""
    body: str | None = None
    """A text body (excludes ``json``)."""
    timeout: Duration | None = None
    """How long to wait for the answer; default: the time left before the task's timeout."""
    success_codes: SuccessCodes = Field(default_factory=lambda: frozenset(range(200, 300)))
    """The answers that mean success (default ``["2xx"]``)."""

    @field_validator("url")
    @classmethod
    def _absolute(cls, url: str) -> str:
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise Invalid(f"is not a valid URL: {exc}") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise Invalid(f"must be an absolute http:// or https:// URL, not {url!r}")
        return url

    @field_validator("method")
    @classmethod
    def _known_method(cls, method: str) -> str:
        upper = method.upper() or "POST"
        if upper not in _METHODS:
            raise Invalid(f"must be one of {', '.join(sorted(_METHODS))}")
        return upper

    @model_validator(mode="after")
    def _one_body(self) -> Self:
        if {"json_body", "body"} <= self.model_fields_set:
            raise Invalid("params.json and params.body exclude each other: send one of them")
        return self


class HttpHandler(TaskHandler[HttpParams]):
    """Calls ``params.url`` with httpx and returns the status, headers and body."""

    name: ClassVar[str] = "http"

    def run(self, ctx: TaskContext[HttpParams]) -> TaskResult:
        request = ctx.args
        left = time_left(ctx)
        if left <= 0:
            raise TimeoutError("http handler: the task's deadline passed before the call")
        timeout = min(request.timeout, left) if request.timeout is not None else left
        cut_by_deadline = request.timeout is None or left <= request.timeout
        headers = {"X-Taskstream-Execution-Id": ctx.execution_id, **request.headers}
        started = time.monotonic()
        try:
            with (
                httpx.Client(timeout=timeout) as client,
                client.stream(
                    request.method,
                    request.url,
                    headers=headers,
                    json=request.json_body,
                    content=request.body,
                ) as response,
            ):
                body = _read_capped(response, started + timeout, ctx)
        except httpx.TimeoutException as exc:
            waited = time.monotonic() - started
            if cut_by_deadline:
                raise TimeoutError(
                    f"{request.method} {request.url} did not answer before the task's timeout "
                    f"({waited:.1f}s): raise the task's timeout if the server is slow"
                ) from exc
            raise RetryableError(
                f"{request.method} {request.url} did not answer within params.timeout "
                f"({request.timeout:g}s): {type(exc).__name__}"
            ) from exc
        except httpx.TransportError as exc:
            raise RetryableError(
                f"{request.method} {request.url} failed: {type(exc).__name__}: {exc}"
            ) from exc
        ctx.logger.info("%s %s -> %d", request.method, request.url, response.status_code)
        if response.status_code not in request.success_codes:
            raise _status_error(request, response, body)
        return TaskResult.success(
            {
                "status": response.status_code,
                "headers": {k: response.headers[k] for k in KEPT_HEADERS if k in response.headers},
                "body": body,
            }
        )


def _read_capped(response: httpx.Response, deadline: float, ctx: TaskContext[Any]) -> str:
    """The body as text, at most :data:`MAX_BODY_BYTES`; stop at ``deadline`` or on cancel."""
    kept = bytearray()
    truncated = False
    for chunk in response.iter_bytes():
        if ctx.cancelled.is_set():
            raise RetryableError(f"{response.request.method} {response.request.url}: cancelled")
        if time.monotonic() > deadline:
            raise httpx.ReadTimeout("the response body took too long", request=response.request)
        kept += chunk
        if len(kept) > MAX_BODY_BYTES:
            del kept[MAX_BODY_BYTES:]
            truncated = True
            break
    text = kept.decode(response.encoding or "utf-8", errors="replace")
    if truncated:
        text += f"\n[... truncated after {MAX_BODY_BYTES} bytes]"
    return text


def _status_error(request: HttpParams, response: httpx.Response, body: str) -> Exception:
    status = response.status_code
    snippet = body[:_ERROR_SNIPPET] + ("..." if len(body) > _ERROR_SNIPPET else "")
    what = f"{request.method} {request.url} answered {status} {response.reason_phrase}"
    if snippet:
        what += f": {snippet}"
    if status >= 500 or status == 429:
        return RetryableError(what, delay=_retry_after(response.headers.get("retry-after")))
    return PermanentError(
        f"{what} (if {status} means success, add it to params.success_codes)"
        if status < 400
        else what
    )


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
