"""Throttling refused sign-ins and API tokens, per (name, address) and per address.

Locking an *account* after five failures let anyone keep the mayor's approver out for good with five
POSTs every quarter of an hour. Failures are therefore counted where they come from:

- a name from one address (``pair``): after ``[web] lockout_attempts`` failures that name is refused
  *from that address* for ``lockout_minutes``; its owner still signs in from their own desk;
- an address (``address``, ``api``): a day's first failures are free, then each one makes the address
  wait longer before it is heard again (1 s, 2 s, 4 s ... up to 15 minutes), with no CAPTCHA.

A refusal is the same whether the name exists or not (text, status and the one password hash each
answer costs), so the throttle confirms no username. The audit log gets one entry when a window's first
failure happens and one when it blocks, each with the count, instead of one per refused POST.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from gateway.core.models_panel import LoginThrottle

PAIR, ADDRESS, API = "pair", "address", "api"


@dataclass(frozen=True)
class Policy:
    """``free`` failures within ``window`` cost nothing; failure number free+k waits
    min(first_wait * growth**(k-1), max_wait) before the next attempt is heard."""
    free: int
    window: dt.timedelta
    first_wait: dt.timedelta
    max_wait: dt.timedelta
    growth: float = 2.0

    def wait(self, failures: int) -> dt.timedelta | None:
        beyond = failures - self.free
        if beyond <= 0:
            return None
        seconds = self.first_wait.total_seconds() * self.growth ** min(beyond - 1, 64)
        return min(dt.timedelta(seconds=seconds), self.max_wait)


def pair_policy(attempts: int, lockout_minutes: int) -> Policy:
    lockout = dt.timedelta(minutes=lockout_minutes)
    return Policy(free=attempts - 1, window=lockout, first_wait=lockout, max_wait=lockout, growth=1.0)


DAY = dt.timedelta(days=1)
ADDRESS_POLICY = Policy(free=10, window=DAY, first_wait=dt.timedelta(seconds=1), max_wait=dt.timedelta(minutes=15))
API_POLICY = Policy(free=20, window=DAY, first_wait=dt.timedelta(seconds=1), max_wait=dt.timedelta(minutes=15))


def pair_key(username: str, address: str | None) -> str:
    # Case-folded: "Anna" and "anna" are one name to an attacker trying both.
    return f"{address or '-'}|{username.casefold()[:150]}"


def blocked_for(session: Session, scope: str, key: str, now: dt.datetime) -> dt.timedelta | None:
    """How long ``key`` must still wait, or None when it may try now."""
    row = _row(session, scope, key)
    if row is None or row.blocked_until is None or row.blocked_until <= now:
        return None
    return row.blocked_until - now


@dataclass(frozen=True)
class Counted:
    """One failure counted: the window's count, whether this failure opened the window or started a
    block (the two moments the audit log is told), and the failures of the window it replaced."""
    failures: int
    opened: bool
    blocked: dt.timedelta | None
    newly_blocked: bool
    earlier: int


def count_failure(session: Session, scope: str, key: str, policy: Policy, now: dt.datetime) -> Counted:
    row = _row(session, scope, key)
    earlier = 0
    if row is None:
        row = LoginThrottle(scope=scope, key=key, window_start=now, failures=0, audited=0)
        session.add(row)
    elif row.window_start + policy.window <= now and (row.blocked_until is None or row.blocked_until <= now):
        earlier = row.failures - row.audited  # what the last window did after its last audit entry
        row.window_start, row.failures, row.audited, row.blocked_until = now, 0, 0, None
    was_blocked = row.blocked_until is not None and row.blocked_until > now
    row.failures += 1
    wait = policy.wait(row.failures)
    if wait is not None:
        row.blocked_until = now + wait
    opened = row.failures == 1
    newly_blocked = wait is not None and not was_blocked and row.failures == policy.free + 1
    if opened or newly_blocked:
        row.audited = row.failures
    session.flush()
    return Counted(row.failures, opened, wait, newly_blocked, earlier)


def clear(session: Session, scope: str, key: str) -> None:
    session.execute(delete(LoginThrottle).where(LoginThrottle.scope == scope, LoginThrottle.key == key))


@dataclass(frozen=True)
class NameBlock:
    """A name refused now: from how many addresses, until when (the latest)."""
    addresses: int
    until: dt.datetime


def blocked_names(session: Session, now: dt.datetime) -> dict[str, NameBlock]:
    """The (case-folded) names refused from some address right now, for the users page and CLI."""
    blocks: dict[str, NameBlock] = {}
    for key, until in session.execute(select(LoginThrottle.key, LoginThrottle.blocked_until).where(
            LoginThrottle.scope == PAIR, LoginThrottle.blocked_until > now)):
        name = key.split("|", 1)[1]
        earlier = blocks.get(name)
        blocks[name] = NameBlock((earlier.addresses if earlier else 0) + 1,
                                 max(until, earlier.until) if earlier else until)
    return blocks


def clear_name(session: Session, username: str) -> None:
    """Forget the refusals of a name from every address: an admin who sets its password or enables
    it vouches for whoever will now sign in with it."""
    suffix = "|" + username.casefold()[:150]
    for row in session.scalars(select(LoginThrottle).where(LoginThrottle.scope == PAIR,
                                                           LoginThrottle.key.endswith(suffix, autoescape=True))):
        session.delete(row)


def forget_old(session: Session, now: dt.datetime) -> None:
    """Rows whose window and block are both over by a day: nothing in them matters any more."""
    session.execute(delete(LoginThrottle).where(LoginThrottle.window_start < now - 2 * DAY,
                                                (LoginThrottle.blocked_until.is_(None))
                                                | (LoginThrottle.blocked_until < now - DAY)))


def retry_after(wait: dt.timedelta) -> int:
    """Whole seconds for the Retry-After header, never 0."""
    return max(1, math.ceil(wait.total_seconds()))


def _row(session: Session, scope: str, key: str) -> LoginThrottle | None:
    return session.scalar(select(LoginThrottle).where(LoginThrottle.scope == scope, LoginThrottle.key == key))
