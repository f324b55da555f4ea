"""The one exception tree: every error taskstream raises descends from ``TaskstreamError``.

It lives here, in the lowest layer, so that every package can raise under it. Classes
that also mean a builtin error keep that base too (``except ValueError`` still catches a
``SchemaError``). ``tests/unit/test_error_tree.py`` checks that this drawing and the
code agree, and that no exception class of taskstream is outside the tree. The right
column is each class's module under ``taskstream.``.

TaskstreamError                                  schemas.errors
 ├── SchemaError (ValueError)                    schemas.errors
 │    ├── DurationError                          schemas.errors
 │    ├── CronError                              schemas.errors
 │    ├── ScheduleError                          schemas.errors
 │    ├── UnknownEventTypeError                  schemas.errors
 │    └── EventDecodeError                       schemas.errors
 ├── HandlerError                                handlers.base
 │    ├── PermanentError                         handlers.base
 │    │    └── InvalidParamsError                handlers.params
 │    ├── RetryableError                         handlers.base
 │    └── HandlerTimeoutError (TimeoutError)     handlers.base
 ├── UnknownHandlerError (LookupError)           handlers.registry
 ├── Invalid (ValueError)                        handlers.params
 ├── BadJson (ValueError)                        infra.strict_json
 ├── CallTimedOut (TimeoutError)                 infra.bounded_call
 ├── LoopFault (RuntimeError)                    infra.consumer_loop
 ├── InsecureConfigurationError (RuntimeError)   infra.security
 ├── KafkaDistributionError (RuntimeError)       dev_broker.kafka_jars
 ├── KafkaStartError (RuntimeError)              dev_broker.local_kafka
 ├── EventTooLarge (ValueError)                  core.event_size
 ├── Refusal                                     core.refusals
 ├── PublishError (RuntimeError)                 core.publisher
 ├── RebuildError                                core.rebuild
 ├── PublisherClosedError (RuntimeError)         executor.publisher
 ├── WriteUnconfirmed                            monitor.confirmed_table
 ├── Refusal                                     monitor.http_errors
 ├── ReadOnlyRuleError                           monitor.alerts.book
 ├── AlertConfigError (ValueError)               monitor.alerts.config
 ├── RuleError (ValueError)                      monitor.alerts.rules
 ├── ChannelError                                monitor.alerts.channels
 ├── ClientError                                 client.errors
 │    ├── ArgumentError (ValueError)             client.errors
 │    ├── ServiceUnreachable (ConnectionError)   client.errors
 │    ├── UnexpectedAnswer                       client.errors
 │    └── RequestRefused                         client.errors
 │         ├── BadRequest                        client.errors
 │         ├── Unauthorized                      client.errors
 │         ├── NotFound                          client.errors
 │         ├── Conflict                          client.errors
 │         ├── PayloadTooLarge                   client.errors
 │         ├── ValidationFailed                  client.errors
 │         └── ServiceUnavailable                client.errors
 └── ScheduleArgumentError (ValueError)          cli.schedule_syntax

Each class's docstring says what it means. Private classes (a name with a leading
underscore: refusals and stops used inside one module) are in the tree too, not drawn.
"""

from __future__ import annotations

__all__ = [
    "CronError",
    "DurationError",
    "EventDecodeError",
    "ScheduleError",
    "SchemaError",
    "TaskstreamError",
    "UnknownEventTypeError",
]


class TaskstreamError(Exception):
    """The root of every error taskstream raises (the tree is in this module's docstring)."""


class SchemaError(TaskstreamError, ValueError):
    """Base class of every error in :mod:`taskstream.schemas`."""


class DurationError(SchemaError):
    """A duration string could not be parsed."""


class CronError(SchemaError):
    """A cron expression that cronsim, the scheduler's evaluator, cannot read."""


class ScheduleError(SchemaError):
    """A schedule that is well formed but cannot be admitted now (see
    :func:`taskstream.schemas.schedules.check_schedule`); ``field`` names the part at fault."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class UnknownEventTypeError(SchemaError):
    """An event names a type (or version) this code does not know."""


class EventDecodeError(SchemaError):
    """Bytes read from a topic are not a valid event; ``raw`` keeps them for a dead letter."""

    def __init__(self, message: str, raw: bytes) -> None:
        super().__init__(message)
        self.raw = raw
