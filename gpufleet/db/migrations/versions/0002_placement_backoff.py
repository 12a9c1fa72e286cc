"""Per-instance placement back-off after engine failures on a worker.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_instances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("placement_backoff", sa.JSON(), nullable=True))


def downgrade() -> None:
    # In place, not batch mode: rebuilding a parent table on SQLite cascades to its children (see 0008).
    op.drop_column("model_instances", "placement_backoff")
