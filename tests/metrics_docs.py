"""docs/metrics.md read as data, so tests can hold the services and the dashboard to it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "metrics.md"

_ROW = re.compile(r"^\| `(taskstream_[a-z0-9_]+)` \| (\w+) \| ([^|]*) \|")
_LABEL = re.compile(r"^\s*`([a-z_][a-z0-9_]*)`")
_HISTOGRAM_SERIES = ("_bucket", "_sum", "_count", "_created")


@dataclass(frozen=True)
class DocumentedMetric:
    service: str
    name: str
    """As exposed: a counter's name ends in ``_total``."""
    type: str
    labels: frozenset[str]


def documented_metrics(path: Path = DOCS) -> dict[str, DocumentedMetric]:
    """Every metric row of the tables, by name; the service is the ``## `` heading above it."""
    metrics: dict[str, DocumentedMetric] = {}
    service = ""
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            service = line[3:].strip()
            continue
        row = _ROW.match(line)
        if row is None:
            continue
        name, kind, labels_cell = row.groups()
        assert name not in metrics, f"{name} is listed twice in {path.name}"
        labels = set()
        if labels_cell.strip() != "—":
            for part in labels_cell.split(";"):
                label = _LABEL.match(part)
                assert label, f"{name}: cannot read a label name from {part!r}"
                labels.add(label.group(1))
        metrics[name] = DocumentedMetric(service, name, kind, frozenset(labels))
    return metrics


def exposed_name(family_name: str, kind: str) -> str:
    """The name a metric family is exposed as (the Python client drops a counter's ``_total``)."""
    return f"{family_name}_total" if kind == "counter" else family_name


def metric_of_series(series: str, documented: dict[str, DocumentedMetric]) -> str | None:
    """The documented metric a series name belongs to (``x_bucket`` -> histogram ``x``)."""
    if series in documented:
        return series
    for suffix in _HISTOGRAM_SERIES:
        base = series.removesuffix(suffix)
        if base != series and base in documented and documented[base].type == "histogram":
            return base
    return None


def is_created_series(family_name: str, documented: dict[str, DocumentedMetric]) -> bool:
    """True for the ``<name>_created`` gauge the Python client adds to a counter or histogram."""
    base = family_name.removesuffix("_created")
    if base == family_name:
        return False
    counter, histogram = documented.get(f"{base}_total"), documented.get(base)
    return (counter is not None and counter.type == "counter") or (
        histogram is not None and histogram.type == "histogram"
    )
