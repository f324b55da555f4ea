"""Alembic environment: runs migrations on the engine ``core.migrate`` hands over."""

from __future__ import annotations

from alembic import context

import taskstream.core.execution_logs  # noqa: F401  (its table is in Base.metadata once imported)
from taskstream.core.store import Base

config = context.config
engine = config.attributes["engine"]

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
