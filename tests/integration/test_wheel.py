"""The built wheel works on its own: installed into a fresh virtualenv outside the repository.

An editable install reads the folders of the checkout; this installs what users get. The
wheel of taskstream and the example plugin's wheel are built here, installed with their
dependencies, and probed from a directory that holds nothing of the repository.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("wheel_probe.py")
_NOT_BUILT = shutil.ignore_patterns(
    ".git",
    ".venv",
    ".taskstream",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    "*_cache",
    "results",
)


def _run(*argv: str | Path, cwd: Path, timeout: float = 300) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"{argv}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the two wheels installed; its ``bin`` folder."""
    where = tmp_path_factory.mktemp("wheel")
    source = where / "source"  # a copy: building writes build/ and *.egg-info beside the code
    shutil.copytree(ROOT, source, symlinks=True, ignore=_NOT_BUILT)
    dist = where / "dist"
    _run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", dist,
         source, source / "examples" / "report_plugin", cwd=where)  # fmt: skip
    wheels = sorted(dist.glob("*.whl"))
    assert [w.name.split("-")[0] for w in wheels] == ["taskstream", "taskstream_example_report"]
    _run(sys.executable, "-m", "venv", where / "venv", cwd=where)
    bin_dir = where / "venv" / "bin"
    _run(bin_dir / "python", "-m", "pip", "install", "--quiet", *wheels, cwd=where, timeout=900)
    return bin_dir


@pytest.mark.timeout(1200)
def test_the_command_runs_from_the_installed_wheel(installed: Path, tmp_path: Path) -> None:
    out = _run(installed / "taskstream", "--version", cwd=tmp_path)
    assert out.strip().startswith("taskstream 0.2")


@pytest.mark.timeout(1200)
def test_the_installed_wheel_holds_every_module_and_file(installed: Path, tmp_path: Path) -> None:
    report = json.loads(_run(installed / "python", PROBE, cwd=tmp_path))
    site = installed.parent / "lib"
    assert Path(report["package_file"]).is_relative_to(site), "imported from the checkout"
    assert report["modules"] > 120
    assert report["store_tables"] == sorted([*report["model_tables"], "alembic_version"])
    assert "tasks" in report["model_tables"]
    assert report["stale_json_schemas"] == [] and report["json_schemas"] > 20
    assert report["dashboard"] and report["kafka_pom"]
    assert report["old_top_level"] == [], "the wheel installs only the taskstream namespace"
    assert report["handlers"]["example.report"] == "report_plugin.handlers.DailyReport"
    assert report["handlers"]["echo"] == "taskstream.handlers.builtin.EchoHandler"
    assert report["clients"] == ["taskstream.client.sync", "taskstream.client.aio"]
