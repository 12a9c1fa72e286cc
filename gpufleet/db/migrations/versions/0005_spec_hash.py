"""Spec fingerprints for rolling replacement: the deployment's current one, and each instance's own.

Existing rows keep NULL (NULL on both sides counts as current, so nothing rolls on upgrade).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.add_column(sa.Column("spec_hash", sa.String(length=16), nullable=True))
    with op.batch_alter_table("model_instances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("spec_hash", sa.String(length=16), nullable=True))


def downgrade() -> None:
    # In place, not batch mode: rebuilding a parent table on SQLite cascades to its children (see 0008).
    op.drop_column("model_instances", "spec_hash")
    op.drop_column("models", "spec_hash")
