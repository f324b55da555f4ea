"""The alerts API on the monitor's web server.

- ``GET /api/alerts``: ``{"active": [...], "recent": [notices, newest first]}``
- ``GET /api/alerts/rules``: ``{"items": [rule + "source": "file" | "api"]}``
- ``GET|PUT|DELETE /api/alerts/rules/{id}``: a rule; PUT creates (201) or replaces (200)
  an API rule, 422 names the bad fields; a rule from the rules file is read-only (409).

Writes fail fast: while the broker is unreachable (``BrokerHealth``) a PUT or DELETE is
refused at once with 503 ``kafka_unavailable``, and one that Kafka does not confirm
within ``TASKSTREAM_KAFKA_WRITE_TIMEOUT`` gets the same 503 (then the change holds on
this monitor but may be lost at a restart: retry it). Every route is declared once in
:data:`OPERATIONS` (its part of ``/openapi.json``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import faust
from faust.types import FutureMessage
from faust.web import Request, Response, View

from taskstream.infra.broker_health import BrokerHealth
from taskstream.monitor.alerts.book import AlertBook, ReadOnlyRuleError
from taskstream.monitor.alerts.rules import RuleError, parse_rule, rule_as_dict, rule_schemas
from taskstream.monitor.confirmed_table import ConfirmedTable, WriteUnconfirmed, confirm_write
from taskstream.monitor.contract import Operation, PathParam, json_answer, model_answer
from taskstream.monitor.http_errors import Refusal, read_json
from taskstream.schemas.monitor_api import AlertList

__all__ = ["OPERATIONS", "install_views"]

_TAG = ("alerts",)
_ID_SCHEMA = {"type": "string", "pattern": "^[a-z0-9][a-z0-9_.-]{0,62}$"}
RULE_ID = PathParam(name="rule_id", description="the rule's id", schema=_ID_SCHEMA)
_RULE = {"$ref": "#/components/schemas/AlertRule"}
_LINKS = {
    "GetRule": {"operationId": "getAlertRule", "parameters": {"rule_id": "$request.path.rule_id"}},
    "DeleteRule": {
        "operationId": "deleteAlertRule",
        "parameters": {"rule_id": "$request.path.rule_id"},
    },
}

ALERTS = Operation(
    method="get",
    path="/api/alerts",
    operation_id="getAlerts",
    summary="The alerts firing now and the recent notices",
    responses={
        200: model_answer(
            "active alerts (latest first) and recent notices (newest first)", AlertList
        )
    },
    tags=_TAG,
)
RULES = Operation(
    method="get",
    path="/api/alerts/rules",
    operation_id="listAlertRules",
    summary="Every alert rule, from the rules file and the API",
    responses={
        200: json_answer(
            "the rules, by id",
            {
                "type": "object",
                "required": ["items"],
                "properties": {"items": {"type": "array", "items": _RULE}},
            },
        )
    },
    tags=_TAG,
)
GET_RULE = Operation(
    method="get",
    path="/api/alerts/rules/{rule_id}",
    operation_id="getAlertRule",
    summary="One alert rule",
    parameters=(RULE_ID,),
    responses={200: json_answer("the rule", _RULE)},
    errors=(404,),
    tags=_TAG,
)
PUT_RULE = Operation(
    method="put",
    path=GET_RULE.path,
    operation_id="putAlertRule",
    summary="Create or replace an API rule (the body's id, if any, must be the URL's)",
    parameters=(RULE_ID,),
    request_body={
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RuleBody"}}},
    },
    responses={
        200: {**json_answer("the rule, replaced", _RULE), "links": _LINKS},
        201: {**json_answer("the rule, created", _RULE), "links": _LINKS},
    },
    errors=(400, 409, 413, 422, 503),
    tags=_TAG,
)
DELETE_RULE = Operation(
    method="delete",
    path=GET_RULE.path,
    operation_id="deleteAlertRule",
    summary="Delete an API rule and forget its alerts",
    parameters=(RULE_ID,),
    responses={204: {"description": "deleted"}},
    errors=(404, 409, 503),
    tags=_TAG,
)
OPERATIONS = (ALERTS, RULES, GET_RULE, PUT_RULE, DELETE_RULE)
SCHEMAS = rule_schemas()
"""The components the operations refer to (``AlertRule``, ``RuleBody`` and their parts)."""


def _read_only(rule_id: str, path: str) -> Refusal:
    return Refusal(
        409,
        "read_only_rule",
        f"rule {rule_id!r} comes from the rules file {path}: change it there "
        "and restart the monitor, or use another id",
    )


def _not_found(rule_id: str) -> Refusal:
    return Refusal(404, "not_found", f"no alert rule {rule_id!r}")


def install_views(
    app: faust.App,
    book: AlertBook,
    ready: Callable[[], bool],
    rules_file: str,
    *,
    rules_table: ConfirmedTable,
    broker: BrokerHealth | None,
    write_timeout: float,
) -> None:
    def writable() -> None:
        if not ready():
            raise Refusal(
                503,
                "starting",
                "the monitor is still restoring its tables; try again in a moment",
            )
        down = broker.unreachable() if broker is not None else None
        if down is not None:
            raise Refusal(
                503,
                "kafka_unavailable",
                f"Kafka is {down}; nothing was changed: retry once /health answers 200",
            )

    async def confirmed(fut: FutureMessage | None, what: str) -> None:
        try:
            await confirm_write(fut, write_timeout)
        except WriteUnconfirmed as exc:
            raise Refusal(
                503,
                "kafka_unavailable",
                f"{exc}: the {what} holds on this monitor but may be lost at a restart; "
                "retry the request once /health answers 200",
            ) from None

    @app.page(ALERTS.path)
    async def alerts(self: View, request: Request) -> Response:
        return self.json({"active": book.active(), "recent": book.recent()})

    @app.page(RULES.path)
    async def rules(self: View, request: Request) -> Response:
        return self.json({"items": book.rule_listing()})

    @app.page(GET_RULE.path)
    class RuleView(View):
        async def get(self, request: Request, **kwargs: Any) -> Response:
            rule_id = kwargs["rule_id"]
            for item in book.rule_listing():
                if item["id"] == rule_id:
                    return self.json(item)
            raise _not_found(rule_id)

        async def put(self, request: Request, **kwargs: Any) -> Response:
            rule_id = kwargs["rule_id"]
            body = await read_json(request)
            try:
                rule = parse_rule(body, rule_id=rule_id)
            except RuleError as exc:
                raise Refusal(422, "validation_failed", str(exc), errors=exc.errors) from None
            writable()
            rules_table.last_write = None
            try:
                created = book.put_rule(rule)
            except ReadOnlyRuleError:
                raise _read_only(rule_id, rules_file) from None
            await confirmed(rules_table.last_write, "rule")
            return self.json(
                {**rule_as_dict(rule), "source": "api"}, status=201 if created else 200
            )

        async def delete(self, request: Request, **kwargs: Any) -> Response:
            rule_id = kwargs["rule_id"]
            writable()
            rules_table.last_write = None
            try:
                deleted = book.delete_rule(rule_id)
            except ReadOnlyRuleError:
                raise _read_only(rule_id, rules_file) from None
            if not deleted:
                raise _not_found(rule_id)
            await confirmed(rules_table.last_write, "deletion")
            return self.bytes(b"", status=204)
