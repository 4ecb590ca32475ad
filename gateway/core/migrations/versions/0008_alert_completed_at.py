"""when an alert had nothing left to do (state 'completed')

An alert used to stay 'active' for good after its last delivery ended, even
with the engine stopped; the store now completes it and records when.

Revision ID: 0008
Revises: 0004
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('completed_at', sa.DateTime(), nullable=True))
    # Alerts already finished before this version: completed, at their last delivery's change.
    op.execute("""
        UPDATE alerts SET state = 'completed',
               completed_at = (SELECT max(d.updated_at) FROM deliveries d WHERE d.alert_id = alerts.id)
         WHERE state = 'active'
           AND EXISTS (SELECT 1 FROM deliveries d WHERE d.alert_id = alerts.id)
           AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.alert_id = alerts.id
                            AND d.state IN ('pending', 'submitting', 'sent'))
    """)


def downgrade() -> None:
    op.execute("UPDATE alerts SET state = 'active' WHERE state = 'completed'")
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_column('completed_at')
