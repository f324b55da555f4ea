"""Schemathesis against the monitor's ``/openapi.json``, on a real monitor over the broker.

Stateless: every operation, with valid and invalid inputs, checked for zero server errors
and conformance (the status is documented, content type, headers, response schema).
Stateful: chains along the OpenAPI links (put a rule -> get it / delete it).
Both without tokens and with one (sent as ``Authorization: Bearer``). Bounded: a few
dozen examples per operation and no per-example deadline, about a minute each.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.checks import CheckFunction, positive_data_acceptance
from schemathesis.core.transport import Response
from schemathesis.specs.openapi.schemas import OpenApiSchema

from tests.e2e.stack import running_stack
from tests.openapi_checks import check_docs_work_offline, check_openapi_document
from tests.support import eventually

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

TOKEN = "monitor-contract-token"

_SETTINGS = hypothesis.settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],
)

_RULE_BODY = {"PUT /api/alerts/rules/{rule_id}"}
"""A rule body holds rules JSON Schema does not state: the body's ``id`` must be the
URL's, channels are named once, durations have lower bounds (throttle >= 1s). Schema-valid
bodies that break them are rightly 422, so "schema-valid request rejected" is not checked
there; every other check (no 5xx, documented status, content type, schemas) is."""

_NO_INPUT = {
    "GET /health",
    "GET /ready",
    "GET /metrics",
    "GET /openapi.json",
    "GET /api/alerts",
    "GET /api/alerts/rules",
    "GET /api/monitor/health",
    "GET /dashboard",
    "GET /",
    "GET /api/monitor/tasks/{task_id}/stats",
    "GET /dashboard/{asset}",
    "GET /docs",
    "GET /docs/assets/{name}",
}
"""Operations without any input, or whose only input is a path segment that may be any
non-empty string: they have no invalid request to send."""


@pytest.fixture(scope="module", params=["open", "token"])
def monitor(
    request: pytest.FixtureRequest,
    kafka_bootstrap: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, dict[str, str]]]:
    prefix = f"monitor-contract-{uuid.uuid4().hex[:8]}."
    workdir = tmp_path_factory.mktemp("monitor-contract")
    settings = {"TASKSTREAM_MONITOR_TOKENS": TOKEN} if request.param == "token" else {}
    headers = {"Authorization": f"Bearer {TOKEN}"} if request.param == "token" else {}
    with running_stack(kafka_bootstrap, prefix, workdir, names=("monitor",), **settings) as stack:
        eventually(
            lambda: httpx.get(f"{stack.monitor}/ready", timeout=5).status_code == 200,
            timeout=60,
            interval=0.5,
            what=lambda: f"the monitor to be ready\n{stack.logs()}",
        )
        yield stack.monitor, headers


def _schema(url: str) -> OpenApiSchema:
    return schemathesis.openapi.from_url(f"{url}/openapi.json")


def _delete_api_rules(url: str, headers: dict[str, str]) -> None:
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        listed = client.get("/api/alerts/rules")
        assert listed.status_code == 200, listed.text
        for rule in listed.json()["items"]:
            if rule["source"] == "api":
                deleted = client.delete(f"/api/alerts/rules/{rule['id']}")
                assert deleted.status_code == 204, deleted.text


def _excluded(case: schemathesis.Case) -> list[CheckFunction]:
    return [positive_data_acceptance] if case.operation.label in _RULE_BODY else []


# schemathesis' pytest plugin (from_fixture / parametrize) does not run under pytest 9
# (it sets Function._nodeid); the operations are driven with Hypothesis directly instead.
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_answers_within_its_contract(
    monitor: tuple[str, dict[str, str]], mode: GenerationMode
) -> None:
    url, headers = monitor
    operations = [result.ok() for result in _schema(url).get_all_operations()]
    assert len(operations) >= 14, [op.label for op in operations]
    nothing_to_break: list[str] = []
    for operation in operations:

        @hypothesis.given(case=operation.as_strategy(mode))
        @_SETTINGS
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, excluded_checks=_excluded(case))

        try:
            check()
        except hypothesis.errors.Unsatisfiable:  # no parameter or body to make invalid
            nothing_to_break.append(operation.label)
    assert set(nothing_to_break) <= _NO_INPUT, nothing_to_break


def test_chains_of_calls_along_the_links_keep_the_contract(
    monitor: tuple[str, dict[str, str]],
) -> None:
    url, headers = monitor
    machine = _schema(url).as_state_machine()
    assert machine.bundles, "no OpenAPI links: the stateful phase would test nothing"

    class Chains(machine):  # type: ignore[valid-type,misc]
        def setup(self) -> None:
            _delete_api_rules(url, headers)  # every scenario starts from the same state

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"headers": headers}

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
            _SETTINGS, max_examples=20, stateful_step_count=6, phases=[Phase.generate]
        )
    )


def test_the_document_is_valid_and_describes_every_answer(
    monitor: tuple[str, dict[str, str]],
) -> None:
    url, _ = monitor
    document = httpx.get(f"{url}/openapi.json", timeout=10).json()
    check_openapi_document(document, open_paths=set())
    stats = document["paths"]["/api/monitor/tasks/{task_id}/stats"]["get"]["responses"]["200"]
    assert stats["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TaskStats"
    }


def test_the_docs_page_works_offline(monitor: tuple[str, dict[str, str]]) -> None:
    url, _ = monitor
    check_docs_work_offline(url)  # open: no token needed for the page and its files
