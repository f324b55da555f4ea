"""The Apache Kafka jars, fetched from Maven Central with ``mvn`` once and cached.

:func:`fetch_kafka_jars` renders ``kafka_dist/pom.xml`` (shipped with this package) into
``$TASKSTREAM_CACHE_DIR/kafka-<version>/`` (default ``~/.cache/taskstream``) and runs
``mvn dependency:copy-dependencies``. It needs ``mvn`` and Maven Central the first time
only; a marker file records a completed download and a file lock keeps concurrent
processes from fetching at the same time.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.resources
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from taskstream.schemas.errors import TaskstreamError

__all__ = [
    "KAFKA_VERSION",
    "OUTPUT_TAIL_LINES",
    "KafkaDistributionError",
    "check_version",
    "default_cache_dir",
    "fetch_kafka_jars",
    "resource_text",
    "tail_lines",
]

logger = logging.getLogger(__name__)

#: Apache Kafka release run by default.
KAFKA_VERSION: Final = "4.3.1"
#: How many lines of a tool's output an error message carries.
OUTPUT_TAIL_LINES: Final = 40

_SCALA_VERSION: Final = "2.13"
_RESOURCE_DIR: Final = "kafka_dist"
_POM_VERSION_PLACEHOLDER: Final = "@KAFKA_VERSION@"
_MARKER_NAME: Final = ".fetch-complete.json"
_LOCK_NAME: Final = ".fetch.lock"
_MAVEN_TIMEOUT_S: Final = 1800.0
_VERSION_RE: Final = re.compile(r"^[0-9]+(\.[0-9]+)*([.-][0-9A-Za-z]+)*$")
_ANSI_RE: Final = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class KafkaDistributionError(TaskstreamError, RuntimeError):
    """The Kafka jars could not be fetched (Maven missing, no network, bad version...)."""


def default_cache_dir() -> Path:
    """Return ``$TASKSTREAM_CACHE_DIR`` if set, else ``~/.cache/taskstream``."""
    env = os.environ.get("TASKSTREAM_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "taskstream"


def check_version(version: str) -> None:
    if not _VERSION_RE.match(version):
        raise ValueError(f"not a Kafka version number: {version!r}")


def _dist_dir(version: str, cache_dir: Path | None) -> Path:
    base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return base / f"kafka-{version}"


def resource_text(name: str) -> str:
    """Text of a file shipped in ``taskstream/dev_broker/kafka_dist/``."""
    ref = importlib.resources.files(__package__ or "taskstream.dev_broker") / _RESOURCE_DIR / name
    return ref.read_text(encoding="utf-8")


def _fetch_complete(dist: Path, version: str) -> bool:
    """True if the marker says the jars of exactly ``version`` are all in ``dist/libs``."""
    try:
        data = json.loads((dist / _MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(data, dict) or data.get("version") != version:
        return False
    jars = data.get("jars")
    if not isinstance(jars, list) or not jars:
        return False
    libs = dist / "libs"
    return all(isinstance(jar, str) and (libs / jar).is_file() for jar in jars)


@contextlib.contextmanager
def _exclusive_lock(path: Path, what: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (blocks while another process has it)."""
    with open(path, "a+b") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another process that is {what}...", file=sys.stderr, flush=True)
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def tail_lines(text: str, lines: int = OUTPUT_TAIL_LINES) -> str:
    kept = _ANSI_RE.sub("", text).rstrip().splitlines()[-lines:]
    return "\n".join(kept) if kept else "(no output)"


def _run_maven(version: str, dist: Path) -> list[str]:
    """Download the runtime classpath of Kafka ``version`` into ``dist/libs``; return jar names."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaDistributionError(
            f"Apache Maven ('mvn') is not on PATH. It is needed once, to fetch the Kafka "
            f"{version} jars from Maven Central. Install it (Debian/Ubuntu: 'apt-get install "
            f"maven'; macOS: 'brew install maven') together with a JDK 17+, then retry."
        )
    libs = dist / "libs"
    partial = dist / "libs.partial"
    (dist / _MARKER_NAME).unlink(missing_ok=True)
    shutil.rmtree(libs, ignore_errors=True)
    shutil.rmtree(partial, ignore_errors=True)
    pom = dist / "pom.xml"
    pom.write_text(
        resource_text("pom.xml").replace(_POM_VERSION_PLACEHOLDER, version), encoding="utf-8"
    )
    cmd = [
        mvn,
        "-B",
        "-q",
        "-Dstyle.color=never",
        "-f",
        str(pom),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={partial}",
    ]
    print(
        f"fetching Kafka {version} jars from Maven Central (first run only)...",
        file=sys.stderr,
        flush=True,
    )
    logger.debug("running %s", cmd)
    started = time.monotonic()
    try:
        result = subprocess.run(
            cmd,
            cwd=dist,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            timeout=_MAVEN_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        output = exc.output if isinstance(exc.output, str) else ""
        raise KafkaDistributionError(
            f"mvn did not finish fetching the Kafka {version} jars within "
            f"{_MAVEN_TIMEOUT_S:.0f}s; check the network connection to Maven Central "
            f"(or the mirror in ~/.m2/settings.xml). Last Maven output:\n{tail_lines(output)}"
        ) from exc
    except OSError as exc:
        raise KafkaDistributionError(f"could not run {mvn}: {exc}") from exc
    if result.returncode != 0:
        raise KafkaDistributionError(
            f"mvn failed (exit code {result.returncode}) fetching the Kafka {version} jars. "
            f"Check network access to Maven Central (https://repo.maven.apache.org/maven2/, or "
            f"the mirror/proxy configured in ~/.m2/settings.xml) and that Kafka {version} "
            f"exists there. Command: {' '.join(cmd)}\n"
            f"Last Maven output:\n{tail_lines(result.stdout)}"
        )
    jars = sorted(path.name for path in partial.glob("*.jar"))
    broker_jar = f"kafka_{_SCALA_VERSION}-{version}.jar"
    if broker_jar not in jars:
        raise KafkaDistributionError(
            f"mvn succeeded but {broker_jar} is not among the {len(jars)} jars it copied into "
            f"{partial}; the pom at {pom} looks wrong. Maven output:\n{tail_lines(result.stdout)}"
        )
    os.replace(partial, libs)
    size_mb = sum((libs / jar).stat().st_size for jar in jars) / 1e6
    print(
        f"fetched {len(jars)} jars ({size_mb:.0f} MB) into {libs} "
        f"in {time.monotonic() - started:.1f}s",
        file=sys.stderr,
        flush=True,
    )
    return jars


def fetch_kafka_jars(version: str = KAFKA_VERSION, cache_dir: Path | None = None) -> Path:
    """Make sure the jars of Kafka ``version`` are cached; return the directory holding them.

    The jars (broker, ``kafka-tools`` and a log4j2 backend) land in
    ``<cache_dir>/kafka-<version>/libs`` where ``cache_dir`` defaults to
    :func:`default_cache_dir`. The download runs once per version: later calls
    return at once. Safe to call from several processes at the same time.

    Raises:
        KafkaDistributionError: ``mvn`` is missing or failed (the message says why).
    """
    check_version(version)
    dist = _dist_dir(version, cache_dir)
    libs = dist / "libs"
    if _fetch_complete(dist, version):
        return libs
    dist.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(dist / _LOCK_NAME, f"fetching the Kafka {version} jars"):
        if _fetch_complete(dist, version):  # another process finished while we waited
            return libs
        jars = _run_maven(version, dist)
        marker = dist / _MARKER_NAME
        tmp = marker.with_name(f"{marker.name}.{os.getpid()}.tmp")
        tmp.write_text(
            json.dumps({"version": version, "jars": jars, "fetched_at": time.time()}, indent=1),
            encoding="utf-8",
        )
        os.replace(tmp, marker)
    return libs
