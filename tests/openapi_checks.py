"""Checks both services' OpenAPI documents and ``/docs`` pages pass (core and monitor)."""

from __future__ import annotations

import re
from typing import Any

import httpx
from openapi_spec_validator import validate

__all__ = ["check_docs_work_offline", "check_openapi_document"]

_LOCAL = re.compile(r'(?:src|href)="([^"]+)"')


def check_openapi_document(document: dict[str, Any], *, open_paths: set[str]) -> None:
    """Valid OpenAPI 3.1; every JSON 2xx answer has a schema; every operation not in
    ``open_paths`` takes the bearer scheme (or none, when no tokens are set)."""
    validate(document)
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    undescribed = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                body = answer.get("content", {}).get("application/json")
                if status.startswith("2") and body is not None and "schema" not in body:
                    undescribed.append(f"{method.upper()} {path} {status}")
            if path not in open_paths and path.startswith("/api/"):
                assert operation.get("security") == [{"bearer": []}, {}], (method, path)
    assert undescribed == [], "answers without a schema"


def check_docs_work_offline(base_url: str, headers: dict[str, str] | None = None) -> None:
    """``/docs`` loads only files of the service itself, and each of them answers 200."""
    page = httpx.get(f"{base_url}/docs", timeout=10, headers=headers)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "SwaggerUIBundle" in page.text
    referenced = _LOCAL.findall(page.text) + re.findall(r"url: '([^']+)'", page.text)
    assert referenced, page.text
    for url in referenced:
        assert url.startswith("/"), f"/docs loads {url} from elsewhere: it would need internet"
        answer = httpx.get(f"{base_url}{url}", timeout=10, headers=headers)
        assert answer.status_code == 200, (url, answer.status_code)
        assert answer.content, url
