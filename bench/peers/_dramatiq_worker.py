"""The Dramatiq broker and actor the workers of ``dramatiq_noop.py`` run
(``dramatiq _dramatiq_worker``).

It reads the broker URL from ``BENCH_REDIS_URL``; default middleware, no result backend.
The actor's body only counts itself (see ``_common.Completions``).
"""

from __future__ import annotations

import os
from typing import Any

import dramatiq
from _common import URL_ENV, Completions, mark_ready
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Middleware


class _Ready(Middleware):
    def after_worker_boot(self, broker: Any, worker: Any) -> None:
        mark_ready(f"dramatiq-{os.getpid()}")


broker = RedisBroker(url=os.environ[URL_ENV])  # type: ignore[no-untyped-call]
broker.add_middleware(_Ready())
dramatiq.set_broker(broker)
completions = Completions()


@dramatiq.actor(actor_name="noop", max_retries=0)
def noop() -> None:
    completions.record()
