"""`allerta` sub-commands of the appliance (install, doctor, backup, restore, selftest)."""
from __future__ import annotations

import argparse


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register the appliance's sub-commands on the main parser."""
