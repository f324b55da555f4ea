"""Schema migrations of the task store, with Alembic (``core/migrations``).

``upgrade(engine)`` brings any database to the newest revision; the services call it at
start-up. A new revision: change the models in ``core/store.py``, then
``python -m taskstream.core.migrate revision "what changed"`` (autogenerate) and review the file.
"""

from __future__ import annotations

import sys
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine

__all__ = ["alembic_config", "downgrade", "upgrade"]

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    command.downgrade(alembic_config(engine), revision)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "revision":
        sys.exit('usage: python -m taskstream.core.migrate revision "message"')
    scratch = create_engine("sqlite://")
    upgrade(scratch)
    command.revision(alembic_config(scratch), message=sys.argv[2], autogenerate=True)
