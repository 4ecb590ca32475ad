"""When a modem collects its stored status reports, and which it may delete (pure bookkeeping)."""
from modem.stored_reports import Collection, StoredReports


def test_an_idle_modem_collects_at_once_a_busy_one_in_batches():
    reports = StoredReports(interval=2.0, batch=3)
    assert not reports.due(0.0, idle=True)
    reports.announce("SR", 1, now=10.0)
    assert reports.due(10.0, idle=True)
    assert not reports.due(10.0, idle=False)
    reports.announce("SR", 2, now=10.2)
    assert not reports.due(10.3, idle=False)
    reports.announce("SR", 3, now=10.4)
    assert reports.due(10.4, idle=False)            # the batch is full


def test_a_busy_modem_collects_once_the_oldest_report_waited_the_interval():
    reports = StoredReports(interval=2.0, batch=10)
    reports.announce("SR", 4, now=10.0)
    reports.announce("SR", 5, now=11.5)
    assert not reports.due(11.9, idle=False)
    assert reports.due(12.0, idle=False)


def test_the_report_memory_is_listed_whole_and_others_are_read_by_index():
    reports = StoredReports()
    reports.announce("SR", 3, now=0.0)
    reports.announce("SM", 7, now=0.0)
    work = {w.memory: w for w in reports.take()}
    assert work["SR"] == Collection("SR", deletes=[], list_all=True, read=[])
    assert work["SM"] == Collection("SM", deletes=[], list_all=False, read=[7])
    assert not reports.due(100.0, idle=True)         # taken: nothing pending any more


def test_a_report_is_deleted_only_after_its_commit_and_never_handed_over_twice():
    reports = StoredReports(interval=2.0, batch=10)
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
    assert reports.take() == [Collection("SR", deletes=[1], list_all=False, read=[])]
    assert reports.wanted("SR", 1)                   # the slot may hold a new report now


def test_a_failed_commit_leaves_the_report_stored_to_be_read_again():
    reports = StoredReports()
    reports.announce("SR", 2, now=0.0)
    reports.take()
    reports.handed_over("SR", [2])
    reports.settled("SR", [2], committed=False, now=1.0)
    assert reports.wanted("SR", 2)
    assert reports.due(1.0, idle=True)
    assert reports.take() == [Collection("SR", deletes=[], list_all=True, read=[])]


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
    assert again["ME"].read == [9]


def test_scan_lists_the_report_memory_even_without_an_announcement():
    reports = StoredReports()
    reports.scan()
    assert reports.due(0.0, idle=False)
    assert reports.take() == [Collection("SR", deletes=[], list_all=True, read=[])]
