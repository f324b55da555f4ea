"""Real receivers for alert notices, started by the tests: an SMTP server (aiosmtpd), an
HTTP server for the webhook, and a reader of the ``alerts`` topic (no tests here)."""

from __future__ import annotations

import email
import email.policy
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from taskstream.infra.processes import free_port
from taskstream.schemas import AlertNotification


class Mailbox:
    """An SMTP server on a free port; :meth:`notices` are the alerts it received.

    With ``credentials`` it requires AUTH (LOGIN or PLAIN) with that user and password.
    """

    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        self.port = free_port()
        self._lock = threading.Lock()
        self._messages: list[email.message.EmailMessage] = []
        self.logins: list[tuple[str, bool]] = []
        self._credentials = credentials
        auth: dict[str, Any] = {}
        if credentials is not None:
            auth = {"authenticator": self._authenticate, "auth_require_tls": False}
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port, **auth)

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        given = (data.login.decode(), data.password.decode())
        with self._lock:
            self.logins.append((given[0], given == self._credentials))
        return AuthResult(success=given == self._credentials, handled=False)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self._messages.append(message)
        return "250 Message accepted for delivery"

    def start(self) -> Mailbox:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    @property
    def messages(self) -> list[email.message.EmailMessage]:
        with self._lock:
            return list(self._messages)

    def notices(self) -> list[AlertNotification]:
        found = []
        for message in self.messages:
            body = message.get_content()
            document = body[body.index("{") :]  # the summary line, then the JSON document
            found.append(AlertNotification.model_validate(json.loads(document)))
        return found


class Webhook:
    """An HTTP server on a free port collecting POSTed notices.

    The first ``fail_first`` requests are answered 503, to make the monitor retry.
    """

    def __init__(self, fail_first: int = 0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hooks/alerts"
        self.requests = 0
        self._fail = fail_first
        self._lock = threading.Lock()
        self._bodies: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.requests += 1
                    failing = receiver._fail > 0
                    if failing:
                        receiver._fail -= 1
                    else:
                        receiver._bodies.append(json.loads(body))
                self.send_response(503 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> Webhook:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def notices(self) -> list[AlertNotification]:
        with self._lock:
            return [AlertNotification.model_validate(body) for body in self._bodies]


class AlertsTopic:
    """The ``alerts`` topic read from its beginning, a bit more at every :meth:`notices`."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"alerts-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
            }
        )
        self._consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        self.records: list[tuple[bytes | None, AlertNotification]] = []

    def notices(self) -> list[AlertNotification]:
        for message in self._consumer.consume(num_messages=500, timeout=0.2):
            if message.error() is None:
                value = message.value()
                assert value is not None
                self.records.append((message.key(), AlertNotification.decode(value)))
        return [notice for _, notice in self.records]

    def close(self) -> None:
        self._consumer.close()
