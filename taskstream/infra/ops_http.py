"""A small HTTP server for ``/health``, ``/ready`` and ``/metrics`` of services without a
web app; the health answers come from the service's :class:`HealthBoard`."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import orjson
from prometheus_client import make_wsgi_app

from taskstream.infra.health import HealthBoard, health_answer, ready_answer

__all__ = ["OpsServer"]

Details = Callable[[], dict[str, Any]]
"""What the service adds to its health answers (its id, queues, in-flight work)."""

_REASONS = {200: "200 OK", 503: "503 Service Unavailable"}


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class OpsServer:
    """Serves ``GET /health`` and ``/ready`` (JSON, 200 or 503) and ``GET /metrics``."""

    def __init__(self, host: str, port: int, board: HealthBoard, details: Details) -> None:
        self._board = board
        self._details = details
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
        if path in ("/health", "/ready"):
            answer = health_answer if path == "/health" else ready_answer
            status, body = answer(self._board.snapshot(), **self._details())
            start_response(_REASONS[status], [("Content-Type", "application/json")])
            return [orjson.dumps(body)]
        start_response("404 Not Found", [("Content-Type", "application/json")])
        return [
            orjson.dumps(
                {
                    "error": "not_found",
                    "message": f"no route {path}; try /health, /ready or /metrics",
                }
            )
        ]
