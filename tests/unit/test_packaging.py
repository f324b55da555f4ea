"""The one import namespace: every folder is in the build's package list, under taskstream.*

The folders ``core executor monitor handlers schemas`` stay at the top of the repository;
``[tool.setuptools] package-dir`` maps them into ``taskstream`` for a wheel and an editable
install, and the links ``taskstream/core -> ../core`` (and so on) give tools that read the
source tree (mypy, import-linter) the same layout. ``tests/integration/test_wheel.py``
installs the built wheel.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
OLD_TOP_LEVEL = ("core", "executor", "monitor", "handlers", "schemas")


def _package_folders() -> dict[str, Path]:
    """Each package the folders hold (any folder with a file to ship), by import name."""
    found: dict[str, Path] = {}
    for name, folder in SETUPTOOLS["package-dir"].items():
        root = ROOT / folder
        for directory in [root, *sorted(p for p in root.rglob("*") if p.is_dir())]:
            relative = directory.relative_to(root)
            linked = any(p.is_symlink() for p in [directory, *directory.parents])
            if "__pycache__" in relative.parts or linked:
                continue  # a link's folder is listed under its own mapping
            inner = ".".join(relative.parts)
            package = f"{name}.{inner}" if inner else name
            if any(p.is_file() for p in directory.iterdir()):
                found[package] = directory
    return found


def test_every_package_folder_is_in_the_build() -> None:
    assert sorted(SETUPTOOLS["packages"]) == sorted(_package_folders())


def test_each_top_level_folder_is_mapped_and_linked_into_taskstream() -> None:
    mapping = SETUPTOOLS["package-dir"]
    assert mapping == {"taskstream": "taskstream"} | {
        f"taskstream.{name}": name for name in OLD_TOP_LEVEL
    }
    for name in OLD_TOP_LEVEL:
        link = ROOT / "taskstream" / name
        assert link.is_symlink() and link.readlink() == Path("..") / name, link


def test_no_code_imports_a_folder_by_its_old_top_level_name() -> None:
    """``import core`` would load a second copy of a module beside ``taskstream.core``."""
    old = re.compile(rf"^\s*(?:from|import) (?:{'|'.join(OLD_TOP_LEVEL)})(?:\.|\s|$)", re.M)
    tracked = subprocess.run(
        ["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    present = [name for name in tracked if (ROOT / name).is_file()]
    offenders = [name for name in present if old.search((ROOT / name).read_text())]
    assert offenders == [], "import these as taskstream.<package>"
