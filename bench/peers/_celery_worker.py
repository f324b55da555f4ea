"""The Celery app the workers of ``celery_noop.py`` run (``celery -A _celery_worker worker``).

It reads the broker URL from ``BENCH_REDIS_URL`` and the prefetch multiplier from
``BENCH_CELERY_PREFETCH``; no result backend (results ignored), as for a fire-and-forget
no-op. The task body only counts itself (see ``_common.Completions``).
"""

from __future__ import annotations

import os
from typing import Any

from _common import URL_ENV, Completions, mark_ready
from celery import Celery  # type: ignore[import-untyped]
from celery.signals import worker_ready  # type: ignore[import-untyped]

app = Celery("bench", broker=os.environ[URL_ENV])
app.conf.update(
    task_ignore_result=True,
    worker_prefetch_multiplier=int(os.environ.get("BENCH_CELERY_PREFETCH", "4")),
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)
completions = Completions()


@app.task(name="bench.noop")  # type: ignore[untyped-decorator]
def noop() -> None:
    completions.record()


@worker_ready.connect  # type: ignore[untyped-decorator]
def _ready(sender: Any = None, **kwargs: Any) -> None:
    mark_ready(f"celery-{os.getpid()}")
