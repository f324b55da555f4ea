"""Bearer-token authentication and request size limits for the core API (ASGI).

Tokens come from ``TASKSTREAM_API_TOKENS`` (comma-separated) and/or the file named by
``TASKSTREAM_API_TOKENS_FILE`` (one per line, ``#`` comments). With tokens configured,
every ``/api/`` request needs ``Authorization: Bearer <token>``; ``/health`` and
``/metrics`` stay open for probes. A core bound to a non-loopback address refuses to
start without tokens unless ``TASKSTREAM_API_INSECURE=true`` says that is intended.
The checks themselves are shared with the monitor: :mod:`taskstream.infra.security`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from taskstream.core.settings import CoreSettings
from taskstream.infra.security import (
    Exposure,
    InsecureConfigurationError,
    TokenChecker,
    check_exposure,
    load_tokens,
)
from taskstream.schemas.errors import TaskstreamError

__all__ = [
    "SETTINGS_PREFIX",
    "BodySizeLimit",
    "InsecureConfigurationError",
    "TokenAuth",
    "check_exposure",
    "core_exposure",
    "load_tokens",
]

SETTINGS_PREFIX = "TASKSTREAM_API"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def core_exposure(settings: CoreSettings) -> Exposure:
    """The core API's bind address and tokens, for :func:`check_exposure`."""
    return Exposure(
        service="the core API",
        prefix=SETTINGS_PREFIX,
        host=settings.api_host,
        tokens=tuple(load_tokens(settings.api_tokens, settings.api_tokens_file, SETTINGS_PREFIX)),
        insecure=settings.api_insecure,
    )


async def _reply(
    send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    payload = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class TokenAuth:
    """ASGI middleware: ``/api/`` needs a valid bearer token when tokens are configured."""

    def __init__(self, app: ASGIApp, tokens: list[str]) -> None:
        self.app = app
        self._checker = TokenChecker(tokens, SETTINGS_PREFIX)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or not scope["path"].startswith("/api/")
            or self._checker.allows(dict(scope["headers"]).get(b"authorization"))
        ):
            await self.app(scope, receive, send)
            return
        await _reply(
            send,
            401,
            self._checker.refusal(),
            [(b"www-authenticate", TokenChecker.CHALLENGE.encode())],
        )


class BodySizeLimit:
    """ASGI middleware: bodies over ``limit`` bytes get 413, whether declared or streamed."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._too_large(send)
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        await _reply(
            send,
            413,
            {
                "error": "payload_too_large",
                "message": f"the request body is over {self.limit} bytes "
                "(TASKSTREAM_API_MAX_BODY_BYTES); send less, e.g. smaller params",
            },
        )


class _TooLarge(TaskstreamError):
    pass
