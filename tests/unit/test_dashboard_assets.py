"""The dashboard's files keep to what its Content-Security-Policy and escaping rules allow."""

from __future__ import annotations

import re
from importlib.resources import files

import pytest

from taskstream.monitor.dashboard import CONTENT_SECURITY_POLICY

DASHBOARD = files("taskstream.monitor.dashboard")
SCRIPTS = ("dashboard.js", "charts.js")


def _read(name: str) -> str:
    return DASHBOARD.joinpath(name).read_text(encoding="utf-8")


def test_the_policy_allows_only_this_origin() -> None:
    directives = dict(part.split(" ", 1) for part in CONTENT_SECURITY_POLICY.split("; "))
    assert directives["default-src"] == "'none'"
    for name in ("script-src", "style-src", "connect-src", "img-src"):
        assert directives[name] == "'self'", name
    assert "unsafe" not in CONTENT_SECURITY_POLICY


def test_the_page_has_no_inline_script_or_style() -> None:
    page = _read("index.html")
    for script in re.findall(r"<script\b[^>]*>", page):
        assert 'src="/dashboard/' in script, script
    assert re.search(r"<script\b[^>]*>(?!</script>)", page) is None, "inline script"
    assert "<style" not in page and " style=" not in page
    assert re.search(r"\son[a-z]+=", page) is None, "inline event handler"
    assert "http://" not in page and "https://" not in page, "nothing from another host"


@pytest.mark.parametrize("name", SCRIPTS)
def test_scripts_build_the_dom_without_parsing_html(name: str) -> None:
    source = _read(name)
    for banned in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert banned not in source, f"{name} uses {banned}: set textContent instead"
    assert ".style." not in source and 'setAttribute("style"' not in source
    for url in re.findall(r"from \"([^\"]+)\"", source):
        assert url.startswith("/dashboard/"), url


def test_every_referenced_asset_is_package_data() -> None:
    referenced = set(re.findall(r"\"/dashboard/([\w.-]+)\"", _read("index.html")))
    for name in SCRIPTS:
        referenced |= set(re.findall(r"from \"/dashboard/([\w.-]+)\"", _read(name)))
    assert referenced == {"dashboard.css", "dashboard.js", "charts.js"}
    for name in referenced:
        assert DASHBOARD.joinpath(name).is_file(), name
