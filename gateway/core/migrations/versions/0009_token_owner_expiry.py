"""API tokens die with their owner and expire: api_tokens.owner, api_tokens.expires_at, unique names

A token kept working after the admin who made it was disabled, never expired, and two tokens could share
a name, so the audit's "api:<name>" did not say which one acted.

Revision ID: 0009
Revises: 0006
Create Date: 2026-12-04
"""
import datetime as dt

from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('api_tokens', sa.Column('owner', sa.String(80)))
    op.add_column('api_tokens', sa.Column('expires_at', sa.DateTime()))
    tokens = sa.table('api_tokens', sa.column('id', sa.Integer), sa.column('name', sa.String),
                      sa.column('owner', sa.String), sa.column('created_by', sa.String),
                      sa.column('created_at', sa.DateTime), sa.column('expires_at', sa.DateTime))
    bind = op.get_bind()
    seen: set[str] = set()
    for row in bind.execute(sa.select(tokens.c.id, tokens.c.name, tokens.c.created_by, tokens.c.created_at)
                            .order_by(tokens.c.id)).all():
        # Tokens made before: owned by whoever made them, a year from their creation, and a name made
        # unique with its id where two shared one.
        name = row.name if row.name not in seen else f"{row.name[:60]} #{row.id}"
        seen.add(name)
        bind.execute(tokens.update().where(tokens.c.id == row.id).values(
            name=name, owner=row.created_by, expires_at=_a_year_after(row.created_at)))
    op.create_index('ix_api_tokens_name', 'api_tokens', ['name'], unique=True)


def _a_year_after(moment: dt.datetime | None) -> dt.datetime:
    return (moment or dt.datetime.utcnow()) + dt.timedelta(days=365)


def downgrade() -> None:
    op.drop_index('ix_api_tokens_name', 'api_tokens')
    op.drop_column('api_tokens', 'expires_at')
    op.drop_column('api_tokens', 'owner')
