"""When a modem collects its stored status reports, and which it may delete (pure bookkeeping)."""
from modem.stored_reports import Collection, StoredReports


def test_an_idle_modem_collects_at_once_a_busy_one_in_batches():
    reports = StoredReports(interval=2.0, batch=3, capacity=50)
    assert not reports.due(0.0, idle=True)
    reports.announce("SR", 1, now=10.0)
    assert reports.due(10.0, idle=True)
    assert not reports.due(10.0, idle=False)
    reports.announce("SR", 2, now=10.2)
    assert not reports.due(10.3, idle=False)
    reports.announce("SR", 3, now=10.4)
    assert reports.due(10.4, idle=False)            # the batch is full


def test_a_busy_modem_collects_once_the_oldest_report_waited_the_interval():
    reports = StoredReports(interval=2.0, batch=10, capacity=50)
    reports.announce("SR", 4, now=10.0)
    reports.announce("SR", 5, now=11.5)
    assert not reports.due(11.9, idle=False)
    assert reports.due(12.0, idle=False)


def test_the_report_memory_is_listed_whole_and_others_are_read_by_index():
    reports = StoredReports()
    reports.announce("SR", 3, now=0.0)
    reports.announce("SM", 7, now=0.0)
    work = {w.memory: w for w in reports.take()}
    assert work["SR"] == Collection("SR", deletes=[], list_all=True, announced=[3])
    assert work["SM"] == Collection("SM", deletes=[], list_all=False, announced=[7])
    assert not reports.due(100.0, idle=True)         # taken: nothing pending any more


def test_a_report_is_deleted_only_after_its_commit_and_never_handed_over_twice():
    reports = StoredReports(interval=2.0, batch=10, capacity=50)
    reports.announce("SR", 1, now=0.0)
    reports.take()
    reports.handed_over("SR", [1])
    # Listed again by the next pass while its commit is pending: not handed over again.
    assert not reports.wanted("SR", 1)
    assert reports.in_flight() == 1
    assert not reports.due(100.0, idle=True)         # nothing to delete before the commit
    reports.settled("SR", [1], committed=True, now=5.0)
    assert reports.in_flight() == 0
    assert not reports.wanted("SR", 1)               # deleted at the next pass, not re-read
    assert reports.due(5.0, idle=True) and not reports.due(6.0, idle=False)
    assert reports.due(7.0, idle=False)              # deletes wait at most the interval
    assert reports.take() == [Collection("SR", deletes=[1], list_all=False, announced=[])]
    assert reports.wanted("SR", 1)                   # the slot may hold a new report now


def test_a_failed_commit_leaves_the_report_stored_to_be_read_again():
    reports = StoredReports()
    reports.announce("SR", 2, now=0.0)
    reports.take()
    reports.handed_over("SR", [2])
    reports.settled("SR", [2], committed=False, now=1.0)
    assert reports.wanted("SR", 2)
    # Read again a little later, not in a tight loop while the database fails.
    assert not reports.due(1.0, idle=True) and not reports.due(5.9, idle=True)
    assert reports.due(6.0, idle=True)
    assert reports.take() == [Collection("SR", deletes=[], list_all=True, announced=[2])]


def test_a_failed_pass_gives_its_work_back():
    reports = StoredReports()
    reports.settled("SR", [], committed=True, now=0.0)
    reports.forget("SR", [4, 5], now=0.0)            # e.g. interim reports: deleted, never handed over
    reports.announce("ME", 9, now=0.0)
    work = reports.take()
    assert not reports.due(100.0, idle=True)
    for item in work:
        reports.give_back(item, now=1.0)
    again = {w.memory: w for w in reports.take()}
    assert again["SR"].deletes == [4, 5]
    assert again["ME"].announced == [9]


def test_scan_lists_the_report_memory_even_without_an_announcement():
    reports = StoredReports()
    reports.scan()
    assert reports.due(0.0, idle=False)
    assert reports.take() == [Collection("SR", deletes=[], list_all=True, announced=[])]


def test_a_memory_the_modem_cannot_list_is_read_by_index():
    reports = StoredReports()
    reports.scan()
    reports.listing_refused("SR")
    assert not reports.due(0.0, idle=True)           # nothing to scan for any more
    reports.announce("SR", 6, now=0.0)
    assert reports.take() == [Collection("SR", deletes=[], list_all=False, announced=[6])]
    reports.scan()
    assert not reports.due(0.0, idle=True)


# --- the AT command lines of one pass (the driver, with the library's write faked) ---------
from gsmmodem.exceptions import CmsError  # noqa: E402

from modem.driver import ModemDriver  # noqa: E402

REPORT_PDU = "0006D60B911326880736F4111011719551401110117195714000"


class FakeLibrary:
    """GsmModem.write as the driver uses it: one command line in, the reply's lines out."""

    def __init__(self, replies: dict[str, list[str]], refuse: set[str] = frozenset()) -> None:
        self.replies, self.refuse, self.lines = replies, refuse, []

    def write(self, line: str, timeout: float = 10) -> list[str]:
        self.lines.append(line)
        if line in self.refuse:
            raise CmsError(line, 321)
        return self.replies.get(line, ["OK"])


def driver() -> ModemDriver:
    return ModemDriver("/dev/null", 115200, "", on_status_reports=lambda reports: None,
                       on_part=lambda part: None, on_lost=lambda reason: None)


def test_the_committed_deletes_ride_on_the_listing_line():
    modem = FakeLibrary({"AT+CMGD=1,0;+CMGD=2,0;+CMGL=4": ["+CMGL: 3,0,,25", REPORT_PDU, "OK"]})
    stored = driver()._delete_and_read(modem, Collection("SR", deletes=[1, 2], list_all=True, announced=[3]))
    assert modem.lines == ["AT+CMGD=1,0;+CMGD=2,0;+CMGL=4"]
    assert stored == [(3, REPORT_PDU)]


def test_a_refused_delete_falls_back_to_one_command_at_a_time():
    modem = FakeLibrary({"AT+CMGL=4": ["+CMGL: 3,0,,25", REPORT_PDU, "OK"]},
                        refuse={"AT+CMGD=1,0;+CMGD=2,0;+CMGL=4", "AT+CMGD=1,0"})
    stored = driver()._delete_and_read(modem, Collection("SR", deletes=[1, 2], list_all=True, announced=[3]))
    assert modem.lines == ["AT+CMGD=1,0;+CMGD=2,0;+CMGL=4", "AT+CMGD=1,0", "AT+CMGD=2,0", "AT+CMGL=4"]
    assert stored == [(3, REPORT_PDU)]


def test_long_runs_of_deletes_are_split_over_several_lines():
    modem = FakeLibrary({})
    driver()._delete_and_read(modem, Collection("SR", deletes=list(range(1, 13)), list_all=False))
    assert modem.lines == ["AT" + ";".join(f"+CMGD={i},0" for i in range(1, 11)), "AT+CMGD=11,0;+CMGD=12,0"]


def test_a_modem_that_cannot_list_its_reports_has_them_read_by_index():
    modem = FakeLibrary({"AT+CMGR=3": ["+CMGR: 0,,25", REPORT_PDU, "OK"], "AT+CMGR=4": ["OK"]},
                        refuse={"AT+CMGL=4"})
    the_driver = driver()
    stored = the_driver._delete_and_read(modem, Collection("SR", list_all=True, announced=[3, 4]))
    assert modem.lines == ["AT+CMGL=4", "AT+CMGR=3", "AT+CMGR=4"]
    assert stored == [(3, REPORT_PDU)]                # slot 4 was empty
    the_driver._stored.announce("SR", 5, now=0.0)
    assert the_driver._stored.take() == [Collection("SR", list_all=False, announced=[5])]


def test_a_nearly_full_memory_of_reports_stops_the_sends_until_some_are_deleted():
    reports = StoredReports(interval=2.0, batch=6, capacity=20)
    for index in range(1, 15):
        reports.announce("SR", index, now=0.0)
    assert not reports.full()
    reports.announce("SR", 15, now=0.0)
    assert reports.full()                            # 15 of 20
    reports.take()
    reports.handed_over("SR", list(range(1, 16)))
    assert reports.full()                            # listed, but still stored until committed and deleted
    reports.settled("SR", list(range(1, 16)), committed=True, now=0.1)
    assert reports.full()                            # committed, the deletes still to be sent
    reports.take()
    assert not reports.full()


def test_a_small_memory_is_collected_in_smaller_batches():
    reports = StoredReports(interval=2.0, batch=6, capacity=8)
    reports.announce("SR", 1, now=0.0)
    assert not reports.due(0.0, idle=False)
    reports.announce("SR", 2, now=0.0)
    assert reports.due(0.0, idle=False)              # a quarter of 8
    reports.learn_capacity(0)                        # a reply without a size changes nothing
    assert reports.capacity == 8


def test_parse_cpms():
    from modem.at_parse import parse_cpms_first
    assert parse_cpms_first(["+CPMS: 3,20,5,30,5,30", "OK"]) == (3, 20)
    assert parse_cpms_first(['+CPMS: "SR",0,50,"SM",1,30,"SM",1,30']) == (0, 50)
    assert parse_cpms_first(["OK"]) is None


class ReportMemory(FakeLibrary):
    """A modem whose report memory holds ``count`` reports until they are deleted."""

    def __init__(self, count: int) -> None:
        super().__init__({})
        import threading
        self._txLock = threading.RLock()
        self._smsMemReadDelete = None
        self.stored = set(range(1, count + 1))

    def write(self, line: str, timeout: float = 10) -> list[str]:
        self.lines.append(line)
        reply = []
        for command in line[2:].split(";"):
            if command.startswith("+CPMS="):
                reply.append(f"+CPMS: {len(self.stored)},20,0,30,0,30")
            elif command.startswith("+CMGD="):
                self.stored.discard(int(command[6:].split(",")[0]))
            elif command == "+CMGL=4":
                for index in sorted(self.stored):
                    reply += [f"+CMGL: {index},1,,25", REPORT_PDU]
        return reply + ["OK"]


def test_a_nearly_full_report_memory_holds_the_next_send_until_the_engine_committed_and_it_deleted():
    import concurrent.futures
    import threading

    commits: list[concurrent.futures.Future] = []

    def hand_over(reports):
        future = concurrent.futures.Future()
        commits.append(future)
        # The engine commits 0.3 s later, on its own thread.
        threading.Timer(0.3, future.set_result, (None,)).start()
        return future

    the_driver = ModemDriver("/dev/null", 115200, "", on_status_reports=hand_over,
                             on_part=lambda part: None, on_lost=lambda reason: None)
    memory = ReportMemory(16)
    the_driver._modem, the_driver.alive = memory, True
    for index in range(1, 17):                       # 16 of 20: more than three quarters
        the_driver._stored.announce("SR", index, now=0.0)
    the_driver.make_room_for_reports()
    # Listed once (learning the size: 20), handed over in one batch, and deleted after the commit:
    # only then may the send go.
    assert the_driver._stored.capacity == 20
    assert len(commits) == 1 and commits[0].done()
    assert memory.lines[:2] == ['AT+CPMS="SR"', "AT+CMGL=4"]
    assert memory.lines[2].startswith("AT+CMGD=1,0;") and memory.stored == set()
    assert not the_driver._stored.full()


def test_a_modem_idle_after_its_sends_lists_its_reports_once_even_without_a_cdsi():
    reports = StoredReports()
    assert not reports.due(100.0, idle=True)          # nothing was ever sent
    reports.sent(now=10.0)
    assert not reports.due(14.9, idle=True)
    assert not reports.due(15.0, idle=False)          # busy: the sends go first
    assert reports.due(15.0, idle=True)
    assert reports.take() == [Collection("SR", deletes=[], list_all=True, announced=[])]
    assert not reports.due(30.0, idle=True)           # once per pause in the sends


# --- a +CDSI the library held back --------------------------------------------------------
def test_a_held_back_unsolicited_line_is_handed_over_once_the_bytes_read_are_handled():
    import threading
    from types import SimpleNamespace

    from modem.driver import _UrcSafeGsmModem

    modem = _UrcSafeGsmModem.__new__(_UrcSafeGsmModem)   # no port: only the line handling
    handed: list[list[str]] = []
    modem.notifyCallback = handed.append
    modem._notification, modem._pdu_header, modem._response = [], None, []
    modem._responseEvent = None
    class Port(SimpleNamespace):
        def inWaiting(self):  # noqa: N802 - pyserial's old name, which the library calls
            return self.in_waiting

    modem.serial = Port(in_waiting=12)                 # more bytes waiting: the library holds the line
    modem._handleLineRead('+CDSI: "SR",4')
    assert handed == []
    # They were the reply to the next command, which the worker had already written.
    modem._responseEvent = threading.Event()
    modem._handleLineRead("OK")
    modem.serial.in_waiting = 0
    modem._flush_held_notification()
    assert handed == [['+CDSI: "SR",4']]
    # Held back, then another +CDSI during a command: both, in order.
    modem._responseEvent = None
    modem.serial.in_waiting = 3
    modem._handleLineRead('+CDSI: "SR",5')
    modem._responseEvent = threading.Event()
    modem._handleLineRead('+CDSI: "SR",6')
    assert handed[-1] == ['+CDSI: "SR",5', '+CDSI: "SR",6']
