"""The Ray head of a vLLM instance across workers (``model_instances.ray_head``, ``host:port``).

Existing instances get NULL: none of them runs on Ray. Added and dropped in place (see 0008 for why
never in batch mode).

Revision ID: 0010_ray_head
Revises: 0009_on_demand
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_ray_head"
down_revision = "0009_on_demand"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("model_instances", sa.Column("ray_head", sa.String(length=300), nullable=True))


def downgrade() -> None:
    op.drop_column("model_instances", "ray_head")
