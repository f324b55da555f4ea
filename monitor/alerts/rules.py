"""Alert rules read from JSON: the models are :mod:`taskstream.schemas.alert_rules`.

Every rule has an ``id``, a ``severity``, the ``channels`` it notifies, a ``throttle``
(the least time between two firing notices of one alert), ``renotify`` (remind after
each throttle while it keeps firing) and ``notify_resolved``. Task rules may name the
tasks they watch (ids or names; none: every task); ``executor_lost`` may name executors.

:func:`parse_rule` and :func:`parse_rules` raise :class:`RuleError`, whose ``errors``
name each bad field with a message that says what to write instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from taskstream.schemas.alert_rules import (
    RULE_ADAPTER,
    RULE_KINDS,
    RULE_MODELS,
    Channel,
    ConsecutiveFailuresRule,
    DeadLetterRule,
    ExecutorLostRule,
    FailureRateRule,
    LongRunRule,
    MissedScheduleRule,
    Rule,
    TaskQuarantinedRule,
    TaskRule,
)
from taskstream.schemas.durations import durations_as_written
from taskstream.schemas.errors import TaskstreamError

__all__ = [
    "RULE_KINDS",
    "Channel",
    "ConsecutiveFailuresRule",
    "DeadLetterRule",
    "ExecutorLostRule",
    "FailureRateRule",
    "LongRunRule",
    "MissedScheduleRule",
    "Rule",
    "RuleError",
    "TaskQuarantinedRule",
    "TaskRule",
    "field_error",
    "parse_rule",
    "parse_rules",
    "rule_as_dict",
    "rule_schemas",
]


def field_error(field: str, message: str, kind: str = "value_error") -> dict[str, str]:
    """One entry of :attr:`RuleError.errors`."""
    return {"field": field, "message": message, "type": kind}


class RuleError(TaskstreamError, ValueError):
    """A rule (or a rules file) is not valid; ``errors`` names every bad field."""

    def __init__(self, errors: list[dict[str, str]], where: str = "") -> None:
        self.errors = errors
        prefix = f"{where}: " if where else ""
        super().__init__(prefix + "; ".join(f"{e['field']}: {e['message']}" for e in errors))


def _field_errors(exc: ValidationError, kind: str, prefix: str = "") -> list[dict[str, str]]:
    errors = []
    for error in exc.errors(include_url=False):
        loc = [str(part) for part in error["loc"]]
        if loc and loc[0] == kind:
            loc = loc[1:]  # the union's tag: not a field
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = f"unknown field for kind {kind!r}"
        elif error["type"] == "missing":
            message = f"required for kind {kind!r}"
        elif error["type"] == "string_pattern_mismatch" and loc == ["id"]:
            message = (
                "an id is 1-63 lower-case letters, digits, '_', '.' or '-', starting with a "
                "letter or digit, e.g. 'payments-failing'"
            )
        errors.append(field_error(prefix + (".".join(loc) or "rule"), message, error["type"]))
    return errors


def parse_rule(data: Any, *, rule_id: str | None = None, prefix: str = "") -> Rule:
    """A rule from JSON-like ``data``; ``rule_id`` (from a URL) must match any ``id`` given."""
    if not isinstance(data, Mapping):
        raise RuleError([field_error(prefix or "rule", "a rule is an object", "type")])
    document = dict(data)
    if rule_id is not None:
        given = document.setdefault("id", rule_id)
        if given != rule_id:
            message = f"the body's id {given!r} is not the URL's {rule_id!r}"
            raise RuleError([field_error(f"{prefix}id", message)])
    kind = document.get("kind")
    if kind not in RULE_KINDS:
        what = "missing" if kind is None else f"unknown rule kind {kind!r}"
        message = f"{what}: use one of {', '.join(RULE_KINDS)}"
        raise RuleError([field_error(f"{prefix}kind", message)])
    try:
        return RULE_ADAPTER.validate_python(document)
    except ValidationError as exc:
        raise RuleError(_field_errors(exc, str(kind), prefix)) from None


def parse_rules(documents: Iterable[Any], where: str = "rules") -> list[Rule]:
    """Every rule of a list, or one :class:`RuleError` naming every bad one (and duplicates)."""
    rules: list[Rule] = []
    errors: list[dict[str, str]] = []
    seen: set[str] = set()
    for index, document in enumerate(documents):
        try:
            rule = parse_rule(document, prefix=f"rules[{index}].")
        except RuleError as exc:
            errors.extend(exc.errors)
            continue
        if rule.id in seen:
            errors.append(field_error(f"rules[{index}].id", f"the id {rule.id!r} is used twice"))
        seen.add(rule.id)
        rules.append(rule)
    if errors:
        raise RuleError(errors, where)
    return rules


def rule_as_dict(rule: Rule) -> dict[str, Any]:
    """A rule as JSON (durations as '30s'), the way the API shows and stores it."""
    return rule.model_dump(mode="json")


def rule_schemas() -> dict[str, Any]:
    """JSON Schema of the rules, for OpenAPI ``components.schemas``: ``RuleBody`` (what
    ``PUT /api/alerts/rules/{id}`` takes, generated from the models: the ``id`` may be left
    out, it comes from the URL), ``AlertRule`` (what the API shows) and their parts."""
    generated = RULE_ADAPTER.json_schema(ref_template="#/components/schemas/{model}")
    schemas: dict[str, Any] = generated.pop("$defs")
    models = {model.__name__: model for model in RULE_MODELS}
    for name, schema in schemas.items():
        if name not in models:
            continue
        schema["required"] = [field for field in schema.get("required", []) if field != "id"]
    durations_as_written(schemas)
    schemas["RuleBody"] = generated
    schemas["AlertRule"] = {
        "type": "object",
        "required": ["id", "kind", "severity", "channels", "enabled"],
        "properties": {
            "id": {"type": "string"},
            "kind": {"type": "string", "enum": list(RULE_KINDS)},
            "severity": {"$ref": "#/components/schemas/AlertSeverity"},
            "channels": {"type": "array", "items": {"$ref": "#/components/schemas/Channel"}},
            "enabled": {"type": "boolean"},
            "source": {"type": "string", "enum": ["file", "api"]},
            "shadows_api_rule": {"type": "boolean"},
        },
    }
    return schemas
