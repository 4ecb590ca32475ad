"""refused sign-ins counted per name and address and per address: login_throttle

Five failures every 15 minutes kept any named account locked for good, from anywhere. Failures are now
counted per (name, address) and per address, and a flood of them is summarised in the audit log.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'login_throttle',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('scope', sa.String(12), nullable=False),
        sa.Column('key', sa.String(200), nullable=False),
        sa.Column('window_start', sa.DateTime(), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('audited', sa.Integer(), nullable=False),
        sa.Column('blocked_until', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('scope', 'key', name='uq_login_throttle_scope_key'))


def downgrade() -> None:
    op.drop_table('login_throttle')
