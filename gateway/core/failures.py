"""Why a delivery attempt failed, as a value: from the modem or the PBX to the store and the panel.

A transport builds one ``Failure`` where it learns what went wrong (the +CMS
code the modem answered, the Q.850 cause a call ended with) and it travels
unchanged through ``DeliveryFailed``: nobody downstream parses a reason text to
get the code back, and the text people read is rendered once, here.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class FailureKind(StrEnum):
    CMS = "cms"            # the modem answered +CMS ERROR <code> (3GPP TS 27.005 §3.2.5)
    CME = "cme"            # the modem answered +CME ERROR <code> (3GPP TS 27.007 §9.2)
    CALL = "call"          # a call that reached no one; code: its Q.850 hangup cause, when known
    LINE = "line"          # the modem, its port or the trunk failed: not the recipient's doing
    NO_LINE = "no_line"    # nothing free or allowed to carry it: nothing left us
    TEXT = "text"          # the message cannot be encoded
    NUMBER = "number"      # the number cannot be addressed or dialled
    INTERNAL = "internal"  # a bug in the engine


# How the standard writes a coded error; the text follows after a colon.
_CODE_PREFIX = {FailureKind.CMS: "+CMS ERROR", FailureKind.CME: "+CME ERROR"}


@dataclass(frozen=True)
class Failure:
    """One failure: what kind, the code its standard gives it, words for people, and
    whether trying this recipient again can ever help.

    ``text`` does not repeat a +CMS/+CME code (``str()`` puts it in front, once).
    A call's text names its Q.850 cause in Asterisk's words ("busy (Q.850 17 user
    busy)"): the core holds no Q.850 table, and ``code`` keeps the number for the
    attempts.cause column the panel labels.
    """
    kind: FailureKind
    text: str
    code: int | None = None
    permanent: bool = False

    def __str__(self) -> str:
        prefix = _CODE_PREFIX.get(self.kind)
        if prefix is not None and self.code is not None:
            return f"{prefix} {self.code}: {self.text}"
        return self.text
