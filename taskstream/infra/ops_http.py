"""A small HTTP server for ``/health`` and ``/metrics`` of services without a web app."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import orjson
from prometheus_client import make_wsgi_app

__all__ = ["OpsServer"]

HealthCheck = Callable[[], tuple[bool, dict[str, Any]]]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class OpsServer:
    """Serves ``GET /health`` (JSON, 200 or 503) and ``GET /metrics`` (Prometheus)."""

    def __init__(self, host: str, port: int, health: HealthCheck) -> None:
        self._health = health
        self._metrics = make_wsgi_app()
        self._server: WSGIServer = make_server(host, port, self._app, handler_class=_QuietHandler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="ops-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return self._metrics(environ, start_response)  # type: ignore[no-any-return]
        if path == "/health":
            healthy, details = self._health()
            body = orjson.dumps({"status": "ok" if healthy else "failing", **details})
            start_response(
                "200 OK" if healthy else "503 Service Unavailable",
                [("Content-Type", "application/json")],
            )
            return [body]
        start_response("404 Not Found", [("Content-Type", "application/json")])
        return [
            orjson.dumps(
                {"error": "not_found", "message": f"no route {path}; try /health or /metrics"}
            )
        ]
