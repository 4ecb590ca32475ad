"""Panel users: roles, password hashing (Argon2id), lockout, the first admin."""
from __future__ import annotations

import datetime as dt
import functools
import re
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.core.db import utcnow
from gateway.core.models_panel import User
from gateway.core.audit import AuditLog

# Ordered: each role may do everything the roles before it may.
ROLES = ("viewer", "operator", "approver", "admin")
RANK = {role: rank for rank, role in enumerate(ROLES)}
LANGUAGES = ("it", "en")
MIN_PASSWORD = 10
_USERNAME = re.compile(r"^[A-Za-z0-9._@-]{2,80}$")

# Argon2id with argon2-cffi's defaults (RFC 9106 low-memory profile: 64 MiB, 3 passes).
_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verifying against this when the user does not exist keeps the timing the same. Made on
    first use, not at import: an Argon2 hash costs ~0.1 s, which every `allerta` command paid."""
    return _hasher.hash("not a password of anyone")


class UserError(Exception):
    """A user cannot be created or changed as asked; the message says why."""


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def password_problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD:
        return f"the password must be at least {MIN_PASSWORD} characters long"
    return None


def has_role(role: str, needed: str) -> bool:
    return RANK.get(role, -1) >= RANK[needed]


def add_user(sessions: sessionmaker[Session], audit: AuditLog, username: str, password: str, role: str,
             *, language: str = "it", actor: str = "cli") -> int:
    if not _USERNAME.match(username):
        raise UserError("a username is 2 to 80 letters, digits or . _ @ -")
    if role not in RANK:
        raise UserError(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
    if language not in LANGUAGES:
        raise UserError(f"unknown language {language!r} (languages: {', '.join(LANGUAGES)})")
    problem = password_problem(password)
    if problem:
        raise UserError(problem)
    with audit.transaction() as session:
        if session.scalar(select(User.id).where(func.lower(User.username) == username.lower())):
            raise UserError(f"a user named {username!r} already exists")
        user = User(username=username, password_hash=hash_password(password), role=role, language=language)
        session.add(user)
        session.flush()
        audit.record(session, actor, "user.create", username, role=role)
        return user.id


def _get(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise UserError(f"no user named {username!r}")
    return user


def set_password(sessions: sessionmaker[Session], audit: AuditLog, username: str, password: str,
                 *, actor: str = "cli") -> None:
    problem = password_problem(password)
    if problem:
        raise UserError(problem)
    with audit.transaction() as session:
        user = _get(session, username)
        user.password_hash = hash_password(password)
        user.failed_logins, user.locked_until = 0, None
        user.session_version += 1  # every open session of this user ends
        audit.record(session, actor, "user.password", username)


def set_active(sessions: sessionmaker[Session], audit: AuditLog, username: str, active: bool,
               *, actor: str = "cli") -> None:
    with audit.transaction() as session:
        user = _get(session, username)
        if not active and user.role == "admin" and user.active:
            admins = session.scalar(select(func.count()).select_from(User).where(
                User.role == "admin", User.active.is_(True)))
            if admins <= 1:
                raise UserError("this is the last active admin; add another admin first")
        user.active = active
        user.failed_logins, user.locked_until = 0, None
        user.session_version += 1
        audit.record(session, actor, "user.enable" if active else "user.disable", username)


def set_role(sessions: sessionmaker[Session], audit: AuditLog, username: str, role: str, *, actor: str) -> None:
    if role not in RANK:
        raise UserError(f"unknown role {role!r}")
    with audit.transaction() as session:
        user = _get(session, username)
        if user.role == "admin" and role != "admin":
            admins = session.scalar(select(func.count()).select_from(User).where(
                User.role == "admin", User.active.is_(True)))
            if admins <= 1:
                raise UserError("this is the last active admin; add another admin first")
        old, user.role = user.role, role
        user.session_version += 1
        audit.record(session, actor, "user.role", username, old=old, new=role)


def list_users(sessions: sessionmaker[Session]) -> list[User]:
    with sessions() as session:
        return list(session.scalars(select(User).order_by(User.username)))


def ensure_first_admin(sessions: sessionmaker[Session], audit: AuditLog,
                       username: str = "admin") -> tuple[str, str] | None:
    """Create the first admin when there is no user at all; return (username, password) to print once.

    Returns None when users exist already (a second ``allerta init`` changes nothing).
    """
    with sessions() as session:
        if session.scalar(select(func.count()).select_from(User)):
            return None
    password = secrets.token_urlsafe(12)  # 16 characters, about 96 bits
    add_user(sessions, audit, username, password, "admin", actor="init")
    return username, password


@dataclass(frozen=True)
class LoginResult:
    user: User | None
    problem: str | None  # 'bad' | 'locked' | 'disabled' | None


def authenticate(sessions: sessionmaker[Session], audit: AuditLog, username: str, password: str, *,
                 attempts: int, lockout_minutes: int, remote: str | None = None,
                 now: dt.datetime | None = None) -> LoginResult:
    """Check a login; count failures and lock the account after ``attempts`` of them in a row."""
    now = now or utcnow()
    with audit.transaction() as session:
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            verify_password(_dummy_hash(), password)
            audit.record(session, username[:80] or "-", "login.failed", username[:80], reason="unknown user",
                         remote=remote)
            return LoginResult(None, "bad")
        if user.locked_until is not None and user.locked_until > now:
            audit.record(session, username, "login.refused", username, reason="locked", remote=remote)
            return LoginResult(None, "locked")
        if not verify_password(user.password_hash, password):
            user.failed_logins += 1
            locked = user.failed_logins >= attempts
            if locked:
                user.locked_until = now + dt.timedelta(minutes=lockout_minutes)
                user.failed_logins = 0
            audit.record(session, username, "login.locked" if locked else "login.failed", username,
                         remote=remote)
            return LoginResult(None, "locked" if locked else "bad")
        if not user.active:
            audit.record(session, username, "login.refused", username, reason="disabled", remote=remote)
            return LoginResult(None, "disabled")
        user.failed_logins, user.locked_until, user.last_login_at = 0, None, now
        if _hasher.check_needs_rehash(user.password_hash):
            user.password_hash = hash_password(password)
        audit.record(session, username, "login", username, remote=remote)
        return LoginResult(user, None)
