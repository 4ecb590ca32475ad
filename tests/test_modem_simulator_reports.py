"""Where each profile puts a status report, per AT+CNMI <ds> and AT+CPMS <mem3>, as its real model does
(docs/simulators.md, "Status reports"); and errors the simulator used to swallow, now answered and logged.

Byte transcripts of the pure AT engine. Before, every profile stored reports in "SR": Debian's gammu-smsd
(1.42) never reads that memory, wrote an empty report file per +CDSI and let the memory fill; smstools3
polls the memory it reads incoming SMS from and never saw them."""
from __future__ import annotations

import pytest
from gsmmodem.pdu import decodeSmsPdu

from modem.simulator.profiles import GENERIC, HUAWEI, SIM800, TELIT
from tests.test_modem_simulator_engine import NOW, make_modem, out, pdu_for, talk


def _report(modem, text="Allerta"):
    """Submit one SMS asking for a report; return what the modem does when the report arrives."""
    pdu, length = pdu_for(text, reference=0)
    talk(modem, f"AT+CMGS={length}\r".encode())
    actions = modem.feed(pdu.encode() + b"\x1a", NOW)
    (timer,) = [a.timer for a in actions if a.timer]
    return modem.on_timer(timer, NOW + 2)


def _events(actions):
    return [a.event for a in actions if a.event]


@pytest.mark.parametrize("profile, mem3", [(GENERIC, "ME"), (GENERIC, "SM"), (HUAWEI, "SM")],
                         ids=["generic-ME", "generic-SM", "huawei-SM"])
def test_ds2_stores_the_report_with_the_received_sms_and_announces_it_there(profile, mem3):
    modem = make_modem(profile)
    talk(modem, b"ATE0\r")
    talk(modem, f'AT+CPMS="{mem3}","{mem3}","{mem3}"\r'.encode())
    talk(modem, b"AT+CNMI=2,1,0,2,0\r")
    actions = _report(modem)
    assert out(actions) == f'\r\n+CDSI: "{mem3}",1\r\n'.encode()
    assert {m: n for m, n in modem.store.counts().items() if n} == {mem3: 1}
    # What smstools3 and gammu-smsd do: read the inbox memory, find a report, delete it.
    listing = talk(modem, b"AT+CMGL=4\r").split(b"\r\n")
    assert listing[1].startswith(b"+CMGL: 1,0,,")
    assert decodeSmsPdu(listing[2].decode())["type"] == "SMS-STATUS-REPORT"
    assert talk(modem, b"AT+CMGD=1\r") == b"\r\nOK\r\n"
    assert modem.store.used(mem3) == 0


def test_ds0_stores_the_report_silently_where_smstools3_polls():
    """smstools3 sets no AT+CNMI of its own: <ds> stays 0 and it finds reports by polling."""
    modem = make_modem(GENERIC)
    talk(modem, b"ATE0\r")
    talk(modem, b'AT+CPMS="ME","ME","ME"\r')
    actions = _report(modem)
    assert out(actions) == b""
    assert _events(actions)[0]["memory"] == "ME" and modem.store.used("ME") == 1
    assert talk(modem, b"AT+CPMS?\r").startswith(b'\r\n+CPMS: "ME",1,100,')


def test_telit_keeps_reports_in_sr_whatever_mem3_says():
    modem = make_modem(TELIT)
    talk(modem, b"ATE0\r")
    talk(modem, b'AT+CPMS="ME","ME","ME"\r')
    talk(modem, b"AT+CNMI=2,1,0,2,0\r")
    assert out(_report(modem)) == b'\r\n+CDSI: "SR",1\r\n'
    assert modem.store.counts() == {"SM": 0, "ME": 0, "SR": 1}


def test_sim800_refuses_ds2_and_loses_a_report_it_may_not_route():
    modem = make_modem(SIM800)
    talk(modem, b"ATE0\r")
    talk(modem, b"AT+CMEE=1\r")
    assert talk(modem, b"AT+CNMI=2,1,0,2,0\r") == b"\r\n+CMS ERROR: 303\r\n"
    actions = _report(modem)   # <ds> still 0: a SIM800 has no memory for reports
    assert out(actions) == b""
    (event,) = _events(actions)
    assert "stores no reports" in event["dropped"] and sum(modem.store.counts().values()) == 0


def test_cnma_after_a_routed_report_is_not_expected():
    """smstools3 acknowledges each routed +CDS; without AT+CSMS=1 a modem answers 27.005's 340."""
    modem = make_modem(SIM800)
    talk(modem, b"ATE0\r")
    talk(modem, b"AT+CMEE=1\r")
    assert talk(modem, b"AT+CNMA\r") == b"\r\n+CMS ERROR: 340\r\n"


def test_the_memory_does_not_fill_when_the_client_deletes_what_it_read():
    """gammu-smsd's loop: poll, read, delete. More reports than the memory holds all arrive."""
    modem = make_modem(GENERIC)
    talk(modem, b"ATE0\r")
    talk(modem, b"AT+CNMI=2,1,0,2,0\r")
    capacity = modem.store.capacity["SM"]
    for _ in range(capacity + 5):
        assert out(_report(modem)) == b'\r\n+CDSI: "SM",1\r\n'
        assert talk(modem, b"AT+CMGD=1\r") == b"\r\nOK\r\n"
    assert modem.counters.status_reports == capacity + 5


def test_a_refused_pdu_is_answered_and_logged_with_the_reason():
    modem = make_modem()
    talk(modem, b"ATE0\r")
    talk(modem, b"AT+CMEE=1\r")
    talk(modem, b"AT+CMGS=20\r")
    actions = modem.feed(b"0011000C91\x1a", NOW)
    assert out(actions) == b"\r\n+CMS ERROR: 304\r\n"
    (event,) = _events(actions)
    assert event["event"] == "submit_refused" and event["reply"] == "+CMS ERROR: 304"
    assert "length mismatch" in event["reason"] and event["body"] == "0011000C91"


def test_a_simulator_bug_answers_error_and_is_logged(monkeypatch):
    """Before, an exception in a handler escaped feed(): the client waited for ever, the port went silent."""
    from modem.simulator import commands

    def broken(modem, command, now):
        raise UnicodeEncodeError("latin-1", "👍", 0, 1, "ordinal not in range(256)")

    monkeypatch.setitem(commands.HANDLERS, "+CSQ", broken)
    modem = make_modem()
    talk(modem, b"ATE0\r")
    actions = modem.feed(b"AT+CSQ\r", NOW)
    assert out(actions) == b"\r\nERROR\r\n"
    (event,) = _events(actions)
    assert event["event"] == "error" and event["doing"] == "answering 'AT+CSQ'"
    assert event["error"].startswith("UnicodeEncodeError") and "Traceback" in event["traceback"]
    assert talk(modem, b"AT\r") == b"\r\nOK\r\n"   # and the modem goes on answering


def test_the_pool_logs_error_events_and_refused_pdus_with_the_port(caplog, tmp_path):
    """On stderr even without --log; and in the --log file too."""
    from modem.simulator.at_engine import ModemConfig
    from modem.simulator.pool import ModemPool, PoolSettings

    pool = ModemPool(None, PoolSettings(1, ("generic",), 0, ModemConfig(), log_path=tmp_path / "log.jsonl"))
    port = pool.ports["modem-0"]
    port.port = "/dev/pts/77"
    pool._log = open(tmp_path / "log.jsonl", "a", encoding="utf-8")
    try:
        with caplog.at_level("WARNING", logger="modem.simulator.pool"):
            pool._record({"event": "error", "modem": "modem-0", "doing": "answering 'AT+CSQ'",
                          "error": "UnicodeEncodeError: x", "traceback": "Traceback ..."}, port)
            pool._record({"event": "submit_refused", "modem": "modem-0", "reply": "+CMS ERROR: 304",
                          "reason": "length mismatch"}, port)
    finally:
        pool._log.close()
    messages = [r.getMessage() for r in caplog.records]
    assert "modem-0 on /dev/pts/77: UnicodeEncodeError: x while answering 'AT+CSQ'" in messages[0]
    assert "modem-0 on /dev/pts/77: PDU refused with +CMS ERROR: 304: length mismatch" in messages[1]
    logged = (tmp_path / "log.jsonl").read_text().splitlines()
    assert len(logged) == 2 and all('"port": "/dev/pts/77"' in line for line in logged)
