"""How the command line shows things: tasks as a table or as lines, JSON, notes on stderr.

Results go to stdout; notes, warnings and errors to stderr, each line starting
``taskstream: ``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

__all__ = [
    "as_help",
    "describe_task",
    "format_schedule",
    "format_table",
    "note",
    "print_json",
    "table",
]


def format_schedule(schedule: Any) -> str:
    """``every 30s``, ``at 2030-...``, or the cron expression (with a non-UTC zone)."""
    if not isinstance(schedule, Mapping):
        return "-" if schedule is None else str(schedule)
    if schedule.get("cron"):
        zone = schedule.get("timezone")
        return f"{schedule['cron']} ({zone})" if zone and zone != "UTC" else str(schedule["cron"])
    if schedule.get("every"):
        return f"every {schedule['every']}"
    if schedule.get("at"):
        return f"at {schedule['at']}"
    return "-"


_COLUMNS = ("ID", "NAME", "SCHEDULE", "HANDLER", "STATUS", "VERSION", "LAST STATUS")


def _row(task: Mapping[str, Any]) -> list[Any]:
    return [
        task.get("id"),
        task.get("name"),
        format_schedule(task.get("schedule")),
        task.get("handler"),
        task.get("status"),
        task.get("version"),
        task.get("last_status"),
    ]


def table(rows: Sequence[Sequence[Any]]) -> str:
    """Rows (the first: the headings) one per line, columns padded to their widest cell;
    a missing cell (None) is ``-``."""
    cells = [["-" if cell is None else " ".join(str(cell).split()) for cell in row] for row in rows]
    widths = [max(len(row[column]) for row in cells) for column in range(len(cells[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )


def format_table(tasks: Sequence[Mapping[str, Any]]) -> str:
    """A plain table of tasks, one per line."""
    return table([_COLUMNS, *(_row(task) for task in tasks)])


def describe_task(task: Mapping[str, Any]) -> list[str]:
    """A task as ``label  value`` lines for people (fields the API did not send are left out)."""
    retry, counts = _mapping(task.get("retry")), _mapping(task.get("executions"))
    fields = [
        ("id", task.get("id")),
        ("name", task.get("name")),
        ("status", task.get("status")),
        ("version", task.get("version")),
        ("schedule", format_schedule(task.get("schedule")) if task.get("schedule") else None),
        ("handler", task.get("handler")),
        ("params", json.dumps(task["params"]) if "params" in task else None),
        ("priority", task.get("priority")),
        ("queue", task.get("queue")),
        ("timeout", task.get("timeout")),
        ("attempts", retry.get("max_attempts")),
        ("misfire", task.get("misfire")),
        ("overlap", task.get("overlap")),
        ("created", task.get("created_at")),
        ("updated", task.get("updated_at")),
        ("last slot", task.get("last_scheduled_for")),
        ("last run", _last_run(task)),
        ("executions", ", ".join(f"{key} {value}" for key, value in counts.items()) or None),
    ]
    return [f"{label:<11} {value}" for label, value in fields if value is not None]


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _last_run(task: Mapping[str, Any]) -> str | None:
    status, execution = task.get("last_status"), task.get("last_execution_id")
    if status is None and execution is None:
        return None
    return f"{status or '-'} ({execution})" if execution else str(status)


def note(message: str) -> None:
    """A line for people on stderr."""
    print(f"taskstream: {message}", file=sys.stderr)


def print_json(document: BaseModel | Sequence[BaseModel] | Mapping[str, Any]) -> None:
    """A model (or a list of them) as indented JSON on stdout."""
    if isinstance(document, BaseModel):
        value: Any = document.model_dump(mode="json")
    elif isinstance(document, Mapping):
        value = dict(document)
    else:
        value = [item.model_dump(mode="json") for item in document]
    print(json.dumps(value, indent=2, ensure_ascii=False))


def as_help(text: str | None) -> str:
    """A module docstring as a command's help, its lines kept as written (click rewraps a
    paragraph unless it starts with a ``\\b`` line)."""
    paragraphs = (text or "").strip().split("\n\n")
    return "\n\n".join("\b\n" + paragraph for paragraph in paragraphs)
