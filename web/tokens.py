"""API tokens: shown once when created, stored only as SHA-256, owned, expiring, revocable.

A token acts for its owner, a panel account: when that account is disabled or removed the token stops
working, as the person's own login does. Every token expires (a year unless said otherwise), so a
forgotten integration does not keep a key to the alert system for ever. Names are unique: the audit
records "api:<name>" for whatever a token does.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select

from gateway.core.audit import AuditLog
from gateway.core.control_chars import control_characters
from gateway.core.db import utcnow
from gateway.core.models_panel import ApiToken, User
from gateway.core.translatable import TranslatableError
from web.users import RANK

PREFIX = "allerta_"
DEFAULT_DAYS = 365
MAX_DAYS = 10 * 365
# "api:" + the name must fit the 80-character actor columns (audit, alerts.created_by) on PostgreSQL.
NAME_MAX = 64
TOKEN_ROLES = ("viewer", "operator", "approver")  # a token never administers the box


class TokenError(TranslatableError, ValueError):
    """A token that cannot be created or revoked as asked; the message says why (in the panel, in its
    user's language: web/errors.py lists the keys)."""


@dataclass(frozen=True)
class Refusal:
    """Why a presented token does not authenticate (said to the caller, who holds the token)."""
    message: str


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(audit: AuditLog, name: str, role: str, *, actor: str, owner: str,
                 days: int = DEFAULT_DAYS) -> tuple[int, str]:
    """Returns (id, the token); the token itself is never stored."""
    name = name.strip()
    if not name:
        raise TokenError("give the token a name (which system uses it)")
    if len(name) > NAME_MAX:
        raise TokenError("the token name is %(length)s characters; at most %(maximum)s", length=len(name), maximum=NAME_MAX)
    if control_characters(name):
        raise TokenError("the token name contains control characters")
    if role not in TOKEN_ROLES:
        raise TokenError("unknown token role %(role)s; one of %(roles)s", role=repr(role), roles=", ".join(TOKEN_ROLES))
    if not 1 <= days <= MAX_DAYS:
        raise TokenError("a token lasts 1 to %(maximum)s days, not %(days)s", maximum=MAX_DAYS, days=days)
    token = PREFIX + secrets.token_urlsafe(32)
    with audit.transaction() as s:
        account = s.scalar(select(User).where(User.username == owner))
        if account is None or not account.active:
            raise TokenError("the owner %(owner)s is not an active panel account", owner=repr(owner))
        if RANK[account.role] < RANK[role]:
            raise TokenError("%(owner)s is %(owner_role)s: their token cannot be %(role)s", owner=owner, owner_role=account.role, role=role)
        if s.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
            raise TokenError("a token named %(name)s exists already; names are unique", name=repr(name))
        expires = utcnow() + dt.timedelta(days=days)
        row = ApiToken(name=name, token_hash=token_hash(token), prefix=token[:12], role=role, created_by=actor,
                       owner=owner, expires_at=expires)
        s.add(row)
        s.flush()
        audit.record(s, actor, "token.create", row.id, name=name, role=role, owner=owner,
                     expires=expires.isoformat(timespec="minutes"))
        return row.id, token


def revoke_token(audit: AuditLog, token_id: int | None = None, *, name: str | None = None, actor: str) -> bool:
    """Revoke the token with this id or name; False when there is no such active token."""
    with audit.transaction() as s:
        row = s.get(ApiToken, token_id) if token_id is not None else \
            s.scalar(select(ApiToken).where(ApiToken.name == name))
        if row is None or row.revoked_at is not None:
            return False
        row.revoked_at = utcnow()
        audit.record(s, actor, "token.revoke", row.id, name=row.name)
        return True


def token_state(row: ApiToken, owner_active: bool, now: dt.datetime) -> str:
    """active, revoked, expired or owner disabled: what the panel and `allerta tokens list` show."""
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= now:
        return "expired"
    if not owner_active:
        return "owner disabled"
    return "active"


def owners_active(session, rows: list[ApiToken]) -> dict[str, bool]:  # noqa: ANN001
    names = {row.owner for row in rows if row.owner}
    found = dict(session.execute(select(User.username, User.active).where(User.username.in_(names))).all())
    return {name: bool(found.get(name)) for name in names}


def authenticate_token(audit: AuditLog, token: str) -> ApiToken | Refusal:
    if not token.startswith(PREFIX):
        return Refusal("invalid or revoked token")
    digest = token_hash(token)
    with audit.sessions.begin() as s:
        row = s.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
        # The lookup is by hash (a constant-time compare would add nothing); checked again for clarity.
        if row is None or not hmac.compare_digest(row.token_hash, digest):
            return Refusal("invalid or revoked token")
        state = token_state(row, owners_active(s, [row]).get(row.owner, False), utcnow())
        if state != "active":
            return Refusal({"revoked": "invalid or revoked token", "expired": "this token has expired",
                            "owner disabled": "this token's owner account is disabled"}[state])
        row.last_used_at = utcnow()
        return row
