"""Alembic environment: always run with a connection handed over by ``gpufleet.db.migrate``."""

from __future__ import annotations

from alembic import context

from gpufleet.db.tables import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("gpufleet migrations run through gpufleet.db.migrate.upgrade(), not the alembic CLI")

context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
