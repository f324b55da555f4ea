"""A published event schema never changes: a change is a new version beside it.

``tests/published_schemas.sha256`` holds the SHA-256 of every versioned JSON Schema file
taskstream has published (``schemas/json/**/*.vN.json``). Consumers in other languages
generate code from them, so an edit of ``ExecutionScheduled.v1.json`` would change a
contract they rely on: write ``ExecutionScheduled.v2.json`` instead, and append its line.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from taskstream.schemas.jsonschema import SCHEMA_DIR

MANIFEST = Path(__file__).resolve().parents[1] / "published_schemas.sha256"


def _published() -> dict[str, str]:
    lines = MANIFEST.read_text().splitlines()
    return {name: digest for digest, name in (line.split("  ", 1) for line in lines if line)}


def test_no_published_schema_changed_and_every_one_is_listed() -> None:
    published = _published()
    on_disk = {
        path.relative_to(SCHEMA_DIR).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in SCHEMA_DIR.rglob("*.v[0-9]*.json")
    }
    changed = sorted(name for name, digest in published.items() if on_disk.get(name) != digest)
    assert changed == [], "published schemas changed (or were removed): add a new version"
    unlisted = sorted(set(on_disk) - set(published))
    assert unlisted == [], "a new published schema: append its sha256sum line to the manifest"
