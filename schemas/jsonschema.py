"""JSON Schema for non-Python consumers, generated from the models.

``python -m taskstream.schemas.jsonschema`` rewrites the files under ``schemas/json/``; a test
fails when the checked-in files drift from the models.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from taskstream.schemas.alerts import AlertNotification
from taskstream.schemas.events import EVENT_TYPES, EventData
from taskstream.schemas.execution_log import ExecutionLogChunk
from taskstream.schemas.task import TaskSpec
from taskstream.schemas.work_order import WorkOrder, WorkOrderV1
from taskstream.schemas.workers import WorkerHeartbeat

__all__ = ["SCHEMA_DIR", "build_schemas", "render", "write_schemas"]

SCHEMA_DIR = Path(__file__).parent / "json"
_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_BASE_ID = "https://taskstream.dev/schemas/"


def _model_schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema(mode="serialization", ref_template="#/$defs/{model}")


def _event_schema(data_type: type[EventData]) -> dict[str, Any]:
    data = _model_schema(data_type)
    defs = data.pop("$defs", {})
    schema: dict[str, Any] = {
        "$schema": _DIALECT,
        "$id": f"{_BASE_ID}events/{data_type.TYPE}.v{data_type.VERSION}.json",
        "title": f"{data_type.TYPE} v{data_type.VERSION}",
        "description": (data_type.__doc__ or "").strip(),
        "type": "object",
        "additionalProperties": False,
        "required": ["id", "type", "version", "task_id", "occurred_at", "data"],
        "properties": {
            "id": {"type": "string", "description": "unique event id (UUID)"},
            "type": {"const": data_type.TYPE},
            "version": {"const": data_type.VERSION},
            "task_id": {"type": "string", "description": "the task, also the record key"},
            "occurred_at": {"type": "string", "format": "date-time"},
            "data": data,
        },
    }
    if defs:
        schema["$defs"] = defs
    return schema


def _document_schema(model: type[BaseModel], name: str) -> dict[str, Any]:
    schema = _model_schema(model)
    return {"$schema": _DIALECT, "$id": f"{_BASE_ID}{name}", **schema}


def build_schemas() -> dict[str, dict[str, Any]]:
    """Every schema document, keyed by its file name."""
    documents = {
        f"events/{data_type.TYPE}.v{data_type.VERSION}.json": _event_schema(data_type)
        for (_, _), data_type in sorted(EVENT_TYPES.items())
    }
    documents["task.json"] = _document_schema(TaskSpec, "task.json")
    for order in (WorkOrderV1, WorkOrder):  # v1 as published, beside the current one
        name = f"work-order.v{order.VERSION}.json"
        documents[name] = _document_schema(order, name)
    documents[f"execution-log-chunk.v{ExecutionLogChunk.VERSION}.json"] = _document_schema(
        ExecutionLogChunk, f"execution-log-chunk.v{ExecutionLogChunk.VERSION}.json"
    )
    documents[f"worker-heartbeat.v{WorkerHeartbeat.VERSION}.json"] = _document_schema(
        WorkerHeartbeat, f"worker-heartbeat.v{WorkerHeartbeat.VERSION}.json"
    )
    documents[f"alert-notification.v{AlertNotification.VERSION}.json"] = _document_schema(
        AlertNotification, f"alert-notification.v{AlertNotification.VERSION}.json"
    )
    return documents


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    written = []
    for name, schema in build_schemas().items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(schema))
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_schemas(Path(sys.argv[1]) if len(sys.argv) > 1 else SCHEMA_DIR):
        print(path)
