"""``allerta simulate pbx`` and ``python -m asterisk.pbx_simulator``.

Prints one JSON line ``{"host": "127.0.0.1", "port": N, "ready": true}`` on
stdout once the AMI port listens, then runs until SIGTERM or SIGINT.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path

from asterisk.pbx_simulator.control import ControlServer
from asterisk.pbx_simulator.population import (Population, PopulationError, load_population,
                                               population_from_mapping)
from asterisk.pbx_simulator.simulator import HOST, PbxSimulator, SimulatorConfig


def _trunk(text: str) -> tuple[str, int]:
    name, sep, limit = text.partition("=")
    if not sep or not name or not limit.isdigit():
        raise argparse.ArgumentTypeError(f"--trunk {text!r}: expected NAME=LIMIT, e.g. trunk1=4")
    return name, int(limit)


def _classes(text: str) -> frozenset[str]:
    return frozenset(c.strip().lower() for c in text.split(",") if c.strip())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=0, help="AMI TCP port on 127.0.0.1 (0 = any free port)")
    parser.add_argument("--username", default="allerta")
    parser.add_argument("--secret", default="allerta")
    parser.add_argument("--trunk", type=_trunk, action="append", default=[], metavar="NAME=LIMIT",
                        help="a trunk (endpoint or Local context) and its channel limit; repeatable")
    parser.add_argument("--population", type=Path, help="population .json or .toml file")
    parser.add_argument("--override", action="append", default=[], metavar="NUMBER=BEHAVIOUR",
                        help="one callee's behaviour (confirm, listen, voicemail, busy, no_answer, "
                             "invalid_number, congestion, reject, destination_out_of_order, invalid_format, "
                             "network_out_of_order, temporary_failure, switching_congestion); repeatable")
    parser.add_argument("--seed", type=int, help="random seed (overrides the file's)")
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="multiply every delay by this (0.01 = a hundred times faster)")
    parser.add_argument("--response-first", type=float, default=0.0, metavar="SHARE",
                        help="share of instant failures whose OriginateResponse precedes the channel "
                             "events, as a real Asterisk 22 sometimes does (0..1)")
    parser.add_argument("--log", type=Path, help="append one JSON line per finished call here")
    parser.add_argument("--control", type=Path, help="unix socket for JSON-line test controls")
    parser.add_argument("--read-classes", type=_classes,
                        default=frozenset({"call", "user", "originate", "system"}),
                        help="manager.conf read= classes of the user (add dtmf for DTMF events)")
    parser.add_argument("--write-classes", type=_classes,
                        default=frozenset({"originate", "call", "system"}),
                        help="manager.conf write= classes (add command to allow Action: Command)")
    parser.add_argument("--dialplan", type=Path,
                        help="a rendered extensions_allerta.conf to run (default: ours, rendered with defaults)")
    parser.add_argument("--missing-module", action="append", default=[], metavar="MODULE",
                        help="a module Asterisk has not loaded (e.g. app_talkdetect): ModuleCheck says so "
                             "and calls into it hang up; repeatable")
    parser.add_argument("--sounds-on-disk", action="store_true",
                        help="STAT() and playback look at the real files (default: every file exists)")


def _population(args: argparse.Namespace) -> Population:
    population = (load_population(args.population, args.seed) if args.population
                  else population_from_mapping({}, args.seed))
    for item in args.override:
        number, sep, behaviour = item.partition("=")
        if not sep:
            raise PopulationError(f"--override {item!r}: expected NUMBER=BEHAVIOUR")
        population.set_override(number, {"behaviour": behaviour})
    return population


async def serve(sim: PbxSimulator, control: ControlServer | None) -> None:
    port = await sim.start()
    if control is not None:
        await control.start()
    print(json.dumps({"host": HOST, "port": port, "ready": True}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    if control is not None:
        await control.stop()
    await sim.stop()


def run(args: argparse.Namespace) -> int:
    try:
        population = _population(args)
        dialplan = args.dialplan.read_text(encoding="utf-8") if args.dialplan else None
        config = SimulatorConfig(username=args.username, secret=args.secret, port=args.port,
                                 trunks=dict(args.trunk), time_scale=args.time_scale,
                                 log_path=args.log, read_classes=args.read_classes,
                                 write_classes=args.write_classes, dialplan=dialplan,
                                 missing_modules=frozenset(m.removesuffix(".so") for m in args.missing_module),
                                 sounds_on_disk=args.sounds_on_disk, response_first=args.response_first)
        sim = PbxSimulator(config, population)
    except (PopulationError, ValueError, OSError) as exc:
        print(f"pbx simulator: {exc}", file=sys.stderr)
        return 2
    control = ControlServer(sim, args.control) if args.control else None
    try:
        asyncio.run(serve(sim, control))
    except OSError as exc:
        print(f"pbx simulator: cannot listen: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="allerta simulate pbx", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))
