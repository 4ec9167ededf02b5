"""schema compat: which older releases may run on this schema

A release that migrated the database records here the oldest revision whose release can still
run on the schema (every migration since then only adds what an older release ignores), so
that a rolled-back release starts on the newer schema instead of stopping at "Can't locate
revision". Releases before this one do not read it: rolling back to them still needs
``triagebot db downgrade`` first.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 20:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# A new table that older releases never query.
older_releases_compatible = True


def upgrade() -> None:
    op.create_table(
        "schema_compat",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("head", sa.String(length=32), nullable=False),
        sa.Column("oldest_compatible", sa.String(length=32), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("schema_compat")
