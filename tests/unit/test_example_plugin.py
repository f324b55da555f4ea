"""The example plugin in ``examples/report_plugin``, tested without installing it.

Its directory goes on ``sys.path`` so ``report_plugin`` imports as if installed; its own
tests (``examples/report_plugin/tests/test_report.py``) are loaded by path and collected
here, so the repository's test run keeps the example working.
"""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from pathlib import Path

from taskstream.handlers import ENTRY_POINT_GROUP, HandlerRegistry, TaskHandler

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "report_plugin"
if str(EXAMPLE) not in sys.path:
    sys.path.insert(0, str(EXAMPLE))  # import report_plugin without installing it

from report_plugin.handlers import DailyReport  # type: ignore[import-not-found]  # noqa: E402


def _load_example_tests() -> object:
    spec = importlib.util.spec_from_file_location(
        "report_plugin_example_tests", EXAMPLE / "tests" / "test_report.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_example_tests = _load_example_tests()
# the example's own checks, collected as tests of this module
globals().update(
    {name: value for name, value in vars(_example_tests).items() if name.startswith("test_")}
)


def test_the_entry_point_names_the_handler() -> None:
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())
    assert project["project"]["name"] == "taskstream-example-report"
    assert "taskstream" in project["project"]["dependencies"]
    entry_points = project["project"]["entry-points"][ENTRY_POINT_GROUP]
    assert entry_points == {"example.report": "report_plugin.handlers:DailyReport"}
    module_name, _, attribute = entry_points["example.report"].partition(":")
    assert getattr(sys.modules[module_name], attribute) is DailyReport


def test_the_handler_registers_under_its_name() -> None:
    assert issubclass(DailyReport, TaskHandler)
    registry = HandlerRegistry()
    registry.register(DailyReport, name="example.report")
    assert registry.resolve("example.report") is DailyReport
    assert DailyReport.name == "example.report"
    assert registry.canonical_name("report_plugin.handlers.DailyReport") == "example.report"


def test_the_example_tests_were_collected() -> None:
    collected = {name for name in globals() if name.startswith("test_report_")}
    assert "test_report_totals_each_group" in collected
