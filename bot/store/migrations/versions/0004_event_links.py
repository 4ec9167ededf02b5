"""event links: the pages an alert or record carries (rule graph, runbook, dashboard...)

Alert threads link the alert's own sources. The replica that groups an event is not always
the one that received it (and a restart regroups from the table), so the links are stored
with the event. Nullable: events stored before have none.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# A nullable column: an older release neither reads nor writes it.
older_releases_compatible = True


def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("links", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("links")
