"""The modem driver's side of incoming SMS, without a port: a listing handed over and deleted only
once committed, a PDU it cannot read left stored (and logged once), +CMT read with its PDU line and
acknowledged (AT+CNMA) only after the commit."""
from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import logging
import threading
import time

from gsmmodem.exceptions import CmsError

from modem.at_parse import split_notifications
from modem.driver import ModemDriver, _UrcSafeGsmModem
from modem.simulator.pdu_codec import build_deliver

WHEN = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.timezone.utc)
GOOD, _ = build_deliver("+393331110001", "OK", "+393359609600", WHEN)
LATER, _ = build_deliver("+393331110002", "AIUTO", "+393359609600", WHEN)
BAD = "0791933395066900040C9193"


class FakeLibrary:
    """What the driver uses of GsmModem: write, its lock, and the memory it last selected."""

    def __init__(self, replies: dict[str, list[str]]) -> None:
        self.replies, self.lines = replies, []
        self._txLock = threading.RLock()
        self._smsMemReadDelete = None

    @contextlib.contextmanager
    def _handler_turn(self):
        with self._txLock:
            yield

    def write(self, line: str, timeout: float = 10) -> list[str]:
        self.lines.append(line)
        if line.startswith("AT+CMGD") and "refuse" in self.replies:
            raise CmsError(line, 321)
        return self.replies.get(line, ["OK"])


def settled(ok: bool) -> concurrent.futures.Future:
    future: concurrent.futures.Future = concurrent.futures.Future()
    if ok:
        future.set_result(None)
    else:
        future.set_exception(RuntimeError("database held"))
    return future


def make_driver(commits: dict[str, bool], handed: list) -> ModemDriver:
    def on_part(part):
        handed.append(part)
        return settled(commits.get(part.sender, True))
    return ModemDriver("/dev/null", 115200, "", on_status_reports=lambda reports: settled(True), on_part=on_part,
                       on_lost=lambda reason: None)


def test_only_what_was_committed_is_deleted_and_a_bad_pdu_stays_logged_once(caplog):
    listing = ["+CMGL: 1,0,,22", GOOD, "+CMGL: 2,0,,22", LATER, "+CMGL: 3,0,,12", BAD, "OK"]
    modem = FakeLibrary({"AT+CMGL=4": listing})
    handed: list = []
    driver = make_driver({"+393331110002": False}, handed)
    with caplog.at_level(logging.WARNING, logger="modem.driver"):
        driver._collect(modem, "SM", None)
        driver._collect(modem, "SM", None)
    assert [p.sender for p in handed] == ["+393331110001", "+393331110002"] * 2
    # 1 committed: deleted; 2 not committed and 3 unreadable: left in the SIM.
    assert modem.lines == ['AT+CPMS="SM"', "AT+CMGL=4", "AT+CMGD=1,0", "AT+CMGL=4", "AT+CMGD=1,0"]
    assert sum("cannot be decoded" in r.message for r in caplog.records) == 1
    assert sum("not recorded now" in r.message for r in caplog.records) == 2


def test_an_announced_slot_found_empty_is_nothing_to_do():
    modem = FakeLibrary({"AT+CMGR=4": ["OK"], "AT+CMGR=5": ["+CMGR: 0,,22", GOOD, "OK"]})
    handed: list = []
    make_driver({}, handed)._collect(modem, "ME", [4, 5])
    assert [p.text for p in handed] == ["OK"]
    assert modem.lines[-1] == "AT+CMGD=5,0"


def test_a_routed_sms_is_acknowledged_after_its_commit_and_refused_without_one():
    for committed, expected in ((True, "AT+CNMA"), (False, "AT+CNMA=2")):
        modem = FakeLibrary({})
        driver = make_driver({"+393331110001": committed}, [])
        driver._modem, driver._acknowledge = modem, True
        driver._routed(GOOD)
        assert modem.lines == [expected]
    # Phase 2 (no AT+CSMS=1): the modem acknowledged it itself; AT+CNMA would be an error.
    modem = FakeLibrary({})
    driver = make_driver({}, [])
    driver._modem = modem
    driver._routed(GOOD)
    assert modem.lines == []


def test_a_cmt_and_its_pdu_line_are_one_notification_even_during_a_command():
    modem = _UrcSafeGsmModem.__new__(_UrcSafeGsmModem)   # no port: only the line handling
    handed: list[list[str]] = []
    modem.notifyCallback = handed.append
    modem._notification, modem._pdu_header, modem._response = [], None, []
    modem._responseEvent = threading.Event()             # a command waits for its reply
    modem._handleLineRead("+CMT: ,22")
    modem._handleLineRead(GOOD)
    modem._handleLineRead('+CMT: "",22')
    modem._handleLineRead(LATER)
    assert handed == [["+CMT: ,22", GOOD], ['+CMT: "",22', LATER]]
    assert split_notifications(['+CMTI: "SM",1', "+CMT: ,22", GOOD]) == [['+CMTI: "SM",1'], ["+CMT: ,22", GOOD]]


def test_the_memories_are_swept_between_sends_only_when_due():
    modem = FakeLibrary({"AT+CMGL=4": ["+CMGL: 7,1,,22", GOOD, "OK"]})
    handed: list = []
    driver = make_driver({}, handed)
    driver._modem, driver.alive = modem, True
    driver.service_inbox()
    # A message a lost +CMTI left behind, found in both memories' listings (the fake lists the same).
    assert [line for line in modem.lines if "CMGL" in line or "CPMS" in line] == [
        'AT+CPMS="SM"', "AT+CMGL=4", 'AT+CPMS="ME"', "AT+CMGL=4"]
    assert len(handed) == 2
    modem.lines.clear()
    driver.service_inbox()                 # not due again for INBOX_SWEEP_INTERVAL
    assert modem.lines == []
    driver._next_inbox_sweep = time.monotonic() - 1
    driver.service_inbox()
    assert "AT+CMGL=4" in modem.lines
