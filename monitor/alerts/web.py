"""The alerts API on the monitor's web server.

- ``GET /api/alerts``: ``{"active": [...], "recent": [notices, newest first]}``
- ``GET /api/alerts/rules``: ``{"items": [rule + "source": "file" | "api"]}``
- ``GET|PUT|DELETE /api/alerts/rules/{id}``: a rule; PUT creates (201) or replaces (200)
  an API rule, 422 names the bad fields; a rule from the rules file is read-only (409).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import faust
from faust.web import Request, Response, View

from monitor.alerts.book import AlertBook, ReadOnlyRuleError
from monitor.alerts.rules import RuleError, parse_rule, rule_as_dict

__all__ = ["install_views"]


def _read_only(rule_id: str, path: str) -> dict[str, Any]:
    return {
        "error": "read_only_rule",
        "message": f"rule {rule_id!r} comes from the rules file {path}: change it there "
        "and restart the monitor, or use another id",
    }


_STARTING = {
    "error": "starting",
    "message": "the monitor is still restoring its tables; try again in a moment",
}


def install_views(
    app: faust.App, book: AlertBook, ready: Callable[[], bool], rules_file: str
) -> None:
    @app.page("/api/alerts")
    async def alerts(self: View, request: Request) -> Response:
        return self.json({"active": book.active(), "recent": book.recent()})

    @app.page("/api/alerts/rules")
    async def rules(self: View, request: Request) -> Response:
        return self.json({"items": book.rule_listing()})

    @app.page("/api/alerts/rules/{rule_id}")
    class RuleView(View):
        async def get(self, request: Request, **kwargs: Any) -> Response:
            rule_id = kwargs["rule_id"]
            for item in book.rule_listing():
                if item["id"] == rule_id:
                    return self.json(item)
            return self.json(
                {"error": "not_found", "message": f"no alert rule {rule_id!r}"}, status=404
            )

        async def put(self, request: Request, **kwargs: Any) -> Response:
            rule_id = kwargs["rule_id"]
            if not ready():
                return self.json(_STARTING, status=503)
            try:
                body = json.loads(await request.read())
            except (ValueError, UnicodeDecodeError) as exc:
                return self.json(
                    {"error": "invalid_json", "message": f"the body is not JSON: {exc}"},
                    status=400,
                )
            try:
                rule = parse_rule(body, rule_id=rule_id)
            except RuleError as exc:
                return self.json(
                    {"error": "validation_failed", "message": str(exc), "errors": exc.errors},
                    status=422,
                )
            try:
                created = book.put_rule(rule)
            except ReadOnlyRuleError:
                return self.json(_read_only(rule_id, rules_file), status=409)
            return self.json(
                {**rule_as_dict(rule), "source": "api"}, status=201 if created else 200
            )

        async def delete(self, request: Request, **kwargs: Any) -> Response:
            rule_id = kwargs["rule_id"]
            if not ready():
                return self.json(_STARTING, status=503)
            try:
                deleted = book.delete_rule(rule_id)
            except ReadOnlyRuleError:
                return self.json(_read_only(rule_id, rules_file), status=409)
            if not deleted:
                return self.json(
                    {"error": "not_found", "message": f"no alert rule {rule_id!r}"}, status=404
                )
            return self.bytes(b"", status=204)
