"""On-demand models: replica bounds, idleness, priority and queueing per deployment; the events
gpufleet records when it scales one on its own; each server's gateway load.

Existing deployments get NULL bounds (a fixed ``replicas``, as before), priority 0 and the default
queue limits. Columns are added and dropped in place (see 0008 for why never in batch mode).

Revision ID: 0009_on_demand
Revises: 0008_worker_token_hash
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_on_demand"
down_revision = "0008_worker_token_hash"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)
COLUMNS = (
    sa.Column("min_replicas", sa.Integer(), nullable=True),
    sa.Column("max_replicas", sa.Integer(), nullable=True),
    sa.Column("idle_timeout", sa.Integer(), nullable=True),
    sa.Column("priority", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("max_concurrent_requests", sa.Integer(), nullable=True),
    sa.Column("max_queue", sa.Integer(), nullable=False, server_default="100"),
    sa.Column("queue_timeout", sa.Integer(), nullable=False, server_default="120"),
    sa.Column("last_request_at", WHEN, nullable=True),
    sa.Column("busy_at", WHEN, nullable=True),
    sa.Column("scaled_at", WHEN, nullable=True),
)


def upgrade() -> None:
    for column in COLUMNS:
        op.add_column("models", column)
    op.create_table(
        "model_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_model_events_model_id"), "model_events", ["model_id"], unique=False)
    op.create_table(
        "gateway_load",
        sa.Column("server_id", sa.String(length=64), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("in_flight", sa.Integer(), nullable=False),
        sa.Column("queued", sa.Integer(), nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("server_id", "model_id"),
    )


def downgrade() -> None:
    op.drop_table("gateway_load")
    op.drop_index(op.f("ix_model_events_model_id"), table_name="model_events")
    op.drop_table("model_events")
    for column in reversed(COLUMNS):
        op.drop_column("models", column.name)
