"""What a :class:`~taskstream.Client` raises: every failure is a :class:`ClientError`.

An answer of 4xx or 5xx becomes a :class:`RequestRefused` subclass picked by its status,
carrying the services' one error shape (:class:`~taskstream.schemas.api.ErrorBody`): its
``error`` code, its ``message`` (what was wrong and how to fix it) and ``errors`` (one per
bad field). A service that cannot be reached is :class:`ServiceUnreachable`.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import ValidationError

from taskstream.schemas.api import ErrorBody, FieldError
from taskstream.schemas.errors import TaskstreamError

__all__ = [
    "ArgumentError",
    "BadRequest",
    "ClientError",
    "Conflict",
    "NotFound",
    "PayloadTooLarge",
    "RequestRefused",
    "ServiceUnavailable",
    "ServiceUnreachable",
    "Unauthorized",
    "UnexpectedAnswer",
    "ValidationFailed",
    "refusal",
]


class ClientError(TaskstreamError):
    """A call of the client failed (the subclass says how)."""


class ArgumentError(ClientError, ValueError):
    """A call's arguments cannot make a request (the message says what to pass)."""


class ServiceUnreachable(ClientError, ConnectionError):
    """No answer: the service is not running at that URL, or did not answer in time.

    ``sent`` is False when the connection was refused: the request never left, so nothing
    was written.
    """

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class UnexpectedAnswer(ClientError):
    """An answer the client cannot read (not the API it expects: check the URL and versions)."""


class RequestRefused(ClientError):
    """The service answered with an error status; ``body`` is its error document."""

    def __init__(self, status: int, body: ErrorBody, request: str, service: str) -> None:
        self.status = status
        self.body = body
        self.request = request
        """``METHOD /path`` of the refused call."""
        self.service = service
        """``core`` or ``monitor``."""
        lines = [f"{request} ({service}) answered {status} {body.error}: {body.message}"]
        lines += [f"  {error.field}: {error.message}" for error in body.errors]
        super().__init__("\n".join(lines))

    @property
    def message_text(self) -> str:
        """The service's message: what was wrong and how to fix it."""
        return self.body.message

    @property
    def code(self) -> str:
        """The error code (``not_found``, ``validation_failed``, ``kafka_unavailable``...)."""
        return self.body.error

    @property
    def errors(self) -> list[FieldError]:
        """One entry per bad field of a refused body."""
        return self.body.errors

    def detail(self, name: str) -> Any:
        """A field some refusals add (``current_version`` on a 409, ``limit_bytes``...)."""
        return (self.body.model_extra or {}).get(name)


class BadRequest(RequestRefused):
    """400: the body is not JSON the service can read."""


class Unauthorized(RequestRefused):
    """401: the service needs a bearer token, or refused the one sent."""


class NotFound(RequestRefused):
    """404: no such task, execution, rule or route."""


class Conflict(RequestRefused):
    """409: a version is stale or the task's state forbids the change; read it again."""


class PayloadTooLarge(RequestRefused):
    """413: the body, or the event it makes, is over the limit (see ``limit_bytes``)."""


class ValidationFailed(RequestRefused):
    """422: the request is well-formed but wrong; ``errors`` names each field."""


class ServiceUnavailable(RequestRefused):
    """503: the service is starting, or Kafka is unreachable; retry later."""

    @property
    def retry_after(self) -> float | None:
        """Seconds the answer's ``Retry-After`` asks to wait, if it gave a number."""
        return self._retry_after

    _retry_after: float | None = None


_BY_STATUS: dict[int, type[RequestRefused]] = {
    400: BadRequest,
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: ValidationFailed,
    503: ServiceUnavailable,
}


def refusal(response: httpx.Response, service: str) -> RequestRefused:
    """The exception for an error answer of ``service`` (``core`` or ``monitor``)."""
    request = f"{response.request.method} {response.request.url.path}"
    try:
        body = ErrorBody.model_validate_json(response.content)
    except ValidationError:
        text = response.text.strip()[:200] or response.reason_phrase
        body = ErrorBody(error=f"http_{response.status_code}", message=text)
    if response.status_code == 401 and body.error == f"http_{response.status_code}":
        body = ErrorBody(error="unauthorized", message="send a bearer token (token=...)")
    kind = _BY_STATUS.get(response.status_code, RequestRefused)
    error = kind(response.status_code, body, request, service)
    if isinstance(error, ServiceUnavailable):
        error._retry_after = _seconds(response.headers.get("Retry-After"))
    return error


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: the backoff decides
