"""backfill

A pending run remembers which run of its slot it belongs to (``run_key``:
``backfill:<id>``, or null for the schedule's own), so that its work order and its own
retries keep ids of their own, and a backfill's slot its cursor (``backfill``). A task
keeps its last backfill's progress (``tasks.backfill``).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08 01:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("pending_runs", sa.Column("run_key", sa.String(length=128), nullable=True))
    op.add_column("pending_runs", sa.Column("backfill", sa.JSON(), nullable=True))
    op.add_column("tasks", sa.Column("backfill", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("tasks", "backfill")
    op.drop_column("pending_runs", "backfill")
    op.drop_column("pending_runs", "run_key")
