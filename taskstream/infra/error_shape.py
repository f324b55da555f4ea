"""The one error shape every service's HTTP API answers, as JSON Schema for OpenAPI.

``{"error": <a stable code>, "message": <what was wrong and how to fix it>, ...}``;
a refused field or parameter is also named in ``errors`` (``field``, ``message``,
``type``). The core (FastAPI) and the monitor (aiohttp) document their errors with it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ERROR_SCHEMA"]

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "a stable code, e.g. validation_failed"},
        "message": {"type": "string", "description": "what was wrong and how to fix it"},
        "errors": {
            "type": "array",
            "description": "one entry per bad field (422)",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": "string"},
                    "message": {"type": "string"},
                    "type": {"type": ["string", "null"]},
                },
            },
        },
    },
    "additionalProperties": True,
}
