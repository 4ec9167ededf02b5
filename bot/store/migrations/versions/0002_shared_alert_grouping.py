"""shared alert grouping: when each event was grouped, and indexes to find open groups

The alert-grouping leader (one replica at a time) rebuilds the open groups from the database
when it takes over: it reads the groups seen inside the window (``alert_groups.last_seen``),
replays their events at the time they were grouped (``events.grouped_at``) and polls the
events other replicas stored but nobody has grouped yet (``events.outcome = 'queued'``).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 03:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# A nullable column and two indexes: an older release neither reads nor writes them.
older_releases_compatible = True


def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("grouped_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_events_outcome"), ["outcome"], unique=False)
    with op.batch_alter_table("alert_groups", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alert_groups_last_seen"), ["last_seen"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("alert_groups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alert_groups_last_seen"))
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_outcome"))
        batch_op.drop_column("grouped_at")
