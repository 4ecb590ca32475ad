"""drafts belong to their author unless shared: alerts.shared

Under the two-person rule an approver could submit someone else's draft and
then approve it alone. A draft is now submitted (or cancelled) only by its
author, or by any operator once the author shares it.

Revision ID: 0006
Revises: 0008
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN, not a batch: SQLite's batch copies the table, and dropping the old alerts
    # table would cascade to every delivery. Drafts made before: not shared, as every new draft.
    op.add_column('alerts', sa.Column('shared', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    op.drop_column('alerts', 'shared')  # SQLite 3.35 and later drop a column in place
