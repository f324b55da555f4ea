"""execution log chunks

What handlers log and print, per execution run, projected from ``execution-logs``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 14:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "execution_log_chunks",
        sa.Column("execution_id", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.String(length=200), nullable=False),
        sa.Column("final", sa.Boolean(), nullable=False),
        sa.Column("dropped_lines", sa.Integer(), nullable=False),
        sa.Column("dropped_bytes", sa.BigInteger(), nullable=False),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("execution_id", "run_id", "seq"),
    )
    op.create_index(
        "ix_execution_log_chunks_task_id", "execution_log_chunks", ["task_id"], unique=False
    )
    op.create_index(
        "ix_execution_log_chunks_sent_at", "execution_log_chunks", ["sent_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_execution_log_chunks_sent_at", table_name="execution_log_chunks")
    op.drop_index("ix_execution_log_chunks_task_id", table_name="execution_log_chunks")
    op.drop_table("execution_log_chunks")
