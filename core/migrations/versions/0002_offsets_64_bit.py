"""projection offsets are 64-bit

Kafka offsets are 64-bit. PostgreSQL's INTEGER is 32-bit, so a partition past offset
2**31 - 1 stopped the projection ("integer out of range"); SQLite's INTEGER was already
64-bit, so this changes nothing there but the declared type.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 11:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("projection_offsets", schema=None) as batch_op:
        batch_op.alter_column(
            "next_offset",
            existing_type=sa.Integer(),
            type_=sa.BigInteger(),
            existing_nullable=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("projection_offsets", schema=None) as batch_op:
        batch_op.alter_column(
            "next_offset",
            existing_type=sa.BigInteger(),
            type_=sa.Integer(),
            existing_nullable=False,
        )
