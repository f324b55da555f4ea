"""Run a real single-node Apache Kafka broker on loopback, without Docker.

The broker is the genuine Apache Kafka server (``kafka.Kafka``) in KRaft
*combined* mode (one JVM that is both broker and controller), started from
jars that Maven fetches from Maven Central once and caches:

* :func:`~taskstream.dev_broker.kafka_jars.fetch_kafka_jars` fetches the jars with Maven once
  and caches them (see :mod:`taskstream.dev_broker.kafka_jars`).
* :class:`LocalKafkaBroker` writes ``server.properties``, formats the storage
  directory and runs the JVM as a child process that cannot outlive its parent
  (own process group, ``PR_SET_PDEATHSIG`` on Linux, an :mod:`atexit` hook).
  ``start()`` returns only once a client can talk to the broker.

Requirements: Java 17+ (``java`` on ``PATH``) and, for the first fetch, Maven.

Example::

    with LocalKafkaBroker(port=0) as kafka:
        producer = confluent_kafka.Producer({"bootstrap.servers": kafka.bootstrap_servers})

Command line::

    python -m taskstream.dev_broker.local_kafka [--port 9092] [--data-dir DIR]
    python -m taskstream.dev_broker.local_kafka --fetch-only
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Final

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from taskstream.dev_broker.kafka_jars import (
    KAFKA_VERSION,
    OUTPUT_TAIL_LINES,
    KafkaDistributionError,
    check_version,
    default_cache_dir,
    fetch_kafka_jars,
    resource_text,
    tail_lines,
)
from taskstream.infra.processes import spawn_tied_to_interpreter
from taskstream.schemas.errors import TaskstreamError

__all__ = [
    "KAFKA_VERSION",
    "KafkaDistributionError",
    "KafkaStartError",
    "LocalKafkaBroker",
    "default_cache_dir",
    "fetch_kafka_jars",
    "main",
]

logger = logging.getLogger(__name__)

_LOOPBACK: Final = "127.0.0.1"
_HEAP_RE: Final = re.compile(r"^[0-9]+[kKmMgG]?$")


class KafkaStartError(TaskstreamError, RuntimeError):
    """The local Kafka broker did not start (the message carries the tail of its log)."""


# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #


def _free_port(exclude: int | None = None) -> int:
    """A TCP port on loopback that is free right now."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((_LOOPBACK, 0))
            port = int(sock.getsockname()[1])
        if port != exclude:
            return port


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Kafka binds with SO_REUSEADDR too, so a TIME_WAIT leftover is no conflict.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((_LOOPBACK, port))
        except OSError:
            return False
    return True


def _tcp_accepts(port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((_LOOPBACK, port), timeout=timeout):
            return True
    except OSError:
        return False


def _file_tail(path: Path, lines: int = OUTPUT_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 256 * 1024))
            data = handle.read()
    except OSError as exc:
        return f"(broker log {path} unreadable: {exc})"
    return tail_lines(data.decode("utf-8", errors="replace"), lines)


def _new_cluster_id() -> str:
    """A random cluster id in Kafka's format (base64url of 16 bytes, no padding)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not cluster_id.startswith("-"):  # Kafka's Uuid.randomUuid() avoids these too
            return cluster_id


def _properties_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to the process group led by ``pid`` (the JVM runs in its own session)."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


# Brokers whose JVM may still run; stopped by the atexit hook.
_LIVE_BROKERS: set[LocalKafkaBroker] = set()
_LIVE_LOCK = threading.Lock()


def _stop_live_brokers() -> None:
    with _LIVE_LOCK:
        brokers = list(_LIVE_BROKERS)
    for broker in brokers:
        try:
            broker.stop(timeout=10)
        except Exception:
            logger.exception("could not stop the local Kafka broker at exit")


atexit.register(_stop_live_brokers)


class _PortTakenError(KafkaStartError):
    """A port picked as free was taken by someone else before the JVM bound it."""


# --------------------------------------------------------------------------- #
# The broker
# --------------------------------------------------------------------------- #


class LocalKafkaBroker:
    """A real single-node Kafka broker (KRaft combined mode) on 127.0.0.1.

    Args:
        port: client (PLAINTEXT) port; 0 picks a free one.
        controller_port: KRaft controller port; 0 picks a free one.
        data_dir: where ``server.properties`` and the log segments live. ``None``
            uses a fresh temporary directory, deleted by :meth:`stop`. An existing
            directory is reused (storage is formatted only the first time).
        version: Kafka release to run.
        heap: JVM heap size (``-Xms``/``-Xmx``), e.g. ``"512m"``.
        log_file: file the broker's stdout/stderr (its log4j output) is appended
            to; defaults to ``<data_dir>/broker.log``.
        cache_dir: base directory of the jar cache (see :func:`fetch_kafka_jars`).

    The JVM gets its own session/process group (a Ctrl-C in the terminal does
    not reach it directly), is told by the kernel to exit when this process dies
    (``PR_SET_PDEATHSIG`` on Linux, so even ``kill -9`` of the Python process
    leaves no orphan; only a temporary data directory may remain then) and is
    stopped by an :mod:`atexit` hook. ``start()`` may be called from any thread.
    """

    def __init__(
        self,
        port: int = 9092,
        controller_port: int = 0,
        data_dir: Path | str | None = None,
        version: str = KAFKA_VERSION,
        heap: str = "512m",
        log_file: Path | str | None = None,
        *,
        cache_dir: Path | None = None,
        node_id: int = 1,
        quorum_voters: str | None = None,
        cluster_id: str | None = None,
        replication_factor: int = 1,
        min_insync_replicas: int = 1,
        overrides: Mapping[str, str] | None = None,
    ) -> None:
        for name, value in (("port", port), ("controller_port", controller_port)):
            if not 0 <= value <= 65535:
                raise ValueError(f"{name} must be in 0..65535, got {value}")
        if port and port == controller_port:
            raise ValueError("port and controller_port must differ")
        if not _HEAP_RE.match(heap):
            raise ValueError(f"heap must look like '512m' or '1g', got {heap!r}")
        check_version(version)
        if quorum_voters is not None and not (port and controller_port):
            raise ValueError("a node of a cluster needs fixed ports (its peers name them)")
        if not 1 <= min_insync_replicas <= replication_factor:
            raise ValueError(
                f"min_insync_replicas must be in 1..replication_factor ({replication_factor}), "
                f"got {min_insync_replicas}"
            )
        self._node_id = node_id
        self._quorum_voters = quorum_voters
        self._replication_factor = replication_factor
        self._min_insync_replicas = min_insync_replicas
        self._overrides = dict(overrides or {})
        self._requested_port = port
        self._requested_controller_port = controller_port
        self._requested_data_dir = Path(data_dir).expanduser() if data_dir is not None else None
        self._requested_log_file = Path(log_file).expanduser() if log_file is not None else None
        self._version = version
        self._heap = heap
        self._cache_dir = cache_dir
        self._lock = threading.RLock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_handle: IO[bytes] | None = None
        self._port: int | None = port or None
        self._controller_port: int | None = controller_port or None
        self._data_dir: Path | None = None
        self._owns_data_dir = False
        self._log_file: Path | None = None
        self._cluster_id: str | None = cluster_id
        self._launched_ports: tuple[int, int] | None = None
        """The ports of the last JVM that served clients: a restart after a crash reuses
        them (clients reconnect to the address they know); :meth:`stop` forgets them."""

    # -- properties -------------------------------------------------------- #

    @property
    def bootstrap_servers(self) -> str:
        """``"127.0.0.1:PORT"``; with ``port=0`` known only once :meth:`start` ran."""
        if self._port is None:
            raise RuntimeError("the broker port is chosen by start(); call start() first")
        return f"{_LOOPBACK}:{self._port}"

    @property
    def port(self) -> int | None:
        """Client port (``None`` before :meth:`start` when it is picked automatically)."""
        return self._port

    @property
    def controller_port(self) -> int | None:
        """KRaft controller port (``None`` before :meth:`start` when picked automatically)."""
        return self._controller_port

    @property
    def version(self) -> str:
        """Kafka release this broker runs."""
        return self._version

    @property
    def data_dir(self) -> Path | None:
        """Directory holding ``server.properties`` and the data (``None`` when not started)."""
        return self._data_dir

    @property
    def log_file(self) -> Path | None:
        """The broker log file (``None`` before :meth:`start`)."""
        return self._log_file

    @property
    def pid(self) -> int | None:
        """Process id of the broker JVM, if one was started and not yet stopped."""
        return self._proc.pid if self._proc is not None else None

    def is_running(self) -> bool:
        """True while the broker JVM is alive."""
        proc = self._proc
        return proc is not None and proc.poll() is None

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the JVM to exit; return its exit code, or ``None`` on timeout/not started."""
        proc = self._proc
        if proc is None:
            return None
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def log_tail(self, lines: int = OUTPUT_TAIL_LINES) -> str:
        """The last ``lines`` lines of the broker log."""
        if self._log_file is None:
            return "(broker not started)"
        return _file_tail(self._log_file, lines)

    # -- lifecycle --------------------------------------------------------- #

    def start(self, timeout: float = 90, *, wait: bool = True) -> str:
        """Start the broker and wait until it serves clients; return the bootstrap address.

        ``timeout`` bounds the broker start-up (formatting storage, launching the
        JVM, first metadata answer). The one-time jar download that may precede
        it is not counted. Calling ``start()`` on a running broker is a no-op.
        With ``wait=False`` it returns once the JVM runs: a node of a cluster
        cannot serve before a majority of its quorum runs, so a cluster launches
        every node and then calls :meth:`wait_ready` on each.

        Raises:
            KafkaDistributionError: the jars could not be fetched.
            KafkaStartError: Java is missing, a port is taken, or the broker died
                or did not answer in time (with the tail of its log).
        """
        with self._lock:
            if self.is_running():
                return self.bootstrap_servers
            self._cleanup_after_exit()
            java = shutil.which("java")
            if java is None:
                raise KafkaStartError(
                    "no 'java' on PATH: the Kafka broker needs Java 17 or newer "
                    "(Debian/Ubuntu: 'apt-get install openjdk-17-jre-headless')"
                )
            libs = fetch_kafka_jars(self._version, self._cache_dir)
            started = time.monotonic()
            deadline = started + timeout
            try:
                self._prepare_data_dir()
                auto_ports = self._requested_port == 0 or self._requested_controller_port == 0
                attempts = 3 if auto_ports else 1
                for attempt in range(1, attempts + 1):
                    try:
                        self._launch(java, libs, deadline, wait)
                        break
                    except _PortTakenError:
                        if attempt == attempts:
                            raise
                        logger.info("a picked port was taken meanwhile; retrying with new ports")
                        self._kill(timeout=10)
            except BaseException:
                self._stop_locked(timeout=10)
                raise
            logger.info(
                "Kafka %s broker %s on %s (pid %s, data %s) after %.1fs",
                self._version,
                "ready" if wait else "launched",
                self.bootstrap_servers,
                self.pid,
                self._data_dir,
                time.monotonic() - started,
            )
            return self.bootstrap_servers

    def wait_ready(self, timeout: float = 90) -> None:
        """Wait until this (launched) broker serves clients and lists itself as a broker.

        Raises:
            KafkaStartError: it is not running, died, or did not answer in time.
        """
        with self._lock:
            proc, port = self._proc, self._port
            if proc is None or port is None:
                raise KafkaStartError("the Kafka broker was not started; call start() first")
        self._wait_ready(proc, port, time.monotonic() + timeout)

    def kill(self) -> None:
        """``kill -9`` the JVM, as a crash would: no shutdown, the data directory and the
        ports stay, so :meth:`start` brings the same node back. Idempotent."""
        with self._lock:
            proc = self._proc
            if proc is not None and proc.poll() is None:
                logger.info(
                    "killing Kafka broker %d (pid %d) with SIGKILL", self._node_id, proc.pid
                )
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
            self._kill(timeout=0)

    def stop(self, timeout: float = 30) -> None:
        """Stop the broker: SIGTERM, wait up to ``timeout`` s, then SIGKILL.

        Removes the data directory if it was a temporary one. Idempotent.
        """
        with self._lock:
            self._stop_locked(timeout)

    def __enter__(self) -> LocalKafkaBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        where = f"{_LOOPBACK}:{self._port}" if self._port else "port=auto"
        return f"<LocalKafkaBroker {self._version} {where} {state}>"

    # -- internals --------------------------------------------------------- #

    def _prepare_data_dir(self) -> None:
        if self._data_dir is None:
            if self._requested_data_dir is None:
                self._data_dir = Path(tempfile.mkdtemp(prefix="taskstream-kafka-"))
                self._owns_data_dir = True
            else:
                self._data_dir = self._requested_data_dir
                self._data_dir.mkdir(parents=True, exist_ok=True)
                self._owns_data_dir = False
        self._log_file = self._requested_log_file or self._data_dir / "broker.log"
        self._log_file.parent.mkdir(parents=True, exist_ok=True)

    def _server_properties(self, port: int, controller_port: int, log_dir: Path) -> dict[str, str]:
        voters = self._quorum_voters or f"{self._node_id}@{_LOOPBACK}:{controller_port}"
        replicas, min_isr = str(self._replication_factor), str(self._min_insync_replicas)
        props = {
            # KRaft combined mode: this node is a broker and a controller (alone, or one of
            # the quorum_voters of a local cluster).
            "process.roles": "broker,controller",
            "node.id": str(self._node_id),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://{_LOOPBACK}:{port},CONTROLLER://{_LOOPBACK}:{controller_port}",
            "advertised.listeners": f"PLAINTEXT://{_LOOPBACK}:{port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(log_dir),
            # Replication as asked (1 for a single node); small internal topics for a fast start.
            "num.partitions": "1",
            "default.replication.factor": replicas,
            "min.insync.replicas": min_isr,
            "offsets.topic.replication.factor": replicas,
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": min_isr,
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": min_isr,
            "share.coordinator.state.topic.num.partitions": "4",
            "group.initial.rebalance.delay.ms": "0",
            # Let a core instance choose a session below the stock 6 s minimum (a faster
            # failover), and abort a dead instance's timed-out fire transaction within a
            # second of its timeout instead of at the next 10 s sweep.
            "group.min.session.timeout.ms": "1000",
            "transaction.abort.timed.out.transaction.cleanup.interval.ms": "1000",
            "auto.create.topics.enable": "false",
            # Keep the footprint small.
            "log.cleaner.dedupe.buffer.size": "1048577",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "num.recovery.threads.per.data.dir": "1",
        }
        props.update(self._overrides)
        return props

    def _write_config(self, port: int, controller_port: int) -> tuple[Path, Path, Path]:
        assert self._data_dir is not None
        log_dir = self._data_dir / "kraft-data"
        props = self._server_properties(port, controller_port, log_dir)
        server_properties = self._data_dir / "server.properties"
        server_properties.write_text(
            "# written by taskstream.dev_broker.local_kafka; rewritten at every start\n"
            + "".join(f"{key}={_properties_value(value)}\n" for key, value in props.items()),
            encoding="utf-8",
        )
        log4j = self._data_dir / "log4j2.properties"
        log4j.write_text(resource_text("log4j2.properties"), encoding="utf-8")
        return server_properties, log4j, log_dir

    def _java_cmd(self, java: str, libs: Path, log4j: Path, main_class: str) -> list[str]:
        return [
            java,
            f"-Xms{self._heap}",
            f"-Xmx{self._heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35",
            "-XX:+ExplicitGCInvokesConcurrent",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            f"{libs}/*",  # expanded by the JVM, not by a shell
            main_class,
        ]

    def _format_storage(
        self, java: str, libs: Path, log4j: Path, server_properties: Path, deadline: float
    ) -> None:
        if self._cluster_id is None:
            self._cluster_id = _new_cluster_id()
        cmd = [
            java,
            "-Xmx256m",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            f"{libs}/*",
            "kafka.tools.StorageTool",
            "format",
            "-t",
            self._cluster_id,
            "-c",
            str(server_properties),
        ]
        logger.debug("formatting Kafka storage: %s", cmd)
        assert self._data_dir is not None
        proc = spawn_tied_to_interpreter(
            cmd, cwd=self._data_dir, stdout=subprocess.PIPE, new_session=False
        )
        try:
            output, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except BaseException as exc:
            proc.kill()
            proc.communicate()
            if isinstance(exc, subprocess.TimeoutExpired):
                raise KafkaStartError("formatting the Kafka storage directory timed out") from exc
            raise
        if proc.returncode != 0:
            raise KafkaStartError(
                f"'kafka-storage format' failed (exit code {proc.returncode}):\n"
                f"{tail_lines(output.decode('utf-8', errors='replace'))}"
            )

    def _launch(self, java: str, libs: Path, deadline: float, wait: bool) -> None:
        assert self._data_dir is not None and self._log_file is not None
        launched = self._launched_ports or (0, 0)
        port = self._requested_port or launched[0] or _free_port()
        controller_port = self._requested_controller_port or launched[1] or _free_port(exclude=port)
        for what, value, requested in (
            ("port", port, self._requested_port or launched[0]),
            ("controller_port", controller_port, self._requested_controller_port or launched[1]),
        ):
            if requested and not _port_is_free(value):
                raise KafkaStartError(
                    f"{_LOOPBACK}:{value} ({what}) is already in use, maybe by another Kafka; "
                    f"stop it or pass {what}=0 to pick a free port"
                )
        self._port, self._controller_port = port, controller_port
        server_properties, log4j, log_dir = self._write_config(port, controller_port)
        if not (log_dir / "meta.properties").exists():
            self._format_storage(java, libs, log4j, server_properties, deadline)

        cmd = [*self._java_cmd(java, libs, log4j, "kafka.Kafka"), str(server_properties)]
        logger.debug("starting Kafka broker: %s", cmd)
        log_handle = open(self._log_file, "ab")  # closed in _kill()
        try:
            log_handle.write(f"\n==== {time.strftime('%F %T')} starting {cmd}\n".encode())
            log_handle.flush()
            proc = spawn_tied_to_interpreter(
                cmd, cwd=self._data_dir, stdout=log_handle, new_session=True
            )
        except BaseException:
            log_handle.close()
            raise
        self._proc, self._log_handle = proc, log_handle
        with _LIVE_LOCK:
            _LIVE_BROKERS.add(self)
        if wait:
            self._wait_ready(proc, port, deadline)
        self._launched_ports = (port, controller_port)

    def _wait_ready(self, proc: subprocess.Popen[bytes], port: int, deadline: float) -> None:
        """Poll until a Kafka client gets metadata listing this broker."""
        assert self._log_file is not None
        bootstrap = f"{_LOOPBACK}:{port}"
        admin: AdminClient | None = None
        last_error = "the port did not accept connections"
        while True:
            code = proc.poll()
            if code is not None:
                tail = self.log_tail()
                error = _PortTakenError if "Address already in use" in tail else KafkaStartError
                raise error(
                    f"the Kafka broker exited with code {code} during start-up; "
                    f"last lines of {self._log_name()}:\n{tail}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise KafkaStartError(
                    f"the Kafka broker did not serve clients on {bootstrap} in time "
                    f"({last_error}); last lines of {self._log_name()}:\n{self.log_tail()}"
                )
            if admin is None:
                if _tcp_accepts(port, timeout=min(0.5, remaining)):
                    admin = AdminClient(
                        {
                            "bootstrap.servers": bootstrap,
                            "socket.connection.setup.timeout.ms": 2000,
                        },
                        logger=logging.getLogger(f"{__name__}.rdkafka"),
                    )
                else:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(timeout=min(0.2, remaining))
                    continue
            try:
                metadata = admin.list_topics(timeout=max(0.1, min(2.0, remaining)))
            except KafkaException as exc:
                last_error = f"metadata request failed: {exc}"
            else:
                if self._node_id in metadata.brokers:
                    return
                last_error = f"metadata does not list broker {self._node_id} yet"
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=min(0.2, max(0.0, deadline - time.monotonic())))

    def _log_name(self) -> str:
        """How to name the log in an error (its path only if it survives the clean-up)."""
        log_file, data_dir = self._log_file, self._data_dir
        if log_file is None:
            return "the broker log"
        if self._owns_data_dir and data_dir is not None and log_file.is_relative_to(data_dir):
            return "the broker log (removed with its temporary directory)"
        return str(log_file)

    def _kill(self, timeout: float) -> None:
        """Stop the JVM (SIGTERM to its group, SIGKILL after ``timeout``) and close the log."""
        proc = self._proc
        if proc is not None:
            if proc.poll() is None:
                logger.info("stopping Kafka broker (pid %d)", proc.pid)
                _signal_group(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    logger.warning(
                        "Kafka broker pid %d ignored SIGTERM for %.0fs; sending SIGKILL",
                        proc.pid,
                        timeout,
                    )
                    _signal_group(proc.pid, signal.SIGKILL)
                    proc.wait()
            else:
                _signal_group(proc.pid, signal.SIGKILL)  # stray group members, if any
            logger.debug("Kafka broker pid %d exited with %s", proc.pid, proc.returncode)
            self._proc = None
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None
        with _LIVE_LOCK:
            _LIVE_BROKERS.discard(self)

    def _cleanup_after_exit(self) -> None:
        """Reap a JVM that died on its own since the last start()."""
        if self._proc is not None:
            self._kill(timeout=0)

    def _stop_locked(self, timeout: float) -> None:
        self._kill(timeout)
        self._launched_ports = None
        if self._owns_data_dir and self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)
            self._data_dir = None
            self._owns_data_dir = False
        if self._requested_port == 0:
            self._port = None
        if self._requested_controller_port == 0:
            self._controller_port = None


# --------------------------------------------------------------------------- #
# Command line
# --------------------------------------------------------------------------- #


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m taskstream.dev_broker.local_kafka``: run a broker until Ctrl-C / SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m taskstream.dev_broker.local_kafka",
        description="Run a real single-node Apache Kafka broker (KRaft) on 127.0.0.1.",
    )
    parser.add_argument("--port", type=int, default=9092, help="client port (0 = pick a free one)")
    parser.add_argument("--controller-port", type=int, default=0, help="KRaft controller port")
    parser.add_argument("--data-dir", type=Path, help="data directory (default: a temporary one)")
    parser.add_argument("--log-file", type=Path, help="broker log (default: DATA_DIR/broker.log)")
    parser.add_argument("--heap", default="512m", help="JVM heap size (default: %(default)s)")
    parser.add_argument("--kafka-version", default=KAFKA_VERSION, help="default: %(default)s")
    parser.add_argument("--cache-dir", type=Path, help="jar cache base directory")
    parser.add_argument("--timeout", type=float, default=90.0, help="start-up timeout, seconds")
    parser.add_argument("--fetch-only", action="store_true", help="only fetch the jars, then exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.fetch_only:
        try:
            libs = fetch_kafka_jars(args.kafka_version, args.cache_dir)
        except KafkaDistributionError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(libs)
        return 0

    # Explicit for SIGINT too: a shell starts background jobs with SIGINT ignored.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    signal.signal(signal.SIGINT, _raise_keyboard_interrupt)
    broker = LocalKafkaBroker(
        port=args.port,
        controller_port=args.controller_port,
        data_dir=args.data_dir,
        version=args.kafka_version,
        heap=args.heap,
        log_file=args.log_file,
        cache_dir=args.cache_dir,
    )
    try:
        bootstrap = broker.start(timeout=args.timeout)
        print(
            f"Kafka {broker.version} broker running; log: {broker.log_file}. "
            "Ctrl-C or SIGTERM stops it. Bootstrap servers:",
            file=sys.stderr,
            flush=True,
        )
        print(bootstrap, flush=True)
        code = broker.wait()
        print(
            f"error: the Kafka broker exited by itself (code {code}); last lines of its log:\n"
            f"{broker.log_tail()}",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("stopping the Kafka broker...", file=sys.stderr, flush=True)
        return 0
    except (KafkaDistributionError, KafkaStartError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        broker.stop()


if __name__ == "__main__":
    sys.exit(main())
