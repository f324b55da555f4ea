"""The built-in handlers doing real I/O: HTTP to a local server, child processes, Kafka."""

from __future__ import annotations

import json
import shutil
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic  # confluent_kafka.admin does not re-export it

from taskstream.handlers import HandlerEnvironment, PermanentError, RetryableError
from taskstream.handlers.http import HttpHandler
from taskstream.handlers.kafka import (
    EXECUTION_ID_HEADER,
    TASK_ID_HEADER,
    KafkaHandler,
    close_producers,
)
from taskstream.handlers.shell import DISABLED_MESSAGE, ShellHandler
from taskstream.handlers.testing import HandlerRun, run_handler
from tests.support import eventually

# the child's PATH is /usr/bin:/bin: use python3 from there, else this interpreter
PYTHON = "python3" if shutil.which("python3", path="/usr/bin:/bin") else sys.executable


# --- http ------------------------------------------------------------------------------


@dataclass
class WebServer:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def web() -> Iterator[WebServer]:
    """A real HTTP server on 127.0.0.1 whose paths answer as their names say."""
    server_state: WebServer

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            server_state.requests.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": dict(self.headers),
                    "body": body,
                }
            )
            if self.path == "/slow":
                server_state.release.wait(10)  # answers only when the test is over
            status, payload, extra = {
                "/ok": (200, json.dumps({"ok": True}), {"ETag": '"v1"', "X-Secret": "no"}),
                "/created": (201, "made", {"Location": "/things/1"}),
                "/boom": (500, "database down", {}),
                "/busy": (503, "busy", {"Retry-After": "7"}),
                "/throttled": (429, "slow down", {"Retry-After": "2"}),
                "/missing": (404, "no such hook", {}),
                "/big": (200, "x" * 100_000, {}),
                "/slow": (200, "late", {}),
            }.get(self.path, (400, "unknown path", {}))
            data = payload.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server_state = WebServer(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server_state
    finally:
        server_state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_http_success_returns_status_selected_headers_and_body(web: WebServer) -> None:
    run = run_handler(
        HttpHandler,
        {"url": f"{web.url}/ok", "json": {"report": "sales"}, "headers": {"X-Token": "t"}},
        execution_id="exec-42",
    )
    run.raise_error()
    assert run.output["status"] == 200
    assert json.loads(run.output["body"]) == {"ok": True}
    assert run.output["headers"]["etag"] == '"v1"'
    assert run.output["headers"]["content-type"].startswith("text/plain")
    assert "x-secret" not in run.output["headers"]
    (request,) = web.requests
    assert request["method"] == "POST"
    assert json.loads(request["body"]) == {"report": "sales"}
    assert request["headers"]["X-Token"] == "t"
    assert request["headers"]["X-Taskstream-Execution-Id"] == "exec-42"


def test_http_method_body_and_success_codes(web: WebServer) -> None:
    run = run_handler(
        HttpHandler,
        {"url": f"{web.url}/created", "method": "put", "body": "raw", "success_codes": [201]},
    )
    run.raise_error()
    assert run.output["status"] == 201
    assert run.output["headers"]["location"] == "/things/1"
    assert web.requests[0]["method"] == "PUT" and web.requests[0]["body"] == "raw"
    only_200 = run_handler(HttpHandler, {"url": f"{web.url}/created", "success_codes": [200]})
    assert isinstance(only_200.error, PermanentError)
    assert "answered 201" in str(only_200.error)
    missing_ok = run_handler(HttpHandler, {"url": f"{web.url}/missing", "success_codes": ["4xx"]})
    assert missing_ok.output["status"] == 404


def test_http_server_errors_are_retryable(web: WebServer) -> None:
    run = run_handler(HttpHandler, {"url": f"{web.url}/boom"})
    assert isinstance(run.error, RetryableError)
    assert "answered 500 Internal Server Error: database down" in str(run.error)
    assert run.error.delay is None
    busy = run_handler(HttpHandler, {"url": f"{web.url}/busy"})
    assert isinstance(busy.error, RetryableError) and busy.error.delay == 7.0
    throttled = run_handler(HttpHandler, {"url": f"{web.url}/throttled"})
    assert isinstance(throttled.error, RetryableError) and throttled.error.delay == 2.0


def test_http_client_errors_are_permanent(web: WebServer) -> None:
    run = run_handler(HttpHandler, {"url": f"{web.url}/missing", "method": "GET"})
    assert isinstance(run.error, PermanentError)
    assert "GET http://127.0.0.1" in str(run.error) and "404 Not Found: no such hook" in str(
        run.error
    )


def test_http_body_is_capped(web: WebServer) -> None:
    run = run_handler(HttpHandler, {"url": f"{web.url}/big"})
    body = run.output["body"]
    assert body.startswith("x" * 65_536)
    assert body.endswith("[... truncated after 65536 bytes]")


def test_http_timeout_of_params_is_retryable(web: WebServer) -> None:
    run = run_handler(HttpHandler, {"url": f"{web.url}/slow", "timeout": "300ms"})
    assert isinstance(run.error, RetryableError)
    assert "did not answer within params.timeout (0.3s)" in str(run.error)
    assert run.duration < 5


def test_http_running_into_the_task_deadline_is_a_timeout(web: WebServer) -> None:
    run = run_handler(HttpHandler, {"url": f"{web.url}/slow"}, timeout=0.5)
    assert isinstance(run.error, TimeoutError)
    assert run.duration < 5


def test_http_connection_refused_is_retryable() -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on once it is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    run = run_handler(HttpHandler, {"url": f"http://127.0.0.1:{port}/hook"})
    assert isinstance(run.error, RetryableError)
    assert "ConnectError" in str(run.error)


# --- shell -----------------------------------------------------------------------------

SHELL_ON = HandlerEnvironment(shell_enabled=True)


def _shell(params: dict[str, Any], **options: Any) -> HandlerRun:
    options.setdefault("environment", SHELL_ON)
    return run_handler(ShellHandler, params, **options)


def test_shell_is_disabled_by_default() -> None:
    run = run_handler(ShellHandler, {"command": ["echo", "hi"]})
    assert isinstance(run.error, PermanentError)
    assert str(run.error) == DISABLED_MESSAGE


def test_shell_echo_succeeds_in_a_clean_environment() -> None:
    run = _shell(
        {
            "command": "echo hello; echo warn >&2; env | sort; pwd",
            "shell": True,
            "env": {"REPORT": "sales"},
        }
    )
    run.raise_error()
    assert run.output["exit_code"] == 0
    assert run.output["stderr"] == "warn\n"
    lines = run.output["stdout"].splitlines()
    assert lines[0] == "hello"
    variables = dict(line.split("=", 1) for line in lines[1:-1])
    workdir = lines[-1]
    assert variables.pop("PWD") == workdir  # /bin/sh sets it
    variables.pop("SHLVL", None)
    assert variables == {
        "PATH": "/usr/bin:/bin",
        "HOME": workdir,
        "LANG": "C.UTF-8",
        "REPORT": "sales",
    }
    assert not Path(workdir).exists()  # the fresh directory is removed afterwards


def test_shell_runs_in_the_executor_work_dir(tmp_path: Path) -> None:
    (tmp_path / "input.txt").write_text("data")
    run = _shell(
        {"command": ["cat", "input.txt"]},
        environment=HandlerEnvironment(shell_enabled=True, work_dir=tmp_path),
    )
    assert run.output["stdout"] == "data"


def test_shell_non_zero_exit_is_retryable_or_permanent() -> None:
    run = _shell(
        {"command": [PYTHON, "-c", "import sys; print('bad input', file=sys.stderr); sys.exit(3)"]}
    )
    assert isinstance(run.error, RetryableError)
    assert str(run.error) == "the command exited with code 3; stderr: bad input"
    permanent = _shell({"command": ["false"], "permanent_on_failure": True})
    assert isinstance(permanent.error, PermanentError)
    assert "exited with code 1" in str(permanent.error)


def test_shell_output_keeps_the_tail() -> None:
    script = "import sys; sys.stdout.write('a' * 5000 + 'END'); sys.stderr.write('e' * 300)"
    run = _shell({"command": [PYTHON, "-c", script], "max_output_bytes": 100})
    run.raise_error()
    assert run.output["stdout"] == "[... 4903 bytes truncated]\n" + "a" * 97 + "END"
    assert run.output["stderr"] == "[... 200 bytes truncated]\n" + "e" * 100


def test_shell_cpu_limit() -> None:
    run = _shell({"command": [PYTHON, "-c", "while True: pass"], "cpu_seconds": 1})
    assert isinstance(run.error, RetryableError)
    assert "CPU limit of 1 s exceeded" in str(run.error)
    assert "SIGXCPU" in str(run.error)
    assert run.duration < 10


def test_shell_memory_limit() -> None:
    run = _shell({"command": [PYTHON, "-c", "b = bytearray(1 << 30)"], "memory_mb": 200})
    assert isinstance(run.error, RetryableError)
    assert "memory limit of 200 MB exceeded" in str(run.error)
    assert "MemoryError" in str(run.error)


def test_shell_wall_timeout_raises_timeout_error() -> None:
    run = _shell({"command": ["sleep", "10"], "timeout": "1s"})
    assert isinstance(run.error, TimeoutError)
    assert "wall-time limit of 1 s (params.timeout)" in str(run.error)
    assert run.duration < 5


def test_shell_task_deadline_bounds_the_wall_time() -> None:
    run = _shell({"command": ["sleep", "10"], "timeout": "1m"}, timeout=1)
    assert isinstance(run.error, TimeoutError)
    assert run.duration < 5


def _gone(pid: int) -> bool:
    """The process no longer runs (it may linger as a zombie if nobody reaps it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def test_shell_cancel_kills_the_process_group_quickly(tmp_path: Path) -> None:
    cancelled = threading.Event()
    pid_file = tmp_path / "child.pid"
    outcome: list[HandlerRun] = []
    command = "sleep 30 & echo $! > child.pid; wait"  # a grandchild in the same group
    runner = threading.Thread(
        target=lambda: outcome.append(
            _shell(
                {"command": command, "shell": True},
                environment=HandlerEnvironment(shell_enabled=True, work_dir=tmp_path),
                cancelled=cancelled,
            )
        )
    )
    runner.start()

    def written_pid() -> str | None:
        text = pid_file.read_text().strip() if pid_file.exists() else ""
        return text or None

    child = int(eventually(written_pid, timeout=10, what="the grandchild's pid"))
    assert not _gone(child)
    cancelled.set()
    runner.join(10)
    (run,) = outcome
    assert isinstance(run.error, RetryableError)
    assert "cancelled" in str(run.error) and "process group was killed" in str(run.error)
    assert run.duration < 5
    eventually(lambda: _gone(child), timeout=5, what=f"grandchild {child} to be killed")


def test_shell_kills_what_the_command_left_running(tmp_path: Path) -> None:
    run = _shell(
        {"command": "sleep 30 & echo $! > child.pid", "shell": True},
        environment=HandlerEnvironment(shell_enabled=True, work_dir=tmp_path),
    )
    run.raise_error()
    child = int((tmp_path / "child.pid").read_text())
    eventually(lambda: _gone(child), timeout=5, what=f"left-over {child} to be killed")
    assert run.duration < 5


def test_shell_program_not_found_is_permanent() -> None:
    run = _shell({"command": [f"no-such-program-{uuid.uuid4().hex[:6]}"]})
    assert isinstance(run.error, PermanentError)
    assert "give its absolute path or set params.env.PATH" in str(run.error)


# --- kafka -----------------------------------------------------------------------------


@pytest.fixture
def kafka_topic(kafka_bootstrap: str, topic_prefix: str) -> Iterator[str]:
    topic = f"{topic_prefix}scheduled-messages"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for future in admin.create_topics([NewTopic(topic, num_partitions=2)]).values():
        future.result(30)
    try:
        yield topic
    finally:
        close_producers()


def _read(bootstrap: str, topic: str, partition: int, offset: int) -> Any:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        (message,) = eventually(
            lambda: [m for m in [consumer.poll(0.5)] if m is not None],
            timeout=30,
            what="the published message",
        )
        assert message.error() is None, message.error()
        return message
    finally:
        consumer.close()


@pytest.mark.kafka
def test_kafka_publishes_to_a_real_topic(kafka_bootstrap: str, kafka_topic: str) -> None:
    environment = HandlerEnvironment(kafka_bootstrap_servers=kafka_bootstrap)
    run = run_handler(
        KafkaHandler,
        {
            "topic": kafka_topic,
            "value": {"report": "sales", "day": 23},
            "key": "sales",
            "headers": {"source": "nightly"},
        },
        environment=environment,
        task_id="task-9",
        execution_id="exec-9",
    )
    run.raise_error()
    assert run.output["topic"] == kafka_topic
    message = _read(kafka_bootstrap, kafka_topic, run.output["partition"], run.output["offset"])
    assert json.loads(message.value()) == {"report": "sales", "day": 23}
    assert message.key() == b"sales"
    assert dict(message.headers()) == {
        "source": b"nightly",
        TASK_ID_HEADER: b"task-9",
        EXECUTION_ID_HEADER: b"exec-9",
    }
    assert any("published to" in line for line in run.logs)

    # a string goes as UTF-8, and params.bootstrap_servers replaces the executor's broker
    text = run_handler(
        KafkaHandler,
        {"topic": kafka_topic, "value": "plain ✓", "bootstrap_servers": kafka_bootstrap},
    )
    text.raise_error()
    message = _read(kafka_bootstrap, kafka_topic, text.output["partition"], text.output["offset"])
    assert message.value() == "plain ✓".encode()
    assert message.key() is None


@pytest.mark.kafka
def test_kafka_producer_is_shared_across_threads(kafka_bootstrap: str, kafka_topic: str) -> None:
    environment = HandlerEnvironment(kafka_bootstrap_servers=kafka_bootstrap)
    runs: list[HandlerRun] = []

    def publish(n: int) -> None:
        runs.append(
            run_handler(KafkaHandler, {"topic": kafka_topic, "value": n}, environment=environment)
        )

    threads = [threading.Thread(target=publish, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(runs) == 6 and all(run.succeeded for run in runs), [r.error for r in runs]
    positions = {(run.output["partition"], run.output["offset"]) for run in runs}
    assert len(positions) == 6
    from taskstream.handlers import kafka as kafka_module

    assert list(kafka_module._producers) == [kafka_bootstrap]  # one producer for all runs
