"""The layer contracts of ``pyproject.toml`` (import-linter) hold, and fail on a bad import."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("schemas", "handlers", "taskstream", "core", "executor", "monitor")
LAYERS = "schemas < handlers < runtime < services"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_repository_keeps_its_layers() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "bad_import", "contract"),
    [
        ("schemas/_upward.py", "import taskstream.core.store", LAYERS),
        ("handlers/_upward.py", "import taskstream.infra.kafka", LAYERS),
        ("core/_sideways.py", "import taskstream.executor.pool", LAYERS),
        ("monitor/_sideways.py", "from taskstream.core import aggregate", LAYERS),
        ("taskstream/infra/_upward.py", "import taskstream.cli.tasks", LAYERS),
        ("monitor/_dev.py", "import taskstream.dev_broker.local_kafka", "development broker"),
        ("taskstream/infra/_dev.py", "import taskstream.dev_broker", "development broker"),
    ],
)
def test_a_forbidden_import_breaks_a_contract(
    tmp_path: Path, module: str, bad_import: str, contract: str
) -> None:
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package,
            tmp_path / package,
            symlinks=True,  # taskstream/core -> ../core, and so on (see pyproject.toml)
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / module).write_text(f"{bad_import}\n")
    result = _lint_imports(tmp_path)
    assert result.returncode != 0, result.stdout
    broken = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert len(broken) == 1 and contract in broken[0], result.stdout
