"""Child processes that never outlive their parent, and free loopback ports."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO

__all__ = ["die_with_parent", "free_port", "spawn_tied_to_interpreter"]

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGTERM the child when its parent dies.

    Linux ties this to the parent *thread*: start children from a thread that lives as
    long as they should (the main thread). Returns None where ``prctl`` is missing.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent_pid = os.getpid()
    sigterm = int(signal.SIGTERM)

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, sigterm, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl() took effect
            os._exit(1)

    return preexec


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


_spawner: ThreadPoolExecutor | None = None
_spawner_lock = threading.Lock()


def spawn_tied_to_interpreter(
    cmd: list[str],
    cwd: Path | None,
    stdout: int | IO[bytes],
    new_session: bool,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` (stderr merged into ``stdout``) so that it dies with this interpreter.

    Linux sends the death signal when the *thread* that forked the child ends,
    not the process. Forking from the caller's thread would kill the broker as
    soon as a short-lived thread that called ``start()`` (``asyncio.to_thread``,
    a worker pool...) exits, so children are forked by one helper thread that
    lives as long as the interpreter.
    """
    global _spawner

    def popen() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            cmd,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
            preexec_fn=die_with_parent(),
            env=env,
            close_fds=True,
        )

    with _spawner_lock:
        if _spawner is None:
            _spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="child-spawner")
        spawner = _spawner
    return spawner.submit(popen).result()
