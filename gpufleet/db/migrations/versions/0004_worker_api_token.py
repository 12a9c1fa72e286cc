"""The secret the server presents when it calls a worker's own API.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("api_token", sa.String(length=128), nullable=True))


def downgrade() -> None:
    # In place, not batch mode: rebuilding ``workers`` on SQLite cascades to its devices (see 0008).
    op.drop_column("workers", "api_token")
