"""The public Python client of taskstream's REST APIs (``taskstream.Client``).

:class:`Client` and :class:`AsyncClient` send the same calls (:mod:`.operations`) to the
core and the monitor, return the schema models (:mod:`taskstream.schemas.api`,
:mod:`taskstream.schemas.monitor_api`) and raise :mod:`.errors`. Calls that are safe to
repeat are sent again after a 503 or a refused connection (:mod:`.retrying`).
"""

from taskstream.client.aio import AsyncClient
from taskstream.client.connection import Connection
from taskstream.client.errors import (
    ArgumentError,
    BadRequest,
    ClientError,
    Conflict,
    NotFound,
    PayloadTooLarge,
    RequestRefused,
    ServiceUnavailable,
    ServiceUnreachable,
    Unauthorized,
    UnexpectedAnswer,
    ValidationFailed,
)
from taskstream.client.sync import Client

__all__ = [
    "ArgumentError",
    "AsyncClient",
    "BadRequest",
    "Client",
    "ClientError",
    "Conflict",
    "Connection",
    "NotFound",
    "PayloadTooLarge",
    "RequestRefused",
    "ServiceUnavailable",
    "ServiceUnreachable",
    "Unauthorized",
    "UnexpectedAnswer",
    "ValidationFailed",
]
