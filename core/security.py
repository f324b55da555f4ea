"""Bearer-token authentication and request size limits for the core API.

Tokens come from ``TASKSTREAM_API_TOKENS`` (comma-separated) and/or the file named by
``TASKSTREAM_API_TOKENS_FILE`` (one per line, ``#`` comments). With tokens configured,
every ``/api/`` request needs ``Authorization: Bearer <token>``; ``/health`` and
``/metrics`` stay open for probes. A core bound to a non-loopback address refuses to
start without tokens unless ``TASKSTREAM_API_INSECURE=true`` says that is intended.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import orjson

__all__ = [
    "BodySizeLimit",
    "InsecureConfigurationError",
    "TokenAuth",
    "check_exposure",
    "load_tokens",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class InsecureConfigurationError(RuntimeError):
    """The API would be reachable from other machines without authentication."""


def load_tokens(inline: list[str], file: Path | None) -> list[str]:
    tokens = [token.strip() for token in inline if token.strip()]
    if file is not None:
        try:
            lines = file.read_text().splitlines()
        except OSError as exc:
            raise InsecureConfigurationError(
                f"cannot read TASKSTREAM_API_TOKENS_FILE {file}: {exc.strerror}"
            ) from exc
        tokens += [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return tokens


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, tokens: list[str], insecure: bool) -> None:
    """Refuse an unauthenticated API on an address other machines can reach."""
    if tokens or insecure or _is_loopback(host):
        return
    raise InsecureConfigurationError(
        f"the core API would listen on {host} without authentication. Set "
        "TASKSTREAM_API_TOKENS (or TASKSTREAM_API_TOKENS_FILE), bind to 127.0.0.1 with "
        "TASKSTREAM_API_HOST, or set TASKSTREAM_API_INSECURE=true if that is really intended"
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
        self._tokens = [token.encode() for token in tokens]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._tokens or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        if scheme.lower() == b"bearer" and any(
            hmac.compare_digest(token.strip(), known) for known in self._tokens
        ):
            await self.app(scope, receive, send)
            return
        await _reply(
            send,
            401,
            {
                "error": "unauthorized",
                "message": "missing or invalid bearer token: send 'Authorization: Bearer <token>' "
                "with a token from TASKSTREAM_API_TOKENS",
            },
            [(b"www-authenticate", b'Bearer realm="taskstream"')],
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


class _TooLarge(Exception):
    pass
