"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 11:15:28.060034
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "active_executions",
        sa.Column("execution_id", sa.String(length=64), nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("execution_id"),
    )
    with op.batch_alter_table("active_executions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_active_executions_partition"), ["partition"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_active_executions_task_id"), ["task_id"], unique=False)

    op.create_table(
        "pending_runs",
        sa.Column("execution_id", sa.String(length=64), nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("execution_id"),
    )
    with op.batch_alter_table("pending_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pending_runs_partition"), ["partition"], unique=False)
        batch_op.create_index(batch_op.f("ix_pending_runs_task_id"), ["task_id"], unique=False)

    op.create_table(
        "projection_offsets",
        sa.Column("topic", sa.String(length=249), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("next_offset", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("topic", "partition"),
    )
    op.create_table(
        "tasks",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("handler", sa.String(length=300), nullable=False),
        sa.Column("queue", sa.String(length=63), nullable=False),
        sa.Column("priority", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("anchor", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_slot", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_change_event_id", sa.String(length=64), nullable=False),
        sa.Column("last_execution_id", sa.String(length=64), nullable=True),
        sa.Column("last_status", sa.String(length=16), nullable=True),
        sa.Column("executions_scheduled", sa.Integer(), nullable=False),
        sa.Column("executions_succeeded", sa.Integer(), nullable=False),
        sa.Column("executions_failed", sa.Integer(), nullable=False),
        sa.Column("executions_skipped", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tasks_handler"), ["handler"], unique=False)
        batch_op.create_index(batch_op.f("ix_tasks_name"), ["name"], unique=False)
        batch_op.create_index(batch_op.f("ix_tasks_partition"), ["partition"], unique=False)
        batch_op.create_index(batch_op.f("ix_tasks_queue"), ["queue"], unique=False)
        batch_op.create_index(batch_op.f("ix_tasks_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tasks_status"))
        batch_op.drop_index(batch_op.f("ix_tasks_queue"))
        batch_op.drop_index(batch_op.f("ix_tasks_partition"))
        batch_op.drop_index(batch_op.f("ix_tasks_name"))
        batch_op.drop_index(batch_op.f("ix_tasks_handler"))

    op.drop_table("tasks")
    op.drop_table("projection_offsets")
    with op.batch_alter_table("pending_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pending_runs_task_id"))
        batch_op.drop_index(batch_op.f("ix_pending_runs_partition"))

    op.drop_table("pending_runs")
    with op.batch_alter_table("active_executions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_active_executions_task_id"))
        batch_op.drop_index(batch_op.f("ix_active_executions_partition"))

    op.drop_table("active_executions")
