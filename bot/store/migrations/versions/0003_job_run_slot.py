"""job run slot: which scheduled fire time a run belongs to

Every replica runs the same cron triggers; the job's lease keeps two runs from overlapping,
but a job shorter than the replicas' clock skew (housekeeping, the drift check) could run once
per replica for the same schedule: the first finished and freed the lease before the second
fired. A scheduled run now records its fire time (``slot``) and the next replica skips a slot
that already ran. Manual runs (``triagebot jobs run``) have no slot.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 07:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# A nullable column and an index: an older release neither reads nor writes them.
older_releases_compatible = True


def upgrade() -> None:
    with op.batch_alter_table("job_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("slot", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_job_runs_slot"), ["slot"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("job_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_runs_slot"))
        batch_op.drop_column("slot")
