"""alerts.state wide enough for 'awaiting_approval' on PostgreSQL

VARCHAR(16) held every state until 'awaiting_approval' (17 characters): SQLite does not enforce the
length, PostgreSQL refused every alert waiting for approval. Widened there; SQLite is left alone (its
ALTER would copy the table, and dropping the old alerts table cascades to every delivery).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.alter_column('alerts', 'state', type_=sa.String(20), existing_type=sa.String(16))


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.alter_column('alerts', 'state', type_=sa.String(16), existing_type=sa.String(20))
