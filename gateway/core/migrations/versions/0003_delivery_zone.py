"""the zone on each delivery

The alert page counts an alert's deliveries by zone; computing each one's zone
through contact_numbers -> contacts -> zones made that page cost ~200 ms at
100,000 deliveries. The zone is now stored when the alert fans out (and filled
here for deliveries made before).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('zone', sa.String(length=120), nullable=True))
    op.execute("""
        UPDATE deliveries SET zone = (
            SELECT min(zones.name) FROM contact_numbers
            JOIN contacts ON contacts.id = contact_numbers.contact_id
            JOIN zones ON zones.id = contacts.zone_id
            WHERE contact_numbers.number_id = deliveries.number_id)
    """)


def downgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_column('zone')
