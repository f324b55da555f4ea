"""The consumer loop: the one thread shape of every consumer and poller of the services.

A :class:`ConsumerLoop` runs a thread that polls a confluent-kafka consumer (or, without
one, calls a step function), hands what it read to its component, and keeps going when
one record is bad:

- an exception raised for **one record** is caught at that record and handed to the
  component's ``record_failed`` (quarantine the task, dead-letter the record, or skip it
  with a log line), counted in ``taskstream_loop_record_errors_total``; the loop goes on.
  A component that takes whole batches (``handle_batch``) and raises is handed the same
  batch again record by record (``handle_record``), so the one bad record is isolated and
  the others still apply;
- a fault of the **loop itself** stops it: a fatal client error (a fenced transactional
  producer, a fatal consumer error), a :class:`LoopFault`, or an exception outside the
  per-record calls (``tick``, the poll). The thread ends, :attr:`ConsumerLoop.error`
  keeps the exception and :meth:`ConsumerLoop.health` turns ``failed`` with it;
- a loop made with ``isolate_ticks`` (a periodic sender: heartbeats, log shipping, a
  producer's delivery poll) treats a ``tick`` that raises like a bad record instead: it
  is logged and counted in ``taskstream_loop_tick_errors_total``, and the next tick runs;
  only a loop fault stops it. While every tick has raised for ``stall_after`` seconds its
  health is ``unavailable``, naming the error.

:meth:`ConsumerLoop.run_until` runs the same steps in the calling thread until a
condition holds (``taskstream rebuild`` replays the log this way), so a one-shot replay
isolates a bad record exactly as the live thread does.

Every loop is a :class:`taskstream.infra.health.HealthSource`: ``starting`` until the
component says it has caught up (``ready``), then ``ok``; ``unavailable`` when it has
not advanced for ``stall_after`` seconds while records wait (its lag grows) or while one
call into the component has not returned; ``failed`` when the thread died.

Exceptions::

    LoopFault   raised by a component to stop its loop (the loop cannot go on)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from prometheus_client import Counter, Gauge

from taskstream.infra.health import ComponentStatus, State
from taskstream.infra.kafka import consume_available
from taskstream.infra.logs import fields
from taskstream.schemas.errors import TaskstreamError

__all__ = ["ConsumerLoop", "LoopFault", "OnLoop", "is_loop_fault"]

logger = logging.getLogger(__name__)

RECORDS = Counter(
    "taskstream_loop_records_total", "records a consumer loop handed to its component", ["loop"]
)
RECORD_ERRORS = Counter(
    "taskstream_loop_record_errors_total",
    "records whose handling raised; the loop isolated them and went on",
    ["loop"],
)
TICK_ERRORS = Counter(
    "taskstream_loop_tick_errors_total",
    "periodic steps of a loop (a heartbeat, a log flush, a delivery poll) that raised; "
    "the loop went on",
    ["loop"],
)
LAST_PROGRESS = Gauge(
    "taskstream_loop_last_progress_timestamp_seconds",
    "Unix time a consumer loop last advanced (handled records, or found nothing waiting)",
    ["loop"],
)
LAG = Gauge(
    "taskstream_loop_lag_records",
    "records waiting for a consumer loop: high watermark minus position, assigned partitions",
    ["loop"],
)

_LAG_EVERY = 1.0
"""Seconds between two lag measurements of a loop."""


class LoopFault(TaskstreamError, RuntimeError):
    """Raised by a component when its loop cannot go on (not the fault of one record)."""


def is_loop_fault(exc: BaseException) -> bool:
    """Whether ``exc`` stops a loop rather than being the fault of one record."""
    if not isinstance(exc, Exception) or isinstance(exc, LoopFault):
        return True  # KeyboardInterrupt, SystemExit, a component's LoopFault
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return bool(exc.args[0].fatal())
    return False


class ConsumerLoop:
    """A thread that feeds a component from a consumer (or a step function); a HealthSource.

    ``handle_record(message)`` is called for every message, error messages included
    (partition EOF), unless ``handle_batch(messages)`` is given, which takes the whole
    poll. ``record_failed(message, exc)`` decides what a record that raised means; without
    it the record is logged and skipped. ``tick()`` runs after every poll (the scheduler
    fires what is due); without a consumer it is the loop's whole step. ``setup()`` runs
    first, in the thread (assigning partitions once the topic exists). ``ready()`` says
    the component has caught up (``starting`` until then). ``on_exit(error)`` runs in the
    thread as it ends (``error`` is None after :meth:`stop`).

    Without a consumer, ``interval`` is the wait (cut short by :meth:`stop`) after each
    tick; ``isolate_ticks`` makes a tick that raises a counted, logged error instead of
    the end of the loop (a loop fault still ends it).
    """

    def __init__(
        self,
        name: str,
        *,
        consumer: Consumer | None = None,
        handle_record: Callable[[Message], object] | None = None,
        handle_batch: Callable[[list[Message]], object] | None = None,
        record_failed: Callable[[Message, Exception], None] | None = None,
        tick: Callable[[], object] | None = None,
        setup: Callable[[], None] | None = None,
        ready: Callable[[], bool] | None = None,
        on_exit: Callable[[BaseException | None], None] | None = None,
        poll_timeout: float | Callable[[], float] = 0.1,
        batch_size: int = 1000,
        essential: bool = True,
        stall_after: float = 30.0,
        interval: float = 0.0,
        isolate_ticks: bool = False,
    ) -> None:
        if consumer is not None and handle_record is None and handle_batch is None:
            raise ValueError(f"loop {name!r}: a consumer needs handle_record or handle_batch")
        if consumer is None and tick is None:
            raise ValueError(f"loop {name!r}: without a consumer, tick is the step to run")
        self._name = name
        self._essential = essential
        self.consumer = consumer
        self._handle_record = handle_record
        self._handle_batch = handle_batch
        self._record_failed = record_failed
        self._tick = tick
        self._setup = setup
        self._ready = ready
        self._on_exit = on_exit
        self._poll_timeout = poll_timeout
        self.batch_size = batch_size
        self.stall_after = stall_after
        self._interval = interval
        self._isolate_ticks = isolate_ticks
        self.stopping = threading.Event()
        """Set by :meth:`stop`; components may wait on it instead of sleeping."""
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._error: BaseException | None = None
        self._started = False
        self._progress_at = time.monotonic()
        self._busy_since: float | None = None
        self._lag: int | None = None
        self._lag_at = 0.0
        self._handled = 0
        self._failed = 0
        self._last_failure: str | None = None
        self._tick_failures = 0
        self._last_tick_failure: str | None = None
        self._ticks_failing_since: float | None = None
        self._records = RECORDS.labels(name)
        self._record_errors = RECORD_ERRORS.labels(name)
        self._tick_errors = TICK_ERRORS.labels(name)
        self._last_progress = LAST_PROGRESS.labels(name)
        self._lag_gauge = LAG.labels(name)

    # -- HealthSource -------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def essential(self) -> bool:
        return self._essential

    def health(self) -> ComponentStatus:
        details: dict[str, Any] = {"records": self._handled, "record_errors": self._failed}
        if self._lag is not None:
            details["lag"] = self._lag
        if self._last_failure is not None:
            details["last_record_error"] = self._last_failure
        if self._isolate_ticks:
            details["tick_errors"] = self._tick_failures
            if self._last_tick_failure is not None:
                details["last_tick_error"] = self._last_tick_failure
        if self._error is not None:
            return ComponentStatus(
                State.FAILED, f"{self._name} stopped: {_describe(self._error)}", details
            )
        if not self._started:
            return ComponentStatus(State.STARTING, f"{self._name} has not started", details)
        if not self._thread.is_alive():
            state = State.UNAVAILABLE if self.stopping.is_set() else State.FAILED
            return ComponentStatus(state, f"{self._name} is not running", details)
        now = time.monotonic()
        busy_since = self._busy_since
        if busy_since is not None and now - busy_since > self.stall_after:
            return ComponentStatus(
                State.UNAVAILABLE,
                f"{self._name} is stuck: one call has not returned for {now - busy_since:.0f}s",
                details,
            )
        failing_since = self._ticks_failing_since
        if failing_since is not None and now - failing_since > self.stall_after:
            return ComponentStatus(
                State.UNAVAILABLE,
                f"{self._name}: every step for {now - failing_since:.0f}s raised; "
                f"the last: {self._last_tick_failure}",
                details,
            )
        idle = now - self._progress_at
        if self._lag and idle > self.stall_after:
            return ComponentStatus(
                State.UNAVAILABLE,
                f"{self._name} has not advanced for {idle:.0f}s while {self._lag} records wait",
                details,
            )
        if self._ready is not None and not self._ready():
            return ComponentStatus(State.STARTING, f"{self._name} is catching up", details)
        return ComponentStatus(State.OK, None, details)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self._started = True
        self._progress_at = time.monotonic()
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the thread to stop and wait for it (the caller closes the consumer)."""
        self.stopping.set()
        if self._started:
            self._thread.join(timeout)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def error(self) -> BaseException | None:
        """The exception that stopped the loop, if one did."""
        return self._error

    @property
    def record_errors(self) -> int:
        return self._failed

    def run_until(self, done: Callable[[], bool], timeout: float) -> None:
        """Run the loop's steps in the calling thread until ``done()`` is true.

        For a one-shot replay (``taskstream rebuild``): the records are handled and
        isolated exactly as :meth:`start`'s thread would; a fault of the loop is raised
        here, and :class:`TimeoutError` once ``timeout`` seconds have passed.
        """
        deadline = time.monotonic() + timeout
        if self._setup is not None:
            self._setup()
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self._name}: not done in {timeout:.0f}s")
            self._step()

    # -- the loop ---------------------------------------------------------------------

    def _run(self) -> None:
        error: BaseException | None = None
        try:
            if self._setup is not None:
                self._setup()
            while not self.stopping.is_set():
                self._step()
        except BaseException as exc:
            error = self._error = exc
            logger.exception("%s stopped", self._name, extra=fields(action="loop_failed"))
        finally:
            if self._on_exit is not None:
                try:
                    self._on_exit(error)
                except Exception:
                    logger.exception("%s: on_exit raised", self._name)

    def _step(self) -> None:
        consumer = self.consumer
        if consumer is not None:
            timeout = self._poll_timeout
            wait = timeout() if callable(timeout) else timeout
            messages = consume_available(consumer, self.batch_size, wait)
            for message in messages:
                error = message.error()
                if error is not None and error.fatal():
                    raise KafkaException(error)
            if messages:
                self._deliver(messages)
            self._measure_lag(consumer, bool(messages))
        if self._tick is not None:
            if self._run_tick() and consumer is None:
                self._advanced()
            if consumer is None and self._interval > 0:
                self.stopping.wait(self._interval)

    def _run_tick(self) -> bool:
        """Call ``tick``; False if it raised and the loop isolates ticks."""
        assert self._tick is not None
        self._busy_since = time.monotonic()
        try:
            self._tick()
        except Exception as exc:
            if not self._isolate_ticks or is_loop_fault(exc):
                raise
            self._tick_failures += 1
            self._tick_errors.inc()
            self._last_tick_failure = _describe(exc)
            if self._ticks_failing_since is None:
                self._ticks_failing_since = time.monotonic()
            logger.error(
                "%s: a step raised %s; going on",
                self._name,
                _describe(exc),
                exc_info=exc,
                extra=fields(action="step_failed"),
            )
            return False
        finally:
            self._busy_since = None
        self._ticks_failing_since = None
        return True

    def _deliver(self, messages: list[Message]) -> None:
        self._busy_since = time.monotonic()
        try:
            if self._handle_batch is not None:
                try:
                    self._handle_batch(messages)
                except Exception as exc:
                    if is_loop_fault(exc) or self._handle_record is None:
                        raise
                    logger.warning(
                        "%s: a batch of %d records raised %s; handling them one by one",
                        self._name,
                        len(messages),
                        _describe(exc),
                    )
                    self._each(messages)
            else:
                self._each(messages)
        finally:
            self._busy_since = None
        records = sum(1 for message in messages if message.error() is None)
        self._handled += records
        self._records.inc(records)
        self._advanced()

    def _each(self, messages: Sequence[Message]) -> None:
        assert self._handle_record is not None
        for message in messages:
            try:
                self._handle_record(message)
            except Exception as exc:
                if is_loop_fault(exc):
                    raise
                self._isolate(message, exc)

    def _isolate(self, message: Message, exc: Exception) -> None:
        self._failed += 1
        self._record_errors.inc()
        where = f"{message.topic()}[{message.partition()}]@{message.offset()}"
        self._last_failure = f"{where}: {_describe(exc)}"
        if self._record_failed is None:
            logger.error(
                "%s: skipping a record that raised %s",
                self._name,
                _describe(exc),
                exc_info=exc,
                extra=fields(
                    topic=message.topic(),
                    partition=message.partition(),
                    offset=message.offset(),
                    action="record_skipped",
                ),
            )
            return
        self._record_failed(message, exc)  # raising here is a fault of the loop

    def _advanced(self) -> None:
        self._progress_at = time.monotonic()
        self._last_progress.set(time.time())

    def _measure_lag(self, consumer: Consumer, handled: bool) -> None:
        now = time.monotonic()
        if now - self._lag_at < _LAG_EVERY:
            return
        self._lag_at = now
        lag = 0
        try:
            for tp in consumer.position(consumer.assignment()):
                if tp.offset < 0:
                    continue  # nothing consumed there yet: unknown, not lagging
                _, high = consumer.get_watermark_offsets(
                    TopicPartition(tp.topic, tp.partition), cached=True
                )
                if high >= 0:
                    lag += max(high - tp.offset, 0)
        except KafkaException as exc:
            if is_loop_fault(exc):
                raise
            return  # not measurable now (a rebalance): keep the last figure
        self._lag = lag
        self._lag_gauge.set(lag)
        if lag == 0 and not handled:
            self._advanced()  # nothing waits: an idle loop is not a stalled one


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class OnLoop:
    """A component whose thread is a :class:`ConsumerLoop` (``self._loop``): its
    ``health()`` (a HealthSource with the component's own ``name`` and ``essential``),
    ``alive`` and ``error`` are the loop's."""

    _loop: ConsumerLoop

    def health(self) -> ComponentStatus:
        return self._loop.health()

    @property
    def alive(self) -> bool:
        return self._loop.alive

    @property
    def error(self) -> BaseException | None:
        """The exception that stopped the loop, if one did."""
        return self._loop.error
