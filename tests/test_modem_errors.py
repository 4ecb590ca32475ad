import pytest

from modem.at_parse import parse_cops, parse_cpin, parse_creg, parse_csq
from modem.errors import classify_cms, classify_tp_status


@pytest.mark.parametrize("code", [1, 21, 28, 96])
def test_recipient_errors_are_permanent(code):
    verdict = classify_cms(code)
    assert verdict.failure.permanent and not verdict.line_fault
    assert str(verdict.failure).startswith(f"+CMS ERROR {code}: ")


@pytest.mark.parametrize("code", [38, 41, 42, 500, 512, 513, 514, 515, 600])
def test_line_errors_are_transient_and_count_against_the_modem(code):
    verdict = classify_cms(code)
    assert not verdict.failure.permanent and verdict.line_fault


def test_named_reasons():
    assert str(classify_cms(42).failure) == "+CMS ERROR 42: congestion"
    assert str(classify_cms(1).failure) == "+CMS ERROR 1: unassigned number"


def test_at_parsers():
    assert parse_csq(["+CSQ: 17,99", "OK"]) == 17
    assert parse_creg(["+CREG: 0,1", "OK"]) == "home"
    assert parse_creg(["+CREG: 2,5,\"00C3\",\"0010\"", "OK"]) == "roaming"
    assert parse_creg(["+CREG: 1, E006B, ABE0016"]) == "home"   # Huawei unquoted form
    assert parse_creg(["+CREG: 0,3"]) == "denied"
    assert parse_cops(['+COPS: 0,0,"TIM",2', "OK"]) == "TIM"
    assert parse_cops(["+COPS: 0", "OK"]) is None
    assert parse_cpin(["+CPIN: READY", "OK"]) == "READY"
    assert parse_cpin(['+CPIN: "SIM PIN"']) == "SIM PIN"


def test_split_notifications_one_urc_at_a_time():
    from modem.at_parse import split_notifications
    burst = ['+CDSI: "SR",5', '+CDSI: "SR",6', "+CDS: 25", "0791...", "+CRING: VOICE", '+CLIP: "+39333",145',
             '+CMTI: "SM",1']
    assert split_notifications(burst) == [['+CDSI: "SR",5'], ['+CDSI: "SR",6'], ["+CDS: 25", "0791..."],
                                          ["+CRING: VOICE", '+CLIP: "+39333",145'], ['+CMTI: "SM",1']]


def test_parse_cmgl():
    from modem.at_parse import parse_cmgl
    reply = ["+CMGL: 1,0,,24", "07919333", "+CMGL: 4,1,,25", "0791AAAA", "OK"]
    assert parse_cmgl(reply) == [(1, "07919333"), (4, "0791AAAA")]


def test_log_readers_ignore_a_half_written_last_line():
    from gateway.core.files import complete_lines
    assert complete_lines('{"a": 1}\n{"b": 2}\n{"event": "statu') == ['{"a": 1}', '{"b": 2}']
    assert complete_lines('{"a": 1}\n') == ['{"a": 1}']
    assert complete_lines("") == []


@pytest.mark.parametrize("status, verdict", [
    (0x00, "delivered"), (0x01, "delivered"), (0x02, "delivered"), (0x1F, "delivered"),
    (0x20, "pending"), (0x30, "pending"), (0x3F, "pending"),
    (0x40, "failed"), (0x41, "failed"), (0x60, "failed"), (0x65, "failed"), (0x7F, "failed"),
])
def test_tp_status_classification(status, verdict):
    assert classify_tp_status(status) == verdict


def test_parse_csca():
    from modem.at_parse import parse_csca
    assert parse_csca(['+CSCA: "+393359609600",145', "OK"]) == "+393359609600"
    assert parse_csca(['+CSCA: "",129', "OK"]) == ""
    assert parse_csca(["OK"]) is None
