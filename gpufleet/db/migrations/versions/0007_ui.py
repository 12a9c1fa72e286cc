"""What the web UI shows: usage per UTC hour (not only per day), and each instance's engine command.

Existing usage rows keep their day and get hour 0: their sums per day are unchanged, and an hourly
chart shows them at the day's first hour.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


_SAME = "v.day = u.day AND v.user_id = u.user_id AND v.api_key_id = u.api_key_id AND v.model_name = u.model_name"


def upgrade() -> None:
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hour", sa.SmallInteger(), nullable=False, server_default="0"))
        batch_op.drop_constraint("uq_usage_records_key", type_="unique")
        batch_op.create_unique_constraint(
            "uq_usage_records_key", ["day", "hour", "user_id", "api_key_id", "model_name"]
        )
    with op.batch_alter_table("model_instances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("engine_command", sa.JSON(), nullable=True))


def downgrade() -> None:
    # In place, not batch mode: rebuilding a parent table on SQLite cascades to its children (see 0008).
    op.drop_column("model_instances", "engine_command")
    # One row per day again: the hours of each (day, user, key, model) are summed into the first.
    connection = op.get_bind()
    connection.execute(
        sa.text(
            "UPDATE usage_records AS u SET "
            "requests = (SELECT SUM(requests) FROM usage_records v WHERE " + _SAME + "), "
            "prompt_tokens = (SELECT SUM(prompt_tokens) FROM usage_records v WHERE " + _SAME + "), "
            "completion_tokens = (SELECT SUM(completion_tokens) FROM usage_records v WHERE " + _SAME + ") "
            "WHERE u.id = (SELECT MIN(id) FROM usage_records v WHERE " + _SAME + ")"
        )
    )
    connection.execute(
        sa.text(
            "DELETE FROM usage_records WHERE id NOT IN "
            "(SELECT MIN(id) FROM usage_records GROUP BY day, user_id, api_key_id, model_name)"
        )
    )
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.drop_constraint("uq_usage_records_key", type_="unique")
        batch_op.drop_column("hour")
        batch_op.create_unique_constraint("uq_usage_records_key", ["day", "user_id", "api_key_id", "model_name"])
