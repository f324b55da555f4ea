"""Debian's headless Chromium for the dashboard's tests: run a page, read its DOM."""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INSTALL_HINT = (
    "Chromium is missing, and the dashboard test needs it: run `bash scripts/system-packages.sh`"
    " (or `apt-get install -y --no-install-recommends chromium` on Debian)"
)


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(INSTALL_HINT)


def artifacts() -> Path:
    configured = os.environ.get("TASKSTREAM_TEST_ARTIFACTS")
    directory = Path(configured) if configured else REPO / ".taskstream" / "test-artifacts"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def browse(profile: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium on ``url``; the page's timers run for 8 s of virtual time."""
    command = [
        chromium(),
        "--headless=new",
        "--no-sandbox",  # tests may run as root, in a container
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=8000",
        *args,
        url,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, (
        f"chromium failed ({result.returncode}):\n{result.stderr[-3000:]}"
    )
    return result


class Elements(HTMLParser):
    """Every element of a dumped DOM with its attributes and its text, in document order."""

    def __init__(self, dom: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str], list[str]]] = []
        self._open: list[list[str]] = []
        self.feed(dom)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        text: list[str] = []
        self.elements.append((tag, {name: value or "" for name, value in attrs}, text))
        if tag not in {"br", "img", "input", "link", "meta", "hr"}:
            self._open.append(text)

    def handle_endtag(self, tag: str) -> None:
        if self._open and tag not in {"br", "img", "input", "link", "meta", "hr"}:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for text in self._open:
            text.append(data)

    def find(
        self, *, tag: str | None = None, **attributes: str
    ) -> list[tuple[dict[str, str], str]]:
        """The elements with ``tag`` whose attributes include ``attributes``
        (``data_task_id="x"`` means ``data-task-id="x"``; ``cls`` one of its classes)."""
        wanted = {name.replace("_", "-"): value for name, value in attributes.items()}
        cls = wanted.pop("cls", None)
        found = []
        for element_tag, attrs, text in self.elements:
            if tag is not None and element_tag != tag:
                continue
            if cls is not None and cls not in attrs.get("class", "").split():
                continue
            if all(attrs.get(name) == value for name, value in wanted.items()):
                found.append((attrs, "".join(text)))
        return found

    def by_id(self, element_id: str) -> tuple[dict[str, str], str]:
        [found] = self.find(id=element_id)
        return found
