"""One GSM modem driven through python-gsmmodem-new over pyserial (blocking).

A ModemDriver is used from one worker thread only (see worker.py). It turns
every library and OS error into ``ModemError`` / ``SubmitError`` so the worker
deals with one taxonomy.
"""
from __future__ import annotations

import concurrent.futures
import datetime as dt
import logging
import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import serial
from gsmmodem.exceptions import (CmeError, CmsError, CommandError, GsmModemException, PinRequiredError,
                                 IncorrectPinError, TimeoutException)
from gsmmodem.modem import GsmModem
from gsmmodem.pdu import decodeSmsPdu
from gsmmodem.util import lineStartingWith

from gateway.core.channels import ReceivedPart, StatusReport
from gateway.core.sms_text import SubmitPdu
from modem.at_parse import (parse_cmgl, parse_cops, parse_cpin, parse_cpms_first, parse_creg, parse_csca, parse_csq,
                             split_notifications)
from modem.deliver_pdu import UndecodablePdu, decode_deliver
from modem.errors import ErrorVerdict, ReportVerdict, classify_cme, classify_cms, classify_tp_status, line_failure
from modem.raw_at import NoAnswer, at_command, parse_imei
from modem.stored_reports import REPORT_MEMORY, Collection, StoredReports

log = logging.getLogger(__name__)

CTRL_Z = "\x1a"

# Unsolicited lines that can arrive while a command waits for its reply. +CDS (a status report) and
# +CMT (an SMS routed to us, AT+CNMI mt=2) carry their PDU on the next line.
_PDU_HEADER = re.compile(r'^\+(CDS:\s*|CMT:\s*("[^"]*"|[^,"]*)\s*,\s*)\d+$')
_URC_LINE = re.compile(r"^(\+CDSI:|\+CMTI:|\^[A-Z]+:|\+CRING:|RING$|\+CLIP:|\+CUSD:|\+CREG: \d$)")
_CDSI = re.compile(r'^\+CDSI:\s*"([^"]+)"\s*,\s*(\d+)\s*$')
# How long a send waits for room in the report memory (the engine's commits) before it
# goes anyway: a stuck database must not stop the alert.
ROOM_TIMEOUT = 5.0
# Deletes chained on one command line: well inside the 256 characters even small
# modems take on a line (SIM800 takes 556).
CHAINED_DELETES = 10
# Every incoming SMS is announced (+CMTI) and read at once; a URC lost on the line (or sent while
# nobody listened) would leave its message in the SIM's small memory, which, once full, makes
# the network keep every later message away from us. So the memories are also listed this often.
INBOX_SWEEP_INTERVAL = 30.0
# After a part could not be committed (database held), it is read again this much later.
INBOX_RETRY_AFTER = 5.0
# How long a hand-over waits for the engine's commit before the message is left for later.
COMMIT_TIMEOUT = 30.0
# Where modems store incoming SMS (AT+CPMS <mem3>): the SIM and the phone's own memory.
INBOX_MEMORIES = ("SM", "ME")


def _at_line(commands: list[str]) -> str:
    """Several extended commands on one command line (V.250: ';' between them)."""
    return "AT" + ";".join(commands)


class ModemError(Exception):
    """The modem (port, SIM, radio) is not usable right now."""


class PortUnavailable(ModemError):
    """The port cannot be opened at all (missing, unplugged, no permission)."""


class WrongModem(ModemError):
    """The port answers with another IMEI (or none) than the one expected: not our modem."""

    def __init__(self, port: str, found: str | None, expected: str) -> None:
        super().__init__(f"{port} holds IMEI {found or 'unknown (no answer to AT+CGSN)'}, expected {expected}")
        self.port, self.found, self.expected = port, found, expected


class SubmitError(Exception):
    def __init__(self, verdict: ErrorVerdict, *, modem_gone: bool = False, maybe_sent: bool = False,
                 timed_out: bool = False) -> None:
        super().__init__(str(verdict.failure))
        self.verdict = verdict
        self.modem_gone = modem_gone
        # A PDU went down the wire and no verdict came back: the SMS may be out.
        self.maybe_sent = maybe_sent
        # The modem is there but did not answer within the timeout: it is hung, and the sends
        # queued behind this one would wait for it too (the pool moves them to another modem).
        self.timed_out = timed_out


class _UrcSafeGsmModem(GsmModem):
    """python-gsmmodem-new with two fixes at the edge.

    The library appends every line that arrives while a command is pending to
    that command's reply, so a +CDSI status report or +CMTI arriving during an
    AT+CMGS exchange is silently lost (the reference calls this out; it is
    the classic "delivery report never matched"). Here such lines go to the
    notification handler instead, which processes them once the command ends.
    And a burst of several URCs is handled one by one (see split_notifications).
    """

    # A +CDS or +CMT line whose PDU is the next line.
    _pdu_header: str | None = None
    # Set by ModemDriver: called with (memory, index) for every +CDSI, on the read thread.
    onStoredReport: Callable[[str, int], None] | None = None
    # Set by ModemDriver: called with (memory, index) for every +CMTI, on a thread of its own.
    onStoredSms: Callable[[str, int], None] | None = None
    # Set by ModemDriver: called with the PDU of every +CMT, on a thread of its own.
    onRoutedSms: Callable[[str], None] | None = None

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Handlers of stored incoming SMS (+CMTI) waiting for the port. Sends let them go
        # first: the library's lock is not fair, and a worker sending back to back would
        # win it every time while the messages pile up in the modem's small memory until
        # it drops them (seen with status reports, before the worker collected those itself).
        self._handlers_cv = threading.Condition()
        self._handlers_waiting = 0

    @contextmanager
    def _handler_turn(self) -> Iterator[None]:
        with self._handlers_cv:
            self._handlers_waiting += 1
        try:
            with self._txLock:
                yield
        finally:
            with self._handlers_cv:
                self._handlers_waiting -= 1
                self._handlers_cv.notify_all()

    def let_handlers_go_first(self, timeout: float = 2.0) -> None:
        """Called before a send: wait (bounded) while stored-SMS handlers want the port."""
        with self._handlers_cv:
            self._handlers_cv.wait_for(lambda: self._handlers_waiting == 0, timeout)

    def _readLoop(self) -> None:  # noqa: N802
        # The library reads one byte per system call; with 64 modems that is tens of
        # thousands of syscalls a second fighting the event loop for the GIL. Read
        # what is waiting in one call; the line handling is the library's own.
        try:
            terminator = bytes(self.RX_EOL_SEQ)
            buffer = bytearray()
            while self.alive:
                data = self.serial.read(max(1, self.serial.in_waiting))
                for byte in data:
                    buffer.append(byte)
                    if buffer.endswith(terminator):
                        line = buffer[:-len(terminator)].decode(errors="replace")
                        buffer = bytearray()
                        if line:
                            self._handleLineRead(line)
                    elif self._expectResponseTermSeq and buffer.endswith(self._expectResponseTermSeq):
                        line = buffer.decode(errors="replace")
                        buffer = bytearray()
                        self._handleLineRead(line, checkForResponseTerm=False)
                self._flush_held_notification()
        except (serial.SerialException, OSError, TypeError) as exc:
            # TypeError: pyserial's read on a port closed under it (fd None).
            self.alive = False
            try:
                self.serial.close()
            except Exception:  # noqa: BLE001
                pass
            self.fatalErrorCallback(exc)

    def _flush_held_notification(self) -> None:
        # The library holds an unsolicited line back while more bytes are waiting (the
        # rest of a multi-line URC may follow) and hands it over only with the next
        # unsolicited line that arrives when nothing waits. When what followed was a
        # command's reply, the held +CDSI waited for the next URC, for ever after the
        # last SMS of an alert. Hand it over once the bytes read so far are handled.
        if self._notification and self._pdu_header is None and self.serial.in_waiting == 0 \
                and (self._responseEvent is None or self._responseEvent.is_set()):
            held, self._notification = self._notification, []
            self.notifyCallback(held)

    def _handleLineRead(self, line: str, checkForResponseTerm: bool = True) -> None:  # noqa: N802,N803
        if self._pdu_header is not None:
            # "+CDS: <len>" and "+CMT: [<alpha>],<len>" are followed by their PDU on the next line.
            header, self._pdu_header = self._pdu_header, None
            self.notifyCallback([header, line])
            return
        if checkForResponseTerm and _PDU_HEADER.match(line):
            self._pdu_header = line
            return
        if checkForResponseTerm and self._responseEvent is not None and not self._responseEvent.is_set() \
                and _URC_LINE.match(line):
            # With anything the library held back (see _flush_held_notification) first.
            held, self._notification = self._notification, []
            self.notifyCallback(held + [line])
            return
        super()._handleLineRead(line, checkForResponseTerm)

    def _handleSmsStatusReport(self, notificationLine: str) -> None:  # noqa: N802,N803
        # The library reads and deletes the stored report at once, before its
        # callback runs, so an engine killed in between loses it; and it spends two
        # AT exchanges per SMS. The report is only noted here: the worker collects
        # reports in batches between sends and deletes them once they are committed
        # (see stored_reports.py).
        match = _CDSI.match(notificationLine.strip())
        if match and self.onStoredReport is not None:
            self.onStoredReport(match.group(1), int(match.group(2)))

    def _handleSmsReceived(self, notificationLine: str) -> None:  # noqa: N802,N803
        # The library reads and deletes without holding the port (an AT+CMGS in
        # flight takes the AT+CPMS as PDU text), deletes in whatever memory is
        # selected then (a status report handler may have switched it to SR, so it
        # would delete a report), deletes before its callback could commit, and an
        # error escapes on its thread. The driver does it (ModemDriver._take_stored).
        match = self.CMTI_REGEX.match(notificationLine)
        if match and self.onStoredSms is not None:
            self.onStoredSms(match.group(1), int(match.group(2)))

    def _handleModemNotification(self, lines: list[str]) -> None:  # noqa: N802
        # The library acts on the first URC of a burst only; give it one at a time.
        for group in split_notifications(lines):
            if len(group) == 1 and group[0].startswith("+CDSI:"):
                # Only noted (no I/O): done here rather than on a thread of its own,
                # which the library starts for every notification.
                self._handleSmsStatusReport(group[0])
            elif group[0].startswith("+CMT:"):
                # The library has no +CMT handling at all (it logs the URC as unhandled and the
                # SMS is lost). Handled on a thread of its own: it waits for the engine's commit.
                if len(group) == 2 and self.onRoutedSms is not None:
                    threading.Thread(target=self.onRoutedSms, args=(group[1],), name="routed-sms",
                                     daemon=True).start()
            else:
                super()._handleModemNotification(group)


@dataclass(frozen=True)
class Health:
    signal: int | None
    registration: str | None
    operator: str | None
    sim_state: str | None
    smsc: str | None = None     # "" when the SIM has no SMS centre number (every send would fail)


class ModemDriver:
    def __init__(self, port: str, baud: int, pin: str, *,
                 on_status_reports: Callable[[list[StatusReport]], concurrent.futures.Future],
                 on_part: Callable[[ReceivedPart], concurrent.futures.Future],
                 on_lost: Callable[[str], None],
                 on_reports_waiting: Callable[[], None] = lambda: None,
                 prompt_timeout: float = 5.0, identify_timeout: float = 5.0, receive: str = "store") -> None:
        self.port = port
        self.identify_timeout = identify_timeout
        self.baud = baud
        self._pin = pin
        # Hands reports to the engine; the future ends once they are committed.
        self._on_status_reports = on_status_reports
        self._on_reports_waiting = on_reports_waiting
        self._stored = StoredReports()
        # Hands one received part to the engine; the future ends once it is committed.
        self._on_part = on_part
        self._on_lost = on_lost
        # "route": ask for +CMT with AT+CSMS=1 and acknowledge each one once committed (config).
        self._receive = receive
        self._acknowledge = False   # AT+CSMS=1 accepted: every +CMT wants its AT+CNMA
        # Reading, handing over and deleting stored SMS, one message at a time: a +CMTI handler and a
        # sweep must never both hand over (and delete) the same slot.
        self._inbox = threading.Lock()
        # +CMTI announcements not read yet, by memory (written on the library's threads).
        self._announce_lock = threading.Lock()
        self._announced_sms: dict[str, set[int]] = {}
        self._next_inbox_sweep = 0.0
        self._undecodable: set[tuple[str, str]] = set()   # logged once, left stored
        self.prompt_timeout = prompt_timeout
        self._modem: _UrcSafeGsmModem | None = None
        self.alive = False
        self.imei: str | None = None
        self.manufacturer: str | None = None
        self.model: str | None = None

    # --- life cycle --------------------------------------------------------
    def _wake(self) -> str | None:
        """Cancel whatever a previous client left half-done; return the IMEI (None if unreadable).

        An engine killed between AT+CMGS and Ctrl-Z leaves the modem in PDU
        entry: it would take our ATZ as PDU text and never answer. ESC cancels
        the entry (gammu opens every session the same way, smstools3 sends
        Ctrl-Z CR when a modem is silent).

        The IMEI is read here, on the bare port, because the library's connect()
        sends the PIN and we then read and delete the stored SMS: with a glob or
        after USB renumbering the port may hold another modem, whose SIM must not
        get our PIN (three wrong ones and it wants its PUK) and whose stored status
        reports are not ours. AT+CGSN needs no PIN.
        """
        try:
            with serial.Serial(self.port, self.baud, timeout=0.3) as port:
                port.write(b"\x1b\r")
                port.flush()
                port.read(256)  # discard whatever the cancelled entry answers
                try:
                    return parse_imei(at_command(port, "AT+CGSN", self.identify_timeout))
                except NoAnswer as exc:
                    log.debug("IMEI not readable before the PIN on %s: %s", self.port, exc)
                    return None
        except (serial.SerialException, OSError) as exc:
            raise PortUnavailable(f"cannot open {self.port}: {exc}") from None

    def open(self, expected_imei: str | None = None) -> None:
        """Connect; with ``expected_imei``, refuse another modem before its SIM or memory is touched."""
        found = self._wake()
        if expected_imei and found != expected_imei:
            raise WrongModem(self.port, found, expected_imei)
        # smsReceivedCallbackFunc only makes the library turn on SMS notifications (AT+CNMI): its
        # own reading is replaced (_UrcSafeGsmModem._handleSmsReceived).
        modem = _UrcSafeGsmModem(self.port, self.baud, smsReceivedCallbackFunc=lambda sms: None,
                                 smsStatusReportCallback=self._report)
        modem.fatalErrorCallback = self._fatal
        modem.onStoredReport = self._announced
        modem.onStoredSms = self._take_stored
        modem.onRoutedSms = self._routed
        try:
            modem.connect(pin=self._pin or None)
        except (PinRequiredError, IncorrectPinError) as exc:
            self._close_quietly(modem)
            raise ModemError(f"SIM PIN problem on {self.port}: {type(exc).__name__}") from None
        except (serial.SerialException, OSError) as exc:
            self._close_quietly(modem)
            raise ModemError(f"cannot open {self.port}: {exc}") from None
        except TimeoutException:
            self._close_quietly(modem)
            raise ModemError(f"no answer to AT commands on {self.port}") from None
        except GsmModemException as exc:
            self._close_quietly(modem)
            raise ModemError(f"modem on {self.port} refused initialisation: {exc}") from None
        self._modem = modem
        self.alive = True
        try:
            self.imei = parse_imei(self._lines("AT+CGSN")) or found
            self.manufacturer = self._query("AT+CGMI").strip()
            self.model = self._query("AT+CGMM").strip()
        except ModemError:
            self.close()
            raise
        if "huawei" in (self.manufacturer or "").lower():
            # Huawei sticks ^RSSI/^MODE lines into replies every few seconds; ask it to stop.
            try:
                modem.write("AT^CURC=0")
            except (GsmModemException, TimeoutException):
                log.debug("AT^CURC=0 refused on %s", self.port)
        if self._receive == "route":
            self._ask_for_routing(modem)
        # SMS and status reports that arrived while nobody listened (engine down, port lost
        # mid-notification) wait in the modem's memory. The report memory is listed by the
        # first collection pass, like the reports that arrive from now on.
        self._stored.scan(REPORT_MEMORY)
        self._sweep_inbox(modem)

    def _ask_for_routing(self, modem: GsmModem) -> None:
        """+CMT straight to us rather than stored: AT+CSMS=1 first, so the modem waits for our
        AT+CNMA (sent once the part is committed) and the network sends again what we never
        acknowledged (27.005 §3.2.1, §3.4.4). In phase 2 (AT+CSMS=0) the modem acknowledges a
        +CMT itself, and an engine killed before its commit would lose the message: a modem that
        refuses AT+CSMS=1 stores instead."""
        try:
            modem.write("AT+CSMS=1")
            current = next((line for line in modem.write("AT+CNMI?") if line.startswith("+CNMI:")), "")
            values = [value.strip() for value in current[6:].split(",")] if current else ["2", "1", "0", "2"]
            values[1] = "2"
            self._acknowledge = True
            modem.write("AT+CNMI=" + ",".join(values))
        except (GsmModemException, TimeoutException) as exc:
            log.warning("%s cannot route incoming SMS with acknowledgement (%s): they are stored in its "
                        "memory instead", self.port, exc)
            if self._acknowledge:
                self._acknowledge = False
                try:
                    modem.write("AT+CSMS=0")
                except (GsmModemException, TimeoutException):
                    log.debug("AT+CSMS=0 refused on %s", self.port)

    # --- incoming SMS -------------------------------------------------------------------
    def _decode(self, pdu: str, where: str) -> ReceivedPart | None:
        """The part an SMS-DELIVER carries; None for another type or a PDU we cannot read (logged
        once, left where it is: a person can still look at it)."""
        try:
            return decode_deliver(pdu, received_at=dt.datetime.now(dt.timezone.utc).replace(tzinfo=None))
        except UndecodablePdu as exc:
            if (where, pdu) not in self._undecodable:
                self._undecodable.add((where, pdu))
                log.warning("incoming SMS %s on %s cannot be decoded (%s); it stays stored. PDU %s", where,
                            self.port, exc, pdu)
            return None

    def _not_recorded(self, what: str) -> None:
        log.warning("%s on %s not recorded now; it stays stored and is read again", what, self.port, exc_info=True)
        self._next_inbox_sweep = min(self._next_inbox_sweep, time.monotonic() + INBOX_RETRY_AFTER)

    def _hand_over_stored(self, memory: str, listed: list[tuple[int, str]]) -> list[int]:
        """Hand every listed message to the engine at once (their commits run one after the other on
        its database thread, with no round trip in between); the indexes committed, to delete."""
        pending: list[tuple[int, concurrent.futures.Future]] = []
        done: list[int] = []
        for index, pdu in listed:
            where = f"{memory}/{index}"
            part = self._decode(pdu, where)
            if part is not None:
                try:
                    pending.append((index, self._on_part(part)))
                except Exception:  # noqa: BLE001 - the loop is gone: it stays stored
                    self._not_recorded(f"incoming SMS {where}")
            elif self._stored_report(pdu, where):
                done.append(index)
        for index, future in pending:
            try:
                future.result(COMMIT_TIMEOUT)
            except Exception:  # noqa: BLE001 - not committed: it stays stored
                self._not_recorded(f"incoming SMS {memory}/{index}")
                continue
            done.append(index)
        return done

    def _stored_report(self, pdu: str, where: str) -> bool:
        """A status report some modems store with the SMS: recorded, True once it may be deleted."""
        try:
            decoded = decodeSmsPdu(pdu)
        except Exception:  # noqa: BLE001 - logged by _decode already
            return False
        if decoded.get("type") != "SMS-STATUS-REPORT":
            return False
        report = self._status(int(decoded["reference"]), int(decoded.get("status") or 0))
        if report is not None:
            try:
                self._on_status_reports([report]).result(COMMIT_TIMEOUT)
            except Exception:  # noqa: BLE001 - not recorded: it stays in the modem
                self._not_recorded(f"status report {where}")
                return False
        return True

    def _take_stored(self, memory: str, index: int) -> None:
        """A +CMTI (on the library's notification thread). The first handler to get the inbox reads
        what every +CMTI so far announced, in one AT+CMGL when several wait in a memory: in a storm
        one exchange and one round of commits serve a batch, not each message."""
        with self._announce_lock:
            self._announced_sms.setdefault(memory, set()).add(index)
        modem = self._modem
        if modem is None:
            return
        try:
            with self._inbox:
                with self._announce_lock:
                    work, self._announced_sms = self._announced_sms, {}
                for where, indexes in sorted(work.items()):
                    self._collect(modem, where, sorted(indexes) if len(indexes) == 1 else None)
        except Exception:  # noqa: BLE001 - runs on the library's own thread
            log.warning("incoming SMS %s/%s on %s not processed now; it stays stored", memory, index, self.port,
                        exc_info=True)
            self._next_inbox_sweep = min(self._next_inbox_sweep, time.monotonic() + INBOX_RETRY_AFTER)

    def _collect(self, modem: GsmModem, memory: str, indexes: list[int] | None) -> None:
        """Read ``indexes`` of ``memory`` (None: list it whole), hand them over, delete what was committed.
        The caller holds the inbox."""
        with modem._handler_turn():
            self._select_memory(modem, memory)
            if indexes is None:
                listed = parse_cmgl(modem.write("AT+CMGL=4", timeout=15))
            else:
                listed = []
                for index in indexes:
                    reply = modem.write(f"AT+CMGR={index}")
                    # An empty slot (a bare OK) was taken already, by a sweep or an earlier handler.
                    listed += [(index, reply[i + 1].strip()) for i, line in enumerate(reply)
                               if line.startswith("+CMGR:") and i + 1 < len(reply) and reply[i + 1] != "OK"]
        done = self._hand_over_stored(memory, listed)
        if done:
            with modem._handler_turn():
                self._select_memory(modem, memory)
                for start in range(0, len(done), CHAINED_DELETES):
                    self._chain(modem, done[start:start + CHAINED_DELETES])

    def _routed(self, pdu: str) -> None:
        """A +CMT (on a thread of its own): hand over, then acknowledge (AT+CNMA) once committed; a
        part not committed is refused (AT+CNMA=2) and the network sends it again later."""
        part = self._decode(pdu, "routed")
        committed = None
        if part is not None:
            try:
                self._on_part(part).result(COMMIT_TIMEOUT)
                committed = True
            except Exception:  # noqa: BLE001 - refused below: the network sends it again
                log.warning("routed SMS on %s not recorded now", self.port, exc_info=True)
                committed = False
        modem = self._modem
        if not self._acknowledge or modem is None:
            if committed is False:
                log.error("an SMS routed by %s was not recorded and the modem acknowledged it itself: lost",
                          self.port)
            return
        try:
            with modem._handler_turn():
                # An undecodable one is acknowledged too (its PDU is in the log): refused, the
                # network would send it again for ever.
                modem.write("AT+CNMA=2" if committed is False else "AT+CNMA")
        except Exception:  # noqa: BLE001 - unacknowledged, the network sends it again
            log.warning("AT+CNMA failed on %s; the network will send that SMS again", self.port, exc_info=True)

    def service_inbox(self) -> None:
        """Between two sends (the port is free): list the memories for SMS a lost +CMTI left there."""
        modem = self._modem
        if modem is None or not self.alive or time.monotonic() < self._next_inbox_sweep:
            return
        # A +CMTI handler at work: this sweep can wait for the next turn.
        if not self._inbox.acquire(blocking=False):
            return
        self._inbox.release()
        self._sweep_inbox(modem)

    def _sweep_inbox(self, modem: GsmModem) -> None:
        """Every SMS stored in SM and ME (AT+CMGL=4) handed over, and deleted once committed."""
        self._next_inbox_sweep = time.monotonic() + INBOX_SWEEP_INTERVAL
        for memory in INBOX_MEMORIES:
            try:
                with self._inbox:
                    self._collect(modem, memory, None)
            except (GsmModemException, TimeoutException, IndexError) as exc:
                log.debug("cannot list stored SMS in %s on %s: %s", memory, self.port, exc)

    # --- stored status reports (worker thread) ------------------------------------
    def _announced(self, memory: str, index: int) -> None:
        self._stored.announce(memory, index, time.monotonic())
        self._on_reports_waiting()

    def service_reports(self, idle: bool) -> None:
        """Between two sends (the port is free): collect stored reports if a pass is due."""
        if not self._stored.due(time.monotonic(), idle):
            return
        modem = self._modem
        if modem is None or not self.alive:
            return
        for work in self._stored.take():
            try:
                with modem._txLock:
                    try:
                        self._select_memory(modem, work.memory)
                    except (CmsError, CmeError) as exc:
                        if work.memory != REPORT_MEMORY or work.announced or work.deletes:
                            raise
                        # No status-report memory at all (SIM800, Huawei sticks: their reports come
                        # as +CDS or with the received SMS): stop asking, or every sweep would.
                        log.info("%s has no %s memory (%s): not listing it again", self.port, work.memory, exc)
                        self._stored.listing_refused(work.memory)
                        continue
                    stored = self._delete_and_read(modem, work)
            except (GsmModemException, TimeoutException, serial.SerialException, OSError, IndexError) as exc:
                self._stored.give_back(work, time.monotonic())
                log.debug("stored reports in %s on %s not collected now: %r", work.memory, self.port, exc)
                continue
            self._hand_over(work.memory, stored)

    def make_room_for_reports(self) -> None:
        """Before a send: while the report memory is nearly full, collect and delete (waiting
        for the engine's commits when they are what holds the room), for ROOM_TIMEOUT at most."""
        if not self._stored.full():
            return
        deadline = time.monotonic() + ROOM_TIMEOUT
        while True:
            self.service_reports(idle=True)
            if not self._stored.full() or not self.alive:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                log.warning("report memory of %s still nearly full after %.0f s: sending anyway", self.port,
                            ROOM_TIMEOUT)
                return
            self._stored.wait_for_commit(min(0.1, remaining))

    def _select_memory(self, modem: GsmModem, memory: str) -> None:
        """AT+CPMS="<memory>" unless selected already (the library's own bookkeeping, which
        it skips the command by), learning the report memory's size from the reply."""
        if modem._smsMemReadDelete == memory:
            return
        reply = modem.write(f'AT+CPMS="{memory}"')
        modem._smsMemReadDelete = memory
        if memory == REPORT_MEMORY:
            size = parse_cpms_first(reply)
            if size is not None:
                self._stored.learn_capacity(size[1])

    def finish_reports(self, timeout: float = 2.0) -> None:
        """Before a clean close: let the commits in flight end, then delete what they saved."""
        deadline = time.monotonic() + timeout
        while self._stored.in_flight() and time.monotonic() < deadline:
            self._stored.wait_for_commit(deadline - time.monotonic())
        self.service_reports(idle=True)

    def _delete_and_read(self, modem: GsmModem, work: Collection) -> list[tuple[int, str]]:
        """Delete the committed reports, then list (or read) what waits; caller holds the port."""
        # The last run of deletes rides on the listing's line; any before it go on lines of their own.
        last = work.deletes[-CHAINED_DELETES:] if work.list_all else []
        earlier = work.deletes[:len(work.deletes) - len(last)]
        for start in range(0, len(earlier), CHAINED_DELETES):
            self._chain(modem, earlier[start:start + CHAINED_DELETES])
        if work.list_all:
            try:
                try:
                    return parse_cmgl(modem.write(_at_line([f"+CMGD={i},0" for i in last] + ["+CMGL=4"]),
                                                  timeout=15))
                except (CmsError, CmeError):
                    if not last:
                        raise
                    # A delete refused (the slot was emptied meanwhile, e.g. by a power cycle)
                    # stops the line before the listing: one command at a time instead.
                    self._delete_one_by_one(modem, last)
                return parse_cmgl(modem.write("AT+CMGL=4", timeout=15))
            except (CmsError, CmeError) as exc:
                log.info("%s cannot list its %s memory (%s): reading each status report by its index",
                         self.port, work.memory, exc)
                self._stored.listing_refused(work.memory)
        stored: list[tuple[int, str]] = []
        for index in work.announced:
            try:
                reply = modem.write(f"AT+CMGR={index}")
            except (CmsError, CmeError) as exc:
                log.debug("report %s/%d on %s not readable: %s", work.memory, index, self.port, exc)
                continue
            for number, line in enumerate(reply):
                if line.startswith("+CMGR:") and number + 1 < len(reply) and reply[number + 1] != "OK":
                    stored.append((index, reply[number + 1].strip()))
                    break
        return stored

    def _chain(self, modem: GsmModem, indexes: list[int]) -> None:
        """Delete these on one command line; one by one if the modem refuses one of them."""
        try:
            modem.write(_at_line([f"+CMGD={index},0" for index in indexes]))
        except (CmsError, CmeError):
            self._delete_one_by_one(modem, indexes)

    def _delete_one_by_one(self, modem: GsmModem, indexes: list[int]) -> None:
        for index in indexes:
            try:
                modem.write(f"AT+CMGD={index},0")
            except (CmsError, CmeError) as exc:
                # Already gone: what we wanted.
                log.debug("AT+CMGD=%d refused on %s: %s", index, self.port, exc)

    def _hand_over(self, memory: str, stored: list[tuple[int, str]]) -> None:
        reports: list[StatusReport] = []
        indexes: list[int] = []
        drop: list[int] = []
        for index, pdu in stored:
            if not self._stored.wanted(memory, index):
                continue
            try:
                decoded = decodeSmsPdu(pdu)
            except Exception:  # noqa: BLE001 - one bad PDU must not hide the others
                log.warning("undecodable status report %s/%d on %s: deleted", memory, index, self.port)
                drop.append(index)
                continue
            if decoded.get("type") != "SMS-STATUS-REPORT":
                log.warning("%s/%d on %s is not a status report: left stored", memory, index, self.port)
                continue
            report = self._status(int(decoded["reference"]), int(decoded.get("status") or 0))
            if report is None:
                drop.append(index)   # interim: the final report follows
            else:
                reports.append(report)
                indexes.append(index)
        self._stored.forget(memory, drop, time.monotonic())
        if not reports:
            return
        self._stored.handed_over(memory, indexes)
        try:
            future = self._on_status_reports(reports)
        except Exception:  # noqa: BLE001 - the loop is gone: the reports stay stored
            self._stored.settled(memory, indexes, False, time.monotonic())
            return

        def settled(done: concurrent.futures.Future) -> None:
            committed = not done.cancelled() and done.exception() is None
            if not committed:
                log.warning("%d status reports on %s not recorded now; they stay stored", len(indexes), self.port)
            self._stored.settled(memory, indexes, committed, time.monotonic())
            self._on_reports_waiting()
        future.add_done_callback(settled)

    def close(self) -> None:
        modem, self._modem = self._modem, None
        self.alive = False
        if modem is not None:
            self._close_quietly(modem)

    @staticmethod
    def _close_quietly(modem: GsmModem) -> None:
        try:
            if getattr(modem, "rxThread", None) is not None:
                modem.close()
        except Exception:  # noqa: BLE001 - the port may already be gone
            pass

    # --- callbacks from the library's threads ---------------------------------
    def _fatal(self, exc: Exception) -> None:
        self.alive = False
        modem = self._modem
        # Wake a command waiting for a reply that will never come, so the
        # worker learns at once that the port is gone instead of timing out.
        if modem is not None and modem._responseEvent is not None:
            modem._responseEvent.set()
        self._on_lost(f"port {self.port} lost: {exc}")

    def _report(self, report) -> None:  # noqa: ANN001 - gsmmodem.modem.StatusReport
        # A +CDS report routed to us (modems without SR memory): nothing is stored to delete.
        status = self._status(int(report.reference), int(report.deliveryStatus))
        if status is not None:
            self._on_status_reports([status])

    def _status(self, reference: int, status: int) -> StatusReport | None:
        """The report the engine records, or None for an interim one."""
        verdict = classify_tp_status(status)
        if verdict == ReportVerdict.PENDING:
            # The SMSC is still trying (e.g. phone off): its final report follows.
            log.debug("interim status report TP-ST 0x%02X for reference %d on %s", status, reference, self.port)
            return None
        return StatusReport(reference, verdict == ReportVerdict.DELIVERED, f"TP-ST 0x{status:02X}")

    # --- commands ------------------------------------------------------------
    def _require(self) -> _UrcSafeGsmModem:
        if self._modem is None or not self.alive:
            raise ModemError(f"modem on {self.port} is not connected")
        return self._modem

    def _query(self, command: str, timeout: float = 10) -> str:
        lines = self._lines(command, timeout)
        return next((line for line in lines if line not in ("OK", command)), "")

    def _lines(self, command: str, timeout: float = 10, *, refused_ok: bool = False) -> list[str]:
        """The reply's lines; with ``refused_ok`` an ERROR is an empty reply (an optional
        reading, such as the SMSC, must not cost the health read its other values)."""
        modem = self._require()
        try:
            return modem.write(command, timeout=timeout)
        except TimeoutException:
            raise ModemError(f"no answer to {command} on {self.port}") from None
        except (serial.SerialException, OSError, IndexError) as exc:
            self.alive = False
            raise ModemError(f"port {self.port} failed: {exc!r}") from None
        except CommandError as exc:
            if refused_ok:
                return []
            raise ModemError(f"{command} failed on {self.port}: {exc}") from None

    def health(self) -> Health:
        return Health(signal=parse_csq(self._lines("AT+CSQ")),
                      registration=parse_creg(self._lines("AT+CREG?")),
                      operator=parse_cops(self._lines("AT+COPS?")),
                      sim_state=parse_cpin(self._lines("AT+CPIN?")),
                      smsc=parse_csca(self._lines("AT+CSCA?", refused_ok=True)))

    def submit(self, pdus: list[SubmitPdu], timeout: float) -> list[int]:
        """Send every part with AT+CMGS; return the modem's TP-MR for each, in order.

        We drive AT+CMGS ourselves instead of GsmModem.sendSms because the
        library returns only the last part's reference, and our delivery is
        'delivered' only once every part has its status report.
        """
        modem = self._require()
        references: list[int] = []
        body_written = False
        for pdu in pdus:
            try:
                # The library locks each write, not the exchange: a status report
                # handled on its notification thread could write AT+CPMS between our
                # prompt and the PDU, and the modem would take it as PDU text (CMS 304)
                # while the report is lost. Hold its (re-entrant) lock for the exchange.
                modem.let_handlers_go_first()
                with modem._txLock:
                    modem.write(f"AT+CMGS={pdu.tpdu_length}", timeout=self.prompt_timeout,
                                expectedResponseTermSeq="> ")
                    body_written = True
                    reply = modem.write(pdu.hex, timeout=timeout, writeTerm=CTRL_Z)
            except CmsError as exc:
                raise SubmitError(classify_cms(int(exc.code)), maybe_sent=bool(references)) from None
            except CmeError as exc:
                raise SubmitError(classify_cme(int(exc.code)), maybe_sent=bool(references)) from None
            except TimeoutException:
                gone = not self.alive
                waited = timeout if body_written else self.prompt_timeout
                reason = (f"port {self.port} lost during AT+CMGS" if gone else
                          f"no {'answer to the PDU' if body_written else '> prompt'} within {waited:g} s after AT+CMGS")
                raise SubmitError(line_failure(reason), modem_gone=gone, maybe_sent=body_written,
                                  timed_out=not gone) from None
            except (serial.SerialException, OSError, IndexError) as exc:
                # IndexError: the library indexes an empty reply when _fatal woke it. Operators read
                # what happened ("list index out of range" told them nothing); the log keeps the
                # traceback for whoever fixes it.
                self.alive = False
                log.warning("modem on %s: %s during AT+CMGS", self.port, type(exc).__name__, exc_info=True)
                raise SubmitError(line_failure(f"modem disconnected ({self.port})"), modem_gone=True,
                                  maybe_sent=body_written) from None
            except CommandError as exc:
                raise SubmitError(line_failure(f"AT+CMGS refused: {exc}")) from None
            line = lineStartingWith("+CMGS:", reply or [])
            if line is None:
                gone = not self.alive
                raise SubmitError(line_failure("port lost during AT+CMGS" if gone else "no +CMGS in the reply"),
                                  modem_gone=gone, maybe_sent=body_written)
            references.append(int(line[6:].strip()))
        self._stored.sent(time.monotonic())
        return references

