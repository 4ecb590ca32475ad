"""API tokens: shown once when created, stored only as SHA-256, revocable."""
from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select

from gateway.core.db import utcnow
from gateway.core.models_panel import ApiToken
from gateway.core.audit import AuditLog
from web.users import RANK

PREFIX = "allerta_"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(audit: AuditLog, name: str, role: str, *, actor: str) -> tuple[int, str]:
    """Returns (id, the token); the token itself is never stored."""
    if role not in RANK:
        raise ValueError(f"unknown role {role!r}")
    token = PREFIX + secrets.token_urlsafe(32)
    with audit.transaction() as s:
        row = ApiToken(name=name.strip()[:80] or "token", token_hash=token_hash(token), prefix=token[:12],
                       role=role, created_by=actor)
        s.add(row)
        s.flush()
        audit.record(s, actor, "token.create", row.id, name=row.name, role=role)
        return row.id, token


def revoke_token(audit: AuditLog, token_id: int, *, actor: str) -> bool:
    with audit.transaction() as s:
        row = s.get(ApiToken, token_id)
        if row is None or row.revoked_at is not None:
            return False
        row.revoked_at = utcnow()
        audit.record(s, actor, "token.revoke", token_id, name=row.name)
        return True


def authenticate_token(audit: AuditLog, token: str) -> ApiToken | None:
    if not token.startswith(PREFIX):
        return None
    digest = token_hash(token)
    with audit.sessions.begin() as s:
        row = s.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
        # The lookup is by hash (a constant-time compare would add nothing); checked again for clarity.
        if row is None or row.revoked_at is not None or not hmac.compare_digest(row.token_hash, digest):
            return None
        row.last_used_at = utcnow()
        return row
