"""Panel users: roles, password hashing (Argon2id), lockout, the first admin."""
from __future__ import annotations

import datetime as dt
import functools
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.core.db import utcnow
from gateway.core.models_panel import User
from gateway.core.audit import AuditLog
from web.throttle import (ADDRESS, ADDRESS_POLICY, PAIR, NameBlock, blocked_for, blocked_names, clear, clear_name,
                          count_failure, forget_old, pair_key, pair_policy)

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


class PasswordError(UserError):
    """A password the policy refuses; ``code`` (short, username, common, repetitive) picks the panel's
    translated message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def password_problem(password: str, username: str = "") -> PasswordError | None:
    """Length alone let `aaaaaaaaaa` and `password123` through. Also refused: the username in the
    password, a handful of distinct characters, and the common passwords and words of
    web/common_passwords.txt, trailing digits and symbols or not ("Password2024!")."""
    if len(password) < MIN_PASSWORD:
        return PasswordError("short", f"the password must be at least {MIN_PASSWORD} characters long")
    folded = password.casefold()
    if len(username) >= 3 and username.casefold() in folded:
        return PasswordError("username", "the password must not contain the username")
    if len(set(folded)) < 5:
        return PasswordError("repetitive", "the password repeats too few characters (at least 5 different ones)")
    stem = folded.rstrip("0123456789!?.,;:-_@#$%&*+=/ ")
    if folded in _common_passwords() or stem in _common_passwords() or len(stem) < 4:
        return PasswordError("common", "the password is among the most common ones; choose another")
    return None


def generate_password(username: str) -> str:
    """16 random characters (about 96 bits) that the policy accepts (a random draw could, rarely, hold
    the username)."""
    while True:
        password = secrets.token_urlsafe(12)
        if password_problem(password, username) is None:
            return password


@functools.cache
def _common_passwords() -> frozenset[str]:
    text = (Path(__file__).with_name("common_passwords.txt")).read_text(encoding="utf-8")
    return frozenset(line.strip().casefold() for line in text.splitlines() if line.strip() and not line.startswith("#"))


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
    problem = password_problem(password, username)
    if problem:
        raise problem
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
    problem = password_problem(password, username)
    if problem:
        raise problem
    with audit.transaction() as session:
        user = _get(session, username)
        user.password_hash = hash_password(password)
        clear_name(session, username)
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
        clear_name(session, username)
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


def refused_names(sessions: sessionmaker[Session], now: dt.datetime | None = None) -> dict[str, NameBlock]:
    """Names refused right now from some address (case-folded), for the users page and ``users list``."""
    with sessions() as session:
        return blocked_names(session, now or utcnow())


def ensure_first_admin(sessions: sessionmaker[Session], audit: AuditLog,
                       username: str = "admin") -> tuple[str, str] | None:
    """Create the first admin when there is no user at all; return (username, password) to print once.

    Returns None when users exist already (a second ``allerta init`` changes nothing).
    """
    with sessions() as session:
        if session.scalar(select(func.count()).select_from(User)):
            return None
    password = generate_password(username)
    add_user(sessions, audit, username, password, "admin", actor="init")
    return username, password


@dataclass(frozen=True)
class LoginResult:
    user: User | None
    problem: str | None  # 'bad' | 'throttled' | 'disabled' | None
    wait: dt.timedelta | None = None  # with 'throttled': how long before this name and address are heard


def authenticate(sessions: sessionmaker[Session], audit: AuditLog, username: str, password: str, *,
                 attempts: int, lockout_minutes: int, remote: str | None = None,
                 now: dt.datetime | None = None) -> LoginResult:
    """Check a login. Failures are counted per (name, address) and per address (web/throttle.py), never
    against the account alone, and every answer costs one password hash: an unknown name, a wrong
    password and a throttled attempt look and take the same."""
    now = now or utcnow()
    with audit.transaction() as session:
        user = session.scalar(select(User).where(User.username == username))
        refused = _password_check(session, audit, user, username, password, remote, now, attempts=attempts,
                                  lockout_minutes=lockout_minutes,
                                  reason="unknown user" if user is None else "wrong password")
        if refused is not None:
            return refused
        if not user.active:
            audit.record(session, username, "login.refused", username, reason="disabled", remote=remote)
            return LoginResult(None, "disabled")
        user.last_login_at = now
        if _hasher.check_needs_rehash(user.password_hash):
            user.password_hash = hash_password(password)
        audit.record(session, username, "login", username, remote=remote)
        return LoginResult(user, None)


def check_current_password(sessions: sessionmaker[Session], audit: AuditLog, username: str, password: str, *,
                           attempts: int, lockout_minutes: int, remote: str | None = None,
                           now: dt.datetime | None = None) -> LoginResult:
    """The current password asked before a change: counted towards the throttle like a sign-in, or a
    stolen session could try passwords without limit."""
    now = now or utcnow()
    with audit.transaction() as session:
        user = _get(session, username)
        refused = _password_check(session, audit, user, username, password, remote, now, attempts=attempts,
                                  lockout_minutes=lockout_minutes, reason="wrong current password")
        return refused or LoginResult(user, None)


def _password_check(session: Session, audit: AuditLog, user: User | None, username: str, password: str,
                    remote: str | None, now: dt.datetime, *, attempts: int, lockout_minutes: int,
                    reason: str) -> LoginResult | None:
    """The refusal, or None when ``password`` is ``user``'s and neither the name from this address nor
    the address is throttled. Exactly one Argon2 verification on every path: an unknown name is checked
    against a dummy hash, a throttled one too, so no answer is faster than another."""
    wait = _throttled(session, username, remote, now)
    if wait is not None:
        verify_password(_dummy_hash(), password)
        return LoginResult(None, "throttled", wait)
    matches = verify_password(user.password_hash if user is not None else _dummy_hash(), password)
    if user is None or not matches:
        wait = _count_refusal(session, audit, username, remote, now, attempts=attempts,
                              lockout_minutes=lockout_minutes, reason=reason)
        return LoginResult(None, "bad" if wait is None else "throttled", wait)
    clear(session, PAIR, pair_key(username, remote))
    return None


def _throttled(session: Session, username: str, remote: str | None, now: dt.datetime) -> dt.timedelta | None:
    waits = [wait for wait in (blocked_for(session, PAIR, pair_key(username, remote), now),
                               blocked_for(session, ADDRESS, remote or "-", now)) if wait is not None]
    return max(waits) if waits else None


def _count_refusal(session: Session, audit: AuditLog, username: str, remote: str | None, now: dt.datetime, *,
                   attempts: int, lockout_minutes: int, reason: str) -> dt.timedelta | None:
    """Count one refused password for the name from this address and for the address; tell the audit log
    only when a window opens or a block starts (with the counts), so a flood adds a few entries."""
    forget_old(session, now)
    name = username[:80] or "-"
    pair = count_failure(session, PAIR, pair_key(username, remote), pair_policy(attempts, lockout_minutes), now)
    address = count_failure(session, ADDRESS, remote or "-", ADDRESS_POLICY, now)
    if pair.opened:
        audit.record(session, name, "login.failed", name, reason=reason, remote=remote,
                     **({"earlier_failures": pair.earlier} if pair.earlier else {}))
    if pair.newly_blocked:
        audit.record(session, name, "login.blocked", name, remote=remote, failures=pair.failures,
                     minutes=lockout_minutes)
    if address.newly_blocked:
        audit.record(session, name, "login.throttled", remote or "-", failures=address.failures)
    waits = [wait for wait in (pair.blocked, address.blocked) if wait is not None]
    return max(waits) if waits else None
