"""nodes: engines sharing one PostgreSQL, their heartbeats; the node of each delivery, answer and line

A delivery or answer in flight carries the node that claimed it; its lease is that node's heartbeat
(gateway.core.nodes). Rows from before this version have no node: the engine that next starts on
the database takes them as its own (what a restart always did).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('nodes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(), nullable=False),
    sa.Column('beats', sa.Integer(), nullable=False),
    sa.Column('lease_seconds', sa.Integer(), nullable=False),
    sa.Column('taken_over_by', sa.String(length=64), nullable=True),
    sa.Column('taken_over_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name', name='uq_nodes_name')
    )
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('node', sa.String(length=64), nullable=True))
    with op.batch_alter_table('lines', schema=None) as batch_op:
        batch_op.add_column(sa.Column('node', sa.String(length=64), nullable=True))
    with op.batch_alter_table('sms_replies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('node', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('sms_replies', schema=None) as batch_op:
        batch_op.drop_column('node')
    with op.batch_alter_table('lines', schema=None) as batch_op:
        batch_op.drop_column('node')
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_column('node')
    op.drop_table('nodes')
