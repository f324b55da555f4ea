"""The monitor's bearer tokens and bind address, with the checks the core uses.

With ``TASKSTREAM_MONITOR_TOKENS`` (or ``_TOKENS_FILE``) set, every request needs
``Authorization: Bearer <token>`` except the probes (``/health``, ``/ready``,
``/metrics``), the API's description (``/openapi.json``) and the dashboard's static
files (the page asks for the token and sends it with its API calls). Open paths are
listed, everything else is closed: a route added later is protected without anyone
remembering to. A monitor bound to a non-loopback address refuses to start without
tokens unless ``TASKSTREAM_MONITOR_INSECURE=true``.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from taskstream.infra.security import Exposure, TokenChecker, load_tokens
from taskstream.monitor.settings import MonitorSettings

__all__ = ["OPEN_PATHS", "OPEN_PREFIXES", "SETTINGS_PREFIX", "auth_middleware", "monitor_exposure"]

SETTINGS_PREFIX = "TASKSTREAM_MONITOR"
OPEN_PATHS = frozenset(
    {"/", "/health", "/ready", "/metrics", "/dashboard", "/openapi.json", "/docs"}
)
OPEN_PREFIXES = ("/dashboard/", "/docs/assets/")


def _tokens(settings: MonitorSettings) -> list[str]:
    return load_tokens(settings.monitor_tokens, settings.monitor_tokens_file, SETTINGS_PREFIX)


def monitor_exposure(settings: MonitorSettings) -> Exposure:
    """The monitor's bind address and tokens, for :func:`check_exposure`."""
    return Exposure(
        service="the monitor",
        prefix=SETTINGS_PREFIX,
        host=settings.monitor_host,
        tokens=tuple(_tokens(settings)),
        insecure=settings.monitor_insecure,
    )


def auth_middleware(settings: MonitorSettings) -> Middleware:
    """An aiohttp middleware: 401 (nothing done) for a closed path without a valid token."""
    checker = TokenChecker(_tokens(settings), SETTINGS_PREFIX)

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if (
            not checker.enabled
            or path in OPEN_PATHS
            or path.startswith(OPEN_PREFIXES)
            or checker.allows(request.headers.get("Authorization"))
        ):
            return await handler(request)
        return web.json_response(
            checker.refusal(),
            status=401,
            headers={"WWW-Authenticate": TokenChecker.CHALLENGE, "Cache-Control": "no-store"},
        )

    return authenticate
