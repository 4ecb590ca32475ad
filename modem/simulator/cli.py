"""`allerta simulate modems` / `python -m modem.simulator`: run N simulated modems on ptys."""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path

from .at_engine import ModemConfig
from .control import ControlServer
from .latency import Latency
from .pool import ModemPool, PoolSettings, StartError
from .profiles import PROFILES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--count", type=int, default=1, help="number of modems (modem-0 .. modem-N-1)")
    parser.add_argument("--profile", default="generic",
                        help=f"profile, or a comma list cycled over the modems ({', '.join(PROFILES)})")
    parser.add_argument("--seed", type=int, default=0, help="seed for IMEIs, latencies and errors")
    parser.add_argument("--log", type=Path, help="JSON-lines event log (submit, status_report, incoming)")
    parser.add_argument("--control", type=Path, help="unix socket for JSON control commands")
    parser.add_argument("--trace", type=Path,
                        help="append every byte each modem reads and writes to FILE, one line each "
                             "(time, modem, < in or > out, the bytes escaped): what a serial sniffer shows")
    parser.add_argument("--link-dir", type=Path, help="create DIR/modem-<i> symlinks to the current ptys")
    parser.add_argument("--latency-median", type=float, default=2.0, help="submit latency median, seconds")
    parser.add_argument("--latency-sigma", type=float, default=0.5, help="submit latency lognormal sigma")
    parser.add_argument("--latency-cap", type=float, default=30.0, help="submit latency maximum, seconds")
    parser.add_argument("--prompt-latency", type=float,
                        help="fixed seconds from AT+CMGS to the '> ' prompt (default: a realistic ~20 ms spread)")
    parser.add_argument("--report-delay", type=float, default=1.0,
                        help="seconds from +CMGS to the status report")
    parser.add_argument("--cms-error-rate", type=float, default=0.0, help="share of submits failing (0..1)")
    parser.add_argument("--cms-error-code", type=int, default=38, help="+CMS ERROR code for failed submits")
    parser.add_argument("--pin", help="SIM PIN the modems require (none by default)")


def _settings(args: argparse.Namespace) -> PoolSettings:
    profiles = tuple(p.strip() for p in args.profile.split(",") if p.strip())
    unknown = [p for p in profiles if p not in PROFILES]
    if unknown or not profiles:
        raise SystemExit(f"unknown profile(s) {unknown}; choose from {', '.join(PROFILES)}")
    if args.count < 1:
        raise SystemExit("--count must be at least 1")
    if not 0.0 <= args.cms_error_rate <= 1.0:
        raise SystemExit("--cms-error-rate must be between 0 and 1")
    if args.prompt_latency is not None and args.prompt_latency < 0:
        raise SystemExit("--prompt-latency must be >= 0")
    prompt = {} if args.prompt_latency is None else {"prompt_latency": Latency(fixed=args.prompt_latency)}
    config = ModemConfig(
        submit_latency=Latency(args.latency_median, args.latency_sigma, args.latency_cap), **prompt,
        report_delay=args.report_delay, cms_error_rate=args.cms_error_rate,
        cms_error_code=args.cms_error_code, pin=args.pin)
    return PoolSettings(args.count, profiles, args.seed, config, args.link_dir, args.log, args.trace)


async def _serve(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    pool = ModemPool(loop, _settings(args))
    control = ControlServer(pool, args.control) if args.control else None
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        pool.start()
    except StartError as exc:
        pool.stop()
        raise SystemExit(f"allerta simulate modems: {exc}") from None
    try:
        if control is not None:
            await control.start()
        for line in pool.describe():
            print(json.dumps(line), flush=True)
        print(json.dumps({"ready": True, "count": len(pool.ports)}), flush=True)
        await stop.wait()
    finally:
        if control is not None:
            await control.stop()
        pool.stop()
    return 0


def run(args: argparse.Namespace) -> int:
    # What the simulator could not do (a log write, a client's refused PDU, its own bug) goes
    # to stderr with the port; stdout carries only the JSON ready lines.
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(_serve(args))
    except KeyboardInterrupt:
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modem.simulator", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
