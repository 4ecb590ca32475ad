"""The set of simulated modems one simulator process runs, and the operator's controls on it."""
from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

from .at_engine import ModemConfig, SimulatedModem
from .latency import Latency
from .incoming import compose
from .profiles import get_profile, make_imei, make_imsi
from .sms import iso_time, network_time
from .pty_transport import PtyPort


log = logging.getLogger(__name__)


class StartError(Exception):
    """The simulator cannot start as asked (a log file it cannot write); the message names the option."""


def _append(path: Path | None, option: str) -> IO[str] | None:
    if path is None:
        return None
    try:
        return open(path, "a", encoding="utf-8")
    except OSError as exc:
        raise StartError(f"{option} {path}: {exc.strerror or exc}") from None


class ControlError(ValueError):
    """A control request that cannot be carried out (bad modem name, bad value)."""


@dataclass(frozen=True)
class IncomingRequest:
    """What an ``incoming_sms`` control request asks for (control.py reads it from the JSON)."""
    sender: str
    text: str | None = None
    parts: list[str] | None = None       # the part texts, in seq order, instead of splitting ``text``
    reference: int | None = None         # concatenation reference (default: random)
    wide: bool = False                   # 16-bit reference (IE 0x08)
    encoding: str | None = None          # gsm7 or ucs2 (default: gsm7 when the text allows)
    memory: str | None = None            # SM or ME: stored there, as a class 2 message (default: AT+CPMS)
    order: list[int] | None = None       # seqs in the order they arrive; one left out never arrives
    gap: float = 0.0                     # seconds between two parts


@dataclass(frozen=True)
class PoolSettings:
    count: int
    profiles: tuple[str, ...]
    seed: int
    config: ModemConfig
    link_dir: Path | None = None
    log_path: Path | None = None
    trace_path: Path | None = None


class ModemPool:
    def __init__(self, loop: asyncio.AbstractEventLoop, settings: PoolSettings) -> None:
        self.loop, self.settings = loop, settings
        self._log: IO[str] | None = None
        self._trace: IO[str] | None = None
        self.ports: dict[str, PtyPort] = {}
        self._replug_handles: dict[str, asyncio.TimerHandle] = {}
        for index in range(settings.count):
            profile = get_profile(settings.profiles[index % len(settings.profiles)])
            name = f"modem-{index}"
            modem = SimulatedModem(
                name, profile, make_imei(profile, settings.seed, index), make_imsi(settings.seed, index),
                random.Random(f"{settings.seed}:{index}"), replace(settings.config))
            self.ports[name] = PtyPort(loop, modem, settings.link_dir, self._record, on_bytes=self._traced)

    def start(self) -> None:
        self._log = _append(self.settings.log_path, "--log")
        self._trace = _append(self.settings.trace_path, "--trace")
        if self.settings.link_dir is not None:
            self.settings.link_dir.mkdir(parents=True, exist_ok=True)
        for port in self.ports.values():
            port.plug()
        self.loop.call_later(5.0, self._housekeeping)

    def stop(self) -> None:
        for handle in self._replug_handles.values():
            handle.cancel()
        for port in self.ports.values():
            port.unplug()
        for handle in (self._log, self._trace):
            if handle is not None:
                handle.close()
        self._log = self._trace = None

    def _housekeeping(self) -> None:
        for port in self.ports.values():
            port.release_stale_exclusive(idle_seconds=60.0)
        self.loop.call_later(5.0, self._housekeeping)

    def _record(self, event: dict, port: PtyPort) -> None:
        if event.get("event") == "error":
            # A simulator bug the modem answered with an error code: on stderr even without --log.
            log.error("modem simulator %s on %s: %s while %s\n%s", event.get("modem"), port.port,
                      event.get("error"), event.get("doing"), event.get("traceback", ""))
        elif event.get("event") == "submit_refused":
            log.warning("modem simulator %s on %s: PDU refused with %s: %s", event.get("modem"), port.port,
                        event.get("reply"), event.get("reason"))
        if self._log is not None:
            try:
                self._log.write(json.dumps({**event, "port": port.port}, ensure_ascii=False) + "\n")
                self._log.flush()
            except (UnicodeEncodeError, OSError, TypeError, ValueError):
                # Never silently: an event missing from the log once hid a submitted emoji SMS.
                log.exception("modem simulator: cannot write event %r of %s (%s) to the log", event,
                              port.modem.name, port.port)

    def _traced(self, direction: str, data: bytes, port: PtyPort) -> None:
        if self._trace is not None:
            # Escaped like a Python bytes literal (\r, \n, \x1a for Ctrl-Z), so a line is one chunk.
            try:
                self._trace.write(f"{iso_time(time.time())} {port.modem.name} {direction} {repr(data)[2:-1]}\n")
                self._trace.flush()
            except OSError:
                log.exception("modem simulator: cannot write %d bytes of %s (%s) to the trace", len(data),
                              port.modem.name, port.port)

    def describe(self) -> list[dict]:
        return [{"modem": name, "port": p.port, "link": str(p.link) if p.link else None,
                 "imei": p.modem.imei, "profile": p.modem.profile.name} for name, p in self.ports.items()]

    # ----- controls -----------------------------------------------------------
    def _targets(self, name: str | None) -> list[PtyPort]:
        if name is None:
            return list(self.ports.values())
        try:
            return [self.ports[name]]
        except KeyError:
            raise ControlError(f"no modem named {name!r}") from None

    def _one(self, name: str | None) -> PtyPort:
        if name is None:
            raise ControlError("'modem' is required")
        return self._targets(name)[0]

    def status(self) -> dict:
        return {"modems": [{"modem": name, **port.status()} for name, port in self.ports.items()]}

    def unplug(self, name: str, seconds: float | None) -> dict:
        port = self._one(name)
        port.unplug()
        if name in self._replug_handles:
            self._replug_handles.pop(name).cancel()
        if seconds is not None:
            self._replug_handles[name] = self.loop.call_later(float(seconds), self._replug, name)
        return {"modem": name, "replug_in": seconds}

    def _replug(self, name: str) -> None:
        self._replug_handles.pop(name, None)
        port = self.ports[name]
        if not port.plugged:
            port.plug()

    def plug(self, name: str) -> dict:
        self._replug(name)
        return {"modem": name, "port": self.ports[name].port}

    def hang(self, name: str, seconds: float | None, after_submit: bool = False) -> dict:
        port = self._one(name)
        if after_submit:
            port.modem.hang_on_next_submit(float(seconds) if seconds else None)
            return {"modem": name, "hang_after_submit": True}
        port.schedule(port.modem.hang(float(seconds) if seconds else None))
        return {"modem": name, "hung": True}

    def set_latency(self, name: str | None, median: float, sigma: float, cap: float | None, fixed: float) -> dict:
        if median < 0 or sigma < 0 or fixed < 0:
            raise ControlError("latency values must be >= 0")
        for port in self._targets(name):
            old = port.modem.config.submit_latency
            port.modem.config.submit_latency = Latency(median, sigma, old.cap if cap is None else cap, fixed)
        return {"modems": [p.modem.name for p in self._targets(name)]}

    def set_cms_errors(self, name: str | None, rate: float, code: int) -> dict:
        if not 0.0 <= rate <= 1.0:
            raise ControlError("rate must be between 0 and 1")
        for port in self._targets(name):
            port.modem.config.cms_error_rate, port.modem.config.cms_error_code = rate, int(code)
        return {"modems": [p.modem.name for p in self._targets(name)]}

    def set_report_statuses(self, name: str | None, statuses: list[int]) -> dict:
        if not statuses or any(not 0 <= int(s) <= 0xFF for s in statuses):
            raise ControlError("statuses: a non-empty list of TP-ST values 0..255")
        for port in self._targets(name):
            port.modem.config.report_statuses = tuple(int(s) for s in statuses)
        return {"modems": [p.modem.name for p in self._targets(name)], "statuses": [int(s) for s in statuses]}

    def set_registered(self, name: str | None, registered: bool) -> dict:
        for port in self._targets(name):
            port.schedule(port.modem.set_registered(bool(registered), _now()))
        return {"modems": [p.modem.name for p in self._targets(name)], "registered": bool(registered)}

    def incoming_sms(self, name: str, request: IncomingRequest) -> dict:
        """A citizen's phone sends an SMS to this modem's SIM (see control.py for the fields)."""
        port = self._one(name)
        if not port.plugged:
            raise ControlError(f"{name} is unplugged")
        modem, now = port.modem, _now()
        if request.memory is not None and request.memory not in ("SM", "ME"):
            raise ControlError("memory must be SM or ME")
        reference = request.reference
        if reference is None:
            reference = modem.rng.randrange(0x10000 if request.wide else 0x100)
        try:
            messages = compose(request.sender, request.text, modem.smsc, network_time(now), parts=request.parts,
                               reference=reference, wide=request.wide, encoding=request.encoding,
                               memory=request.memory)
            order = request.order
            if order is not None and (not order or any(not 1 <= seq <= len(messages) for seq in order)):
                raise ValueError(f"order must list seqs between 1 and {len(messages)}")
        except ValueError as exc:
            raise ControlError(str(exc)) from None
        actions = modem.incoming_sms(messages, now, order=order, gap=request.gap)
        port.schedule(actions)
        return {"modem": name, "parts": len(messages), "reference": reference if len(messages) > 1 else None,
                "events": [a.event for a in actions if a.event]}

    def incoming_flood(self, name: str | None, count: int, senders: list[str], texts: list[str], rate: float,
                       memory: str | None) -> dict:
        """``count`` SMS from ``senders`` (in turn) with ``texts`` (in turn, "{n}" replaced by the message's
        number), ``rate`` a second over the modems named (or all of them, in turn): a reply storm."""
        if count < 1 or not senders or not texts or rate <= 0:
            raise ControlError("count >= 1, non-empty senders and texts, and rate > 0 are required")
        targets = [port for port in self._targets(name) if port.plugged]
        if not targets:
            raise ControlError("no plugged modem to send to")
        now = _now()
        sent: dict[str, int] = {}
        for number in range(count):
            port = targets[number % len(targets)]
            text = str(texts[number % len(texts)]).replace("{n}", str(number + 1))
            try:
                messages = compose(str(senders[number % len(senders)]), text, port.modem.smsc,
                                   network_time(now + number / rate), reference=number % 256, memory=memory)
            except ValueError as exc:
                raise ControlError(f"message {number + 1}: {exc}") from None
            port.schedule(port.modem.incoming_sms(messages, now, delay=number / rate))
            sent[port.modem.name] = sent.get(port.modem.name, 0) + 1
        return {"count": count, "modems": sent, "seconds": count / rate}

    def reset(self) -> dict:
        """Back to the start: every modem plugged, powered on afresh, faults and counters cleared."""
        for name, port in self.ports.items():
            if name in self._replug_handles:
                self._replug_handles.pop(name).cancel()
            modem = port.modem
            modem.config = replace(self.settings.config)
            modem.registered = True
            modem.store.clear()
            modem.network_sms.clear()
            modem.awaiting_ack = None
            modem.counters = type(modem.counters)()
            if port.plugged:
                port.power_cycle()
            else:
                port.plug()
        return {"reset": True}


def _now() -> float:
    return time.time()
