"""the SMS centre number of each modem, as the engine last read it

With the engine running, the doctor judges a modem from its row in lines (the
engine owns the port); the SMSC was the one check it could not make.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('lines', schema=None) as batch_op:
        batch_op.add_column(sa.Column('smsc', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('lines', schema=None) as batch_op:
        batch_op.drop_column('smsc')
