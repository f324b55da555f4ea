"""Run a real 3-node Apache Kafka cluster on loopback, for fault injection.

Each node is a :class:`~taskstream.dev_broker.local_kafka.LocalKafkaBroker` in KRaft
*combined* mode (broker and controller in one JVM), with its own client port,
controller port, data directory and log, all on 127.0.0.1; the three form the
controller quorum. The pipeline's topics get replication factor 3 and
``min.insync.replicas`` 2 (the broker defaults, and the internal topics'), so a
cluster keeps accepting ``acks=all`` writes with one node down.

Any node can be killed with SIGKILL (:meth:`LocalKafkaCluster.kill`) and started
again on the same ports and data (:meth:`LocalKafkaCluster.restart`), and so can
the whole cluster. Ports are picked once, when the cluster is made, and kept.

A node's JVM is small (``heap`` each, default 256 MiB; one network and two I/O
threads), so three fit next to the services on a 2-core machine. A fenced broker
is noticed in ``broker.session.timeout.ms`` (4 s here, 9 s stock), which bounds
how long a dead leader's partitions stay unavailable.

Example::

    with LocalKafkaCluster() as cluster:
        producer = confluent_kafka.Producer({"bootstrap.servers": cluster.bootstrap_servers})
        cluster.kill(1)
        cluster.restart(1)

Command line::

    python -m taskstream.dev_broker.local_kafka_cluster [--data-dir DIR] [--nodes 3]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType, TracebackType
from typing import Final

from taskstream.dev_broker.local_kafka import (
    KAFKA_VERSION,
    KafkaDistributionError,
    KafkaStartError,
    LocalKafkaBroker,
    _new_cluster_id,
)
from taskstream.infra.processes import free_port

__all__ = ["CLUSTER_OVERRIDES", "LocalKafkaCluster", "main"]

logger = logging.getLogger(__name__)

_LOOPBACK: Final = "127.0.0.1"

CLUSTER_OVERRIDES: Final[dict[str, str]] = {
    # Small JVMs: three of them share two cores with the services.
    "num.network.threads": "1",
    "num.io.threads": "2",
    "background.threads": "2",
    "num.replica.fetchers": "1",
    "log.cleaner.threads": "1",
    # A dead broker is fenced (its leaderships move) after 4 s rather than 9 s.
    "broker.session.timeout.ms": "4000",
    "broker.heartbeat.interval.ms": "1000",
    # A follower that stops fetching leaves the ISR after 10 s rather than 30 s.
    "replica.lag.time.max.ms": "10000",
    # A restarted node takes its preferred leaderships back soon (default every 300 s).
    "leader.imbalance.check.interval.seconds": "10",
}
"""Server properties every node of a local cluster adds to the single broker's."""


class LocalKafkaCluster:
    """``nodes`` real Kafka nodes (KRaft, combined roles) on 127.0.0.1 forming one cluster.

    Args:
        nodes: how many nodes (3 for the fault tests; 1 works too).
        data_dir: parent of each node's ``node-<id>`` directory. ``None`` uses a fresh
            temporary directory, deleted by :meth:`stop`.
        replication_factor: of the internal topics and the broker default (``nodes``).
        min_insync_replicas: the broker default and the internal topics' (2 for 3 nodes).
        heap: each JVM's heap.
        version, cache_dir: as for :class:`LocalKafkaBroker`.
    """

    def __init__(
        self,
        nodes: int = 3,
        data_dir: Path | str | None = None,
        *,
        replication_factor: int | None = None,
        min_insync_replicas: int | None = None,
        heap: str = "256m",
        version: str = KAFKA_VERSION,
        cache_dir: Path | None = None,
    ) -> None:
        if nodes < 1:
            raise ValueError(f"nodes must be at least 1, got {nodes}")
        replicas = nodes if replication_factor is None else replication_factor
        if not 1 <= replicas <= nodes:
            raise ValueError(f"replication_factor must be in 1..{nodes}, got {replicas}")
        min_isr = max(1, replicas - 1) if min_insync_replicas is None else min_insync_replicas
        self._owns_data_dir = data_dir is None
        self._root = (
            Path(tempfile.mkdtemp(prefix="taskstream-kafka-cluster-"))
            if data_dir is None
            else Path(data_dir).expanduser()
        )
        self._replication_factor = replicas
        self._min_insync_replicas = min_isr
        ports = _distinct_free_ports(2 * nodes)
        client_ports, controller_ports = ports[:nodes], ports[nodes:]
        voters = ",".join(
            f"{node_id}@{_LOOPBACK}:{port}"
            for node_id, port in enumerate(controller_ports, start=1)
        )
        cluster_id = _stored_cluster_id(self._root) or _new_cluster_id()
        self._nodes: dict[int, LocalKafkaBroker] = {
            node_id: LocalKafkaBroker(
                port=client_ports[node_id - 1],
                controller_port=controller_ports[node_id - 1],
                data_dir=self._root / f"node-{node_id}",
                version=version,
                heap=heap,
                cache_dir=cache_dir,
                node_id=node_id,
                quorum_voters=voters,
                cluster_id=cluster_id,
                replication_factor=replicas,
                min_insync_replicas=min_isr,
                overrides=CLUSTER_OVERRIDES,
            )
            for node_id in range(1, nodes + 1)
        }
        self._cluster_id = cluster_id

    # -- properties -------------------------------------------------------- #

    @property
    def bootstrap_servers(self) -> str:
        """Every node's client address, comma-separated."""
        return ",".join(node.bootstrap_servers for node in self._nodes.values())

    @property
    def node_ids(self) -> list[int]:
        return sorted(self._nodes)

    @property
    def replication_factor(self) -> int:
        return self._replication_factor

    @property
    def min_insync_replicas(self) -> int:
        return self._min_insync_replicas

    @property
    def data_dir(self) -> Path:
        return self._root

    def node(self, node_id: int) -> LocalKafkaBroker:
        """One node (1-based id)."""
        try:
            return self._nodes[node_id]
        except KeyError:
            raise ValueError(f"no node {node_id}; nodes are {self.node_ids}") from None

    def running(self) -> list[int]:
        """Ids of the nodes whose JVM is alive."""
        return [node_id for node_id, node in self._nodes.items() if node.is_running()]

    # -- lifecycle --------------------------------------------------------- #

    def start(self, timeout: float = 120) -> str:
        """Start every node that is not running and wait until each serves; return the
        bootstrap servers. Nodes are launched first and waited for after: no node can
        serve before a majority of the controller quorum runs."""
        started = time.monotonic()
        self._root.mkdir(parents=True, exist_ok=True)
        (self._root / "cluster.id").write_text(self._cluster_id + "\n", encoding="utf-8")
        try:
            self._start_nodes(self.node_ids, timeout)
        except BaseException:
            self.stop(timeout=10)
            raise
        logger.info(
            "Kafka cluster of %d nodes ready on %s after %.1fs",
            len(self._nodes),
            self.bootstrap_servers,
            time.monotonic() - started,
        )
        return self.bootstrap_servers

    def kill(self, *node_ids: int) -> None:
        """SIGKILL the given nodes (all when none is given): their data and ports stay."""
        for node_id in node_ids or tuple(self.node_ids):
            self.node(node_id).kill()

    def restart(self, *node_ids: int, timeout: float = 120) -> float:
        """Start the given nodes again (all that are down when none is given) on their
        ports and data; wait until they serve. Returns the seconds it took."""
        started = time.monotonic()
        wanted = list(node_ids) or [n for n in self.node_ids if not self.node(n).is_running()]
        self._start_nodes(wanted, timeout)
        return time.monotonic() - started

    def stop(self, timeout: float = 30) -> None:
        """Stop every node (SIGTERM, then SIGKILL after ``timeout``); a temporary data
        directory is removed. Idempotent."""
        with ThreadPoolExecutor(max_workers=len(self._nodes)) as pool:
            list(pool.map(lambda node: node.stop(timeout), self._nodes.values()))
        if self._owns_data_dir:
            shutil.rmtree(self._root, ignore_errors=True)

    def log_tails(self, lines: int = 20) -> str:
        """The last lines of every node's log, for a failure message."""
        return "\n".join(
            f"--- kafka node {node_id}\n{node.log_tail(lines)}"
            for node_id, node in self._nodes.items()
        )

    def __enter__(self) -> LocalKafkaCluster:
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
        return f"<LocalKafkaCluster {self.bootstrap_servers} running={self.running()}>"

    # -- internals --------------------------------------------------------- #

    def _start_nodes(self, node_ids: Sequence[int], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        nodes = [self.node(node_id) for node_id in node_ids]
        for node in nodes:
            node.start(timeout=max(1.0, deadline - time.monotonic()), wait=False)
        for node in nodes:
            node.wait_ready(timeout=max(1.0, deadline - time.monotonic()))


def _distinct_free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port(_LOOPBACK)
        if port not in ports:
            ports.append(port)
    return ports


def _stored_cluster_id(root: Path) -> str | None:
    """The id a cluster kept in ``root`` was formatted with, if it was."""
    try:
        return (root / "cluster.id").read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


# --------------------------------------------------------------------------- #
# Command line
# --------------------------------------------------------------------------- #


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m taskstream.dev_broker.local_kafka_cluster``: run a cluster until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m taskstream.dev_broker.local_kafka_cluster",
        description="Run a real Apache Kafka cluster (KRaft, combined nodes) on 127.0.0.1.",
    )
    parser.add_argument("--nodes", type=int, default=3, help="number of nodes (default 3)")
    parser.add_argument("--data-dir", type=Path, help="data directory (default: a temporary one)")
    parser.add_argument("--heap", default="256m", help="each JVM's heap (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=120.0, help="start-up timeout, seconds")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    signal.signal(signal.SIGINT, _raise_keyboard_interrupt)
    cluster = LocalKafkaCluster(args.nodes, args.data_dir, heap=args.heap)
    try:
        print(cluster.start(timeout=args.timeout), flush=True)
        while cluster.running():
            time.sleep(1.0)  # until Ctrl-C, or every node died
        print(f"error: every node exited; last lines:\n{cluster.log_tails()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        return 0
    except (KafkaDistributionError, KafkaStartError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
