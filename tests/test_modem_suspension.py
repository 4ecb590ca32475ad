"""When a modem leaves the rotation and how it comes back, on a clock the test moves."""
from modem.suspension import SILENT_PROBES_BEFORE_REOPEN, Suspension, off_network


def test_the_third_line_fault_in_a_row_takes_the_modem_out(fake_clock):
    suspension = Suspension(3, 60.0, clock=fake_clock)
    assert [suspension.send_ended(False, line_fault=True) for _ in range(3)] == [False, False, True]
    assert suspension.consecutive_errors == 3


def test_a_success_or_a_recipient_failure_breaks_the_series(fake_clock):
    suspension = Suspension(2, 60.0, clock=fake_clock)
    suspension.send_ended(False, line_fault=True)
    assert not suspension.send_ended(True, line_fault=False)
    assert not suspension.send_ended(False, line_fault=True)
    assert not suspension.send_ended(False, line_fault=False)   # e.g. an unknown number: not the modem's fault
    assert not suspension.send_ended(False, line_fault=True)
    assert suspension.send_ended(False, line_fault=True)


def test_a_suspended_modem_is_probed_after_the_probe_interval(fake_clock):
    suspension = Suspension(3, 60.0, clock=fake_clock)
    suspension.probe_at = suspension.next_probe()
    fake_clock.now += 59.9
    assert not suspension.probe_due(fake_clock.now)
    fake_clock.now += 0.1
    assert suspension.probe_due(fake_clock.now)


def test_a_probe_that_finds_the_modem_registered_brings_it_back(fake_clock):
    suspension = Suspension(3, 60.0, clock=fake_clock)
    assert suspension.probe_answered("home")
    assert suspension.probe_answered("roaming")
    assert not suspension.probe_answered("searching")
    assert not suspension.probe_answered(None)


def test_back_in_rotation_the_old_errors_no_longer_count(fake_clock):
    suspension = Suspension(2, 60.0, clock=fake_clock)
    suspension.send_ended(False, line_fault=True)
    suspension.back_in_rotation()
    assert not suspension.send_ended(False, line_fault=True)


def test_a_modem_silent_through_its_probes_is_reopened_and_the_count_starts_over(fake_clock):
    suspension = Suspension(3, 60.0, clock=fake_clock)
    verdicts = [suspension.probe_silent() for _ in range(2 * SILENT_PROBES_BEFORE_REOPEN)]
    assert verdicts == ([False] * (SILENT_PROBES_BEFORE_REOPEN - 1) + [True]) * 2


def test_an_answer_between_silent_probes_starts_the_count_over(fake_clock):
    suspension = Suspension(3, 60.0, clock=fake_clock)
    for _ in range(SILENT_PROBES_BEFORE_REOPEN - 1):
        suspension.probe_silent()
    suspension.probe_answered("searching")
    assert not suspension.probe_silent()


def test_a_modem_off_the_network_must_leave_the_rotation():
    assert off_network("denied") and off_network("unregistered") and off_network("searching")
    assert not off_network("home") and not off_network("roaming") and not off_network(None)
