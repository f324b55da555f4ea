"""Run by tests/integration/test_wheel.py inside a fresh virtualenv, outside the repository.

Imports every module of the installed ``taskstream``, reads what the wheel must carry
besides code, and finds the example plugin's handler through its entry point. Prints one
JSON object; exits non-zero on the first failure.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import pkgutil
import sys
import tempfile
from importlib.metadata import entry_points
from importlib.resources import files
from pathlib import Path

import taskstream

modules = [
    info.name
    for info in pkgutil.walk_packages(taskstream.__path__, prefix="taskstream.")
    if not info.name.endswith("__main__") and ".migrations" not in info.name
]
for name in modules:
    importlib.import_module(name)

from sqlalchemy import create_engine, inspect  # noqa: E402

from taskstream import AsyncClient, Client  # noqa: E402
from taskstream.core.migrate import upgrade  # noqa: E402
from taskstream.core.store import Base  # noqa: E402
from taskstream.handlers import TaskHandler  # noqa: E402
from taskstream.schemas.jsonschema import SCHEMA_DIR, build_schemas, render  # noqa: E402

with tempfile.TemporaryDirectory() as scratch:
    engine = create_engine(f"sqlite:///{Path(scratch) / 'store.db'}")
    upgrade(engine)  # the Alembic scripts are in the wheel
    tables = sorted(inspect(engine).get_table_names())
    engine.dispose()

stale = [n for n, s in build_schemas().items() if (SCHEMA_DIR / n).read_text() != render(s)]
handlers = {}
for entry in entry_points(group="taskstream.handlers"):
    handler = entry.load()
    assert isinstance(handler, type) and issubclass(handler, TaskHandler), entry
    handlers[entry.name] = f"{handler.__module__}.{handler.__qualname__}"

print(
    json.dumps(
        {
            "package_file": taskstream.__file__,
            "modules": len(modules),
            "store_tables": tables,
            "model_tables": sorted(Base.metadata.tables),
            "stale_json_schemas": stale,
            "json_schemas": len(build_schemas()),
            "dashboard": files("taskstream.monitor.dashboard").joinpath("index.html").is_file(),
            "kafka_pom": files("taskstream.dev_broker.kafka_dist").joinpath("pom.xml").is_file(),
            "handlers": handlers,
            "clients": [Client.__module__, AsyncClient.__module__],
            "old_top_level": [
                n
                for n in ("core", "executor", "monitor", "handlers", "schemas")
                if importlib.util.find_spec(n) is not None
            ],
            "python": sys.executable,
        }
    )
)
