"""Workers' API tokens are kept as SHA-256 hashes, never in clear (``common.worker_api_token``).

Existing tokens are converted to their hashes. The server now presents an HMAC of the hash under the
cluster token, so a worker still running an older gpufleet (which expects its clear token) refuses
the server's calls to its private routes until it is upgraded and restarted, which sends a new
token. Downgrading cannot bring the clear tokens back: they become NULL, which the older server
reports as "did not register an API token" until each worker restarts.

Columns are added and dropped in place (``op``), never through Alembic's batch mode: on SQLite that
rebuilds ``workers`` by dropping the old table, and with ``PRAGMA foreign_keys=ON`` (every connection
of ours) the drop cascades: devices and model files deleted, instances detached. SQLite drops a
column in place since 3.35.

Revision ID: 0008_worker_token_hash
Revises: 0007
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0008_worker_token_hash"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("workers", sa.Column("api_token_hash", sa.String(length=64), nullable=True))
    connection = op.get_bind()
    workers = sa.table(
        "workers",
        sa.column("id", sa.Integer),
        sa.column("api_token", sa.String),
        sa.column("api_token_hash", sa.String),
    )
    rows = connection.execute(sa.select(workers.c.id, workers.c.api_token).where(workers.c.api_token.is_not(None)))
    for worker_id, token in rows.all():
        digest = hashlib.sha256(token.encode()).hexdigest()
        connection.execute(sa.update(workers).where(workers.c.id == worker_id).values(api_token_hash=digest))
    op.drop_column("workers", "api_token")


def downgrade() -> None:
    op.add_column("workers", sa.Column("api_token", sa.String(length=128), nullable=True))
    op.drop_column("workers", "api_token_hash")
