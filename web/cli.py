"""`allerta` sub-commands of the panel (web, users, audit)."""
from __future__ import annotations

import argparse


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register the panel's sub-commands on the main parser."""
