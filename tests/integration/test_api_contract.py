"""Schemathesis against the core's ``/openapi.json``, on a real core over the real broker.

Stateless: every operation, with valid and invalid inputs, checked for zero server errors
and conformance (the status is documented, content type, headers, response schema).
Stateful: chains along the OpenAPI links (create -> get / patch / status / delete ...).
Bounded: a few dozen examples per operation and no per-example deadline, about a minute.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.checks import CheckFunction, positive_data_acceptance
from schemathesis.core.transport import Response
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.schemas import OpenApiSchema

from tests.integration.core_api import core_runtime, served
from tests.openapi_checks import check_docs_work_offline, check_openapi_document

pytestmark = pytest.mark.kafka

_SETTINGS = hypothesis.settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],
)


@pytest.fixture(scope="module")
def core_url(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    prefix = f"contract-{uuid.uuid4().hex[:8]}."
    workdir: Path = tmp_path_factory.mktemp("contract")
    with core_runtime(kafka_bootstrap, prefix, workdir) as runtime, served(runtime) as client:
        yield str(client.base_url).rstrip("/")


@pytest.fixture(scope="module")
def core_schema(core_url: str) -> OpenApiSchema:
    return schemathesis.openapi.from_url(f"{core_url}/openapi.json")


_TASK_BODIES = {
    "POST /api/tasks",
    "POST /api/tasks/batch",
    "PUT /api/tasks/{task_id}",
    "PATCH /api/tasks/{task_id}",
    "POST /api/schedules/preview",
}
"""Task bodies (create, replace, patch) and schedules hold rules JSON Schema cannot state:
exactly one of cron, every or at, a cron expression that fires, an ``at`` after now, a
registered handler. Schema-valid bodies that
break them are rightly 422, so "schema-valid request rejected" is not checked there; every
other check (no 5xx, documented status, content type, schemas) is."""


_NO_INPUT = {"GET /health", "GET /ready", "GET /api/handlers"}
"""Operations without any input, which have no invalid request to send."""


def _excluded(case: schemathesis.Case) -> list[CheckFunction]:
    return [positive_data_acceptance] if case.operation.label in _TASK_BODIES else []


def _operations(schema: OpenApiSchema) -> list[APIOperation]:
    return [result.ok() for result in schema.get_all_operations()]


# schemathesis' pytest plugin (from_fixture / parametrize) does not run under pytest 9
# (it sets Function._nodeid); the operations are driven with Hypothesis directly instead.
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_answers_within_its_contract(
    core_schema: OpenApiSchema, mode: GenerationMode
) -> None:
    operations = _operations(core_schema)
    assert len(operations) >= 10, [op.label for op in operations]
    nothing_to_break: list[str] = []
    for operation in operations:

        @hypothesis.given(case=operation.as_strategy(mode))
        @_SETTINGS
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(excluded_checks=_excluded(case))

        try:
            check()
        except hypothesis.errors.Unsatisfiable:  # no parameter or body to make invalid
            nothing_to_break.append(operation.label)
    assert set(nothing_to_break) <= _NO_INPUT, nothing_to_break


def test_chains_of_calls_along_the_links_keep_the_contract(core_schema: OpenApiSchema) -> None:
    machine = core_schema.as_state_machine()
    assert machine.bundles, "no OpenAPI links: the stateful phase would test nothing"

    class Chains(machine):  # type: ignore[valid-type,misc]
        def validate_response(
            self,
            response: Response,
            case: schemathesis.Case,
            additional_checks: list[CheckFunction] | None = None,
            **kwargs: Any,
        ) -> None:
            case.validate_response(
                response,
                additional_checks=additional_checks,
                excluded_checks=_excluded(case),
                transport_kwargs=kwargs or None,
                recorder=self.recorder,
            )

    Chains.run(
        settings=hypothesis.settings(
            _SETTINGS, max_examples=25, stateful_step_count=6, phases=[Phase.generate]
        )
    )


def test_the_document_is_valid_and_describes_every_answer(core_url: str) -> None:
    document = httpx.get(f"{core_url}/openapi.json", timeout=10).json()
    check_openapi_document(document, open_paths=set())
    task = document["paths"]["/api/tasks/{task_id}"]["get"]["responses"]["200"]
    assert task["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Task"}
    batch = document["paths"]["/api/tasks/batch"]["post"]
    assert batch["requestBody"]["content"]["application/json"]["schema"]["type"] == "array"


def test_the_docs_page_works_offline(core_url: str) -> None:
    check_docs_work_offline(core_url)
