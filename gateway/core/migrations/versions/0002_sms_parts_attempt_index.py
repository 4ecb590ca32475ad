"""index sms_parts by attempt

Every status report counts the delivered parts of its attempt; without this
index that count scanned the whole sms_parts table, which grows with every
alert ever sent (profiled: 3 ms per report after a few thousand messages).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('sms_parts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sms_parts_attempt_id'), ['attempt_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('sms_parts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sms_parts_attempt_id'))
