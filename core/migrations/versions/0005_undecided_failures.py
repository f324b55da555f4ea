"""undecided failures

Executions whose first outcome was a failure, until their decision (``RetryScheduled`` or
``ExecutionDeadLettered``) is read: a late copy of a retry, written again by a rerun of
the failed attempt, finds no row and fires nothing.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 23:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "undecided_failures",
        sa.Column("execution_id", sa.String(length=64), nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("execution_id"),
    )
    op.create_index(
        op.f("ix_undecided_failures_partition"), "undecided_failures", ["partition"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_undecided_failures_partition"), table_name="undecided_failures")
    op.drop_table("undecided_failures")
