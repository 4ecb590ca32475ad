"""What the lines finished, made durable before the database has it (as report_spool.py does for
status reports and inbound_spool.py for received parts).

A modem's +CMGS answer, a call's outcome: once the line has said it, it cannot be asked again. The
database writer may hold it in memory for a long time (PostgreSQL stopped, failing over to the
standby, the network to it cut: the writer retries until it lands), and an engine killed meanwhile
would forget that the SMS went: the next start would send it again, flagged. So each outcome is
appended here and fsync'd, then queued for the database; a ``landed`` line follows its commit.
At the next start the outcomes without their ``landed`` line are recorded before anything else
(before the interrupted attempts are recovered: those it records are not resent), once each:
``record_once`` skips an attempt whose outcome the database already has.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select

from gateway.core.channels import DeliveryFailed, SubmitReceipt
from gateway.core.failures import Failure, FailureKind
from gateway.core.models import Attempt
from gateway.core.report_spool import ReportSpool
from gateway.core.retry import AlertPolicy, RetryVerdict
from gateway.core.states import AttemptOutcome, Channel, DeliveryState
from gateway.core.store import ClaimedDelivery, Store

# An attempt in one of these has no outcome on record yet: the journal's may be written.
OPEN_ATTEMPT = (AttemptOutcome.CLAIMED, AttemptOutcome.IN_FLIGHT)


@dataclass(frozen=True)
class JournaledOutcome:
    claim: ClaimedDelivery
    verdict: RetryVerdict
    receipt: SubmitReceipt | None = None
    failure: DeliveryFailed | None = None

    @property
    def line(self) -> str:
        line = self.receipt.line if self.receipt is not None else self.failure.line if self.failure else None
        return line or ""


def record_once(store: Store, outcome: JournaledOutcome) -> DeliveryState | None:
    """Record a journaled outcome unless its attempt already has one (recorded before the crash, or
    ended by a recovery): the delivery's state, or None when there was nothing to do."""
    with store.sessions() as s:
        current = s.scalar(select(Attempt.outcome).where(Attempt.id == outcome.claim.attempt_id))
    if current not in OPEN_ATTEMPT:
        return None
    return store.record_result(outcome.claim, outcome.verdict, receipt=outcome.receipt, failure=outcome.failure)


def _time(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse_time(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value is not None else None


def _encode_failure(failure: DeliveryFailed) -> dict:
    return {"kind": failure.failure.kind, "text": failure.failure.text, "code": failure.failure.code,
            "permanent": failure.failure.permanent, "outcome": failure.outcome, "line": failure.line,
            "charge_attempt": failure.charge_attempt, "possible_duplicate": failure.possible_duplicate,
            "duplicate_cause": failure.duplicate_cause, "cause": failure.cause,
            "started_at": _time(failure.started_at), "answered_at": _time(failure.answered_at)}


def _decode_failure(row: dict) -> DeliveryFailed:
    return DeliveryFailed(Failure(FailureKind(row["kind"]), row["text"], row["code"], row["permanent"]),
                          outcome=AttemptOutcome(row["outcome"]), line=row["line"],
                          charge_attempt=row["charge_attempt"], possible_duplicate=row["possible_duplicate"],
                          duplicate_cause=row["duplicate_cause"], cause=row["cause"],
                          started_at=_parse_time(row["started_at"]), answered_at=_parse_time(row["answered_at"]))


def _encode(outcome: JournaledOutcome) -> dict:
    claim = dataclasses.asdict(outcome.claim)
    claim["policy"]["deadline"] = _time(outcome.claim.policy.deadline)
    verdict = dataclasses.asdict(outcome.verdict)
    verdict["next_attempt_at"] = _time(outcome.verdict.next_attempt_at)
    receipt = None
    if outcome.receipt is not None:
        receipt = dataclasses.asdict(outcome.receipt)
        for key in ("started_at", "answered_at", "ended_at"):
            receipt[key] = _time(receipt[key])
    return {"claim": claim, "verdict": verdict, "receipt": receipt,
            "failure": _encode_failure(outcome.failure) if outcome.failure is not None else None}


def _decode(row: dict) -> JournaledOutcome:
    claim = dict(row["claim"])
    policy = dict(claim.pop("policy"))
    policy["deadline"] = _parse_time(policy["deadline"])
    claim = ClaimedDelivery(**{**claim, "channel": Channel(claim["channel"])}, policy=AlertPolicy(**policy))
    verdict = dict(row["verdict"])
    verdict = RetryVerdict(**{**verdict, "state": DeliveryState(verdict["state"]),
                              "next_attempt_at": _parse_time(verdict["next_attempt_at"])})
    receipt = None
    if row["receipt"] is not None:
        receipt = dict(row["receipt"])
        for key in ("started_at", "answered_at", "ended_at"):
            receipt[key] = _parse_time(receipt[key])
        receipt = SubmitReceipt(**{**receipt, "outcome": AttemptOutcome(receipt["outcome"])})
    failure = _decode_failure(row["failure"]) if row["failure"] is not None else None
    return JournaledOutcome(claim, verdict, receipt, failure)


class OutcomeJournal(ReportSpool):
    """The spool of outcomes: one batch per outcome, appended and fsync'd (ReportSpool's file format)."""
    KEY = "outcomes"

    def _encode(self, items: list) -> list:
        return [_encode(outcome) for outcome in items]

    def _decode(self, rows: list) -> list:
        return [_decode(row) for row in rows]
