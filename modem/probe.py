"""Read-only AT probe of a modem for `allerta doctor` (blocking, pyserial).

Lives with the modem channel so gateway/ never opens a serial port itself;
it returns gateway.core.checks' Check rows.
"""
from __future__ import annotations

import glob

import serial

from gateway.core.config import ModemConfig
from gateway.core.checks import FAIL, MODEM_TIMEOUT, OK, WARN, Check
from modem.at_parse import parse_cops, parse_cpin, parse_creg, parse_csca, parse_csq
from modem.raw_at import NoAnswer, at_command, parse_imei


def _at(port, command: str, timeout: float = MODEM_TIMEOUT) -> list[str]:
    return at_command(port, command, timeout)


def _candidates(modem: ModemConfig) -> list[str]:
    if any(c in modem.port for c in "*?["):
        return sorted(glob.glob(modem.port))
    return [modem.port]


def probe_modem(modem: ModemConfig) -> list[Check]:
    """Read-only AT probe of one modem: never enters the PIN, never touches stored SMS."""
    name = f"modem {modem.label}"
    ports = _candidates(modem)
    if not ports:
        return [Check(name, FAIL, f"no port matches {modem.port}",
                      "plug the modem in; check 'ls -l /dev/allerta/' and the udev rules")]
    problems = []
    for path in ports:
        try:
            port = serial.Serial(path, modem.baud, timeout=0.1, write_timeout=MODEM_TIMEOUT)
        except (serial.SerialException, OSError) as exc:
            problems.append(Check(name, FAIL, f"cannot open {path}: {exc}",
                                  "plug the modem in, check the port name and that user allerta is in "
                                  "group dialout"))
            continue
        try:
            with port:
                checks = _probe_open_port(name, path, port, modem, parse_cpin, parse_creg, parse_csq, parse_cops)
        except (serial.SerialException, OSError) as exc:
            checks = [Check(name, FAIL, f"{path} failed during the check: {exc}",
                            "check the USB cable and the power supply of the hub")]
        if checks is None:
            problems.append(Check(name, FAIL, f"{path} holds another modem (IMEI is not {modem.imei})",
                                  "find the right port in /dev/allerta/, or fix [[modems]] imei"))
            continue
        return checks
    return problems[-1:] if len(ports) == 1 else [
        Check(name, FAIL, f"none of {len(ports)} ports matching {modem.port} is this modem: "
                          + "; ".join(p.detail for p in problems), problems[-1].fix)]


def _probe_open_port(name, path, port, modem: ModemConfig, parse_cpin, parse_creg, parse_csq, parse_cops):
    try:
        _at(port, "AT")
    except NoAnswer as exc:
        return [Check(name, FAIL, f"{path} opens but {exc}",
                      "the modem is hung or not a modem port: power-cycle it (unplug and replug); "
                      "if it persists, try the other /dev/allerta/ names of the same dongle")]
    try:
        _at(port, "ATE0")
        imei = parse_imei(_at(port, "AT+CGSN")) or ""
    except NoAnswer:
        imei = ""
    if modem.imei and imei and imei != modem.imei:
        return None
    checks = [Check(name, OK, f"{path} answers AT (IMEI {imei or 'unknown'})")]
    try:
        sim = parse_cpin(_at(port, "AT+CPIN?"))
    except NoAnswer as exc:
        return checks + [Check(f"{name} SIM", FAIL, str(exc), "insert the SIM (power off the modem first)")]
    if sim == "SIM PIN":
        if modem.pin:
            checks.append(Check(f"{name} SIM", OK, "asks for its PIN; the engine enters the configured one"))
        else:
            checks.append(Check(f"{name} SIM", FAIL, "asks for a PIN and none is configured",
                                "set [[modems]] pin, or remove the PIN from the SIM in a phone"))
        # Registration, signal and SMSC cannot be read before the PIN, which the doctor never
        # enters (a wrong one costs one of the SIM's three tries): say so, do not pass them.
        return checks + [Check(f"{name} {part}", WARN, "not checked (SIM locked)",
                               "the engine enters the PIN; while it runs, 'allerta doctor' reads its report")
                         for part in ("network", "signal", "SMSC")]
    if sim != "READY":
        return checks + [Check(f"{name} SIM", FAIL, f"SIM state {sim}",
                               "SIM PUK or blocked: unlock it in a phone; no SIM: insert one")]
    checks.append(Check(f"{name} SIM", OK, "READY"))
    try:
        registration = parse_creg(_at(port, "AT+CREG?"))
        operator = parse_cops(_at(port, "AT+COPS?"))
    except NoAnswer as exc:
        registration, operator = None, None
        checks.append(Check(f"{name} network", FAIL, str(exc), "power-cycle the modem"))
    if registration in ("home", "roaming"):
        checks.append(Check(f"{name} network", OK, f"registered ({registration}, {operator or 'operator unknown'})"))
    elif registration is not None:
        checks.append(Check(f"{name} network", FAIL, f"not registered ({registration})",
                            "denied: the SIM is barred or expired (call the operator); searching: "
                            "check the antenna and coverage"))
    try:
        signal = parse_csq(_at(port, "AT+CSQ"))
    except NoAnswer as exc:
        signal = None
        checks.append(Check(f"{name} signal", FAIL, str(exc), "power-cycle the modem"))
    if signal is not None:
        if signal == 99 or signal < 5:
            checks.append(Check(f"{name} signal", FAIL, f"CSQ {signal} (none or unusable)",
                                "connect or move the antenna (an external antenna near a window)"))
        elif signal < 10:
            checks.append(Check(f"{name} signal", WARN, f"CSQ {signal} (weak)",
                                "an external antenna or another position would make sends more reliable"))
        else:
            checks.append(Check(f"{name} signal", OK, f"CSQ {signal}"))
    try:
        smsc = next((l for l in _at(port, "AT+CSCA?") if l.startswith("+CSCA:")), "")
    except NoAnswer as exc:
        smsc = ""
        checks.append(Check(f"{name} SMSC", FAIL, str(exc), "set it with AT+CSCA=\"+39...\",145"))
        return checks
    number = parse_csca([smsc])
    if number:
        checks.append(Check(f"{name} SMSC", OK, number))
    else:
        checks.append(Check(f"{name} SMSC", FAIL, "no SMS centre number on the SIM",
                            "ask the operator for it and store it with AT+CSCA=\"+39...\",145"))
    return checks


# --- Asterisk ----------------------------------------------------------------------------
