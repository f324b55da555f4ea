"""The monitor's OpenAPI document lists exactly the routes its web server serves."""

from __future__ import annotations

import asyncio
import re

from taskstream.monitor.app import create_app
from taskstream.monitor.openapi import OPERATIONS, openapi_document
from taskstream.monitor.security import OPEN_PATHS, OPEN_PREFIXES
from taskstream.monitor.settings import MonitorSettings
from tests.openapi_checks import check_openapi_document


def _served() -> set[tuple[str, str]]:
    async def routes() -> set[tuple[str, str]]:
        app = create_app(MonitorSettings(topic_prefix="openapi-test."))
        app.web.init_server()
        return {
            (route.method.lower(), route.resource.canonical)
            for route in app.web.web_app.router.routes()
            if route.resource is not None
        }

    return asyncio.run(routes())


def test_every_served_route_is_documented_and_every_documented_one_served() -> None:
    served = _served()
    document = openapi_document()
    documented = {
        (method, path) for path, methods in document["paths"].items() for method in methods
    }
    assert {route for route in served if route[0] != "head"} == documented
    # aiohttp serves HEAD wherever GET is served (the document says so once)
    assert {path for method, path in served if method == "head"} == {
        path for method, path in served if method == "get"
    }


def test_every_operation_documents_its_errors_in_the_one_shape() -> None:
    document = openapi_document()
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            responses = operation["responses"]
            assert "405" in responses, (method, path)
            is_open = path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)
            assert ("401" in responses) is not is_open, (method, path)
            for status, answer in responses.items():
                if int(status) >= 400 and path not in ("/health", "/ready"):
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (path, status)
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    assert "{" + parameter["name"] + "}" in path


def test_the_rule_body_is_generated_from_the_rule_models() -> None:
    schemas = openapi_document()["components"]["schemas"]
    body = schemas["RuleBody"]
    kinds = set(body["discriminator"]["mapping"])
    assert kinds == {
        "consecutive_failures",
        "failure_rate",
        "long_run",
        "missed_schedule",
        "executor_lost",
        "dead_letter",
        "task_quarantined",
    }
    failure_rate = schemas["FailureRateRule"]
    assert failure_rate["required"] == ["kind", "threshold"], "the id comes from the URL"
    assert re.fullmatch(failure_rate["properties"]["window"]["pattern"], "1h")
    assert failure_rate["properties"]["window"]["default"] == "1h"


def test_operation_ids_are_unique() -> None:
    ids = [operation.operation_id for operation in OPERATIONS]
    assert len(ids) == len(set(ids))


def test_the_document_is_valid_openapi_and_describes_every_answer() -> None:
    check_openapi_document(openapi_document(), open_paths=set())
