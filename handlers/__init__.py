"""The ``TaskHandler`` SDK and the built-in handlers."""

from taskstream.handlers.base import (
    HandlerEnvironment,
    HandlerError,
    HandlerTimeoutError,
    PermanentError,
    RetryableError,
    TaskContext,
    TaskHandler,
    TaskResult,
)
from taskstream.handlers.params import HandlerParams, Invalid, InvalidParamsError
from taskstream.handlers.registry import ENTRY_POINT_GROUP, HandlerRegistry, UnknownHandlerError

__all__ = [
    "ENTRY_POINT_GROUP",
    "HandlerEnvironment",
    "HandlerError",
    "HandlerParams",
    "HandlerRegistry",
    "HandlerTimeoutError",
    "Invalid",
    "InvalidParamsError",
    "PermanentError",
    "RetryableError",
    "TaskContext",
    "TaskHandler",
    "TaskResult",
    "UnknownHandlerError",
]
