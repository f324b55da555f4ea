"""Running one work order's handler, with its deadline, and classifying the outcome."""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

import orjson

from handlers import HandlerRegistry, PermanentError, TaskContext, TaskResult, UnknownHandlerError
from schemas import WorkOrder

__all__ = ["HandlerRunner", "Outcome"]

_handler_logger = logging.getLogger("taskstream.handler")


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a run ended: ``error_type`` is None on success."""

    duration: float
    output: Any = None
    error_type: str | None = None
    error_message: str = ""
    retryable: bool = True

    @property
    def succeeded(self) -> bool:
        return self.error_type is None


class HandlerRunner:
    """Runs handlers: sync ones on a worker thread, async ones on an event loop."""

    def __init__(self, registry: HandlerRegistry, default_timeout: float) -> None:
        self.registry = registry
        self.default_timeout = default_timeout
        self._threads = ThreadPoolExecutor(max_workers=4, thread_name_prefix="handler")

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)

    def run(self, order: WorkOrder) -> Outcome:
        started = time.monotonic()
        timeout = order.timeout.total_seconds() if order.timeout else self.default_timeout
        try:
            handler_class = self.registry.resolve(order.handler)
        except UnknownHandlerError as exc:
            return Outcome(
                0.0, error_type="UnknownHandlerError", error_message=str(exc), retryable=False
            )
        cancelled = threading.Event()
        ctx = TaskContext(
            task_id=order.task_id,
            task_name=order.task_name,
            execution_id=order.execution_id,
            attempt=order.attempt,
            scheduled_for=order.scheduled_for,
            params=dict(order.params),
            deadline=started + timeout,
            cancelled=cancelled,
            logger=logging.LoggerAdapter(
                _handler_logger,
                {
                    "taskstream_fields": {
                        "task_id": order.task_id,
                        "execution_id": order.execution_id,
                    }
                },
            ),
        )
        try:
            handler = handler_class()
            if inspect.iscoroutinefunction(handler.run):
                result = asyncio.run(asyncio.wait_for(handler.run(ctx), timeout))
            else:
                result = self._threads.submit(handler.run, ctx).result(timeout)
        except (TimeoutError, FutureTimeout):
            cancelled.set()
            return Outcome(
                time.monotonic() - started,
                error_type="TimeoutError",
                error_message=f"handler ran past its timeout of {timeout:g}s",
            )
        except PermanentError as exc:
            return Outcome(
                time.monotonic() - started,
                error_type=type(exc).__name__,
                error_message=str(exc),
                retryable=False,
            )
        except Exception as exc:
            return Outcome(
                time.monotonic() - started,
                error_type=type(exc).__name__,
                error_message=str(exc) or repr(exc),
            )
        return Outcome(time.monotonic() - started, output=_json_output(result))


def _json_output(result: Any) -> Any:
    value = result.output if isinstance(result, TaskResult) else result
    try:
        orjson.dumps(value)
    except TypeError:
        return repr(value)
    return value
