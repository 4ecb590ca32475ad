"""why a delivery is flagged 'possibly sent twice'

'alert status' said "possibly sent twice (engine restart)" for every flag, also
for calls whose fate was lost with the AMI link while the engine ran on. The
flag now carries its cause (gateway.core.states.DuplicateCause); flags set
before this version were all written by the restart recovery or a lost link,
and are left without a cause ("unknown").

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('duplicate_cause', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_column('duplicate_cause')
