"""Whether another account can read a directory and its files, from the permission bits.

``os.access`` answers for the account running it (root, for the doctor); Asterisk runs as
its own user, so the doctor asks with that user's uid and groups instead. ACLs are not
read: the install uses plain groups (the asterisk user joins the allerta group).
"""
from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

READ, EXECUTE = 4, 1


def _allowed(info: os.stat_result, uid: int, gids: set[int], wanted: int) -> bool:
    if uid == 0:
        return True
    if info.st_uid == uid:
        bits = info.st_mode >> 6
    elif info.st_gid in gids:
        bits = info.st_mode >> 3
    else:
        bits = info.st_mode
    return bits & wanted == wanted


def unreadable_by(directory: str | Path, uid: int, gids: set[int], *, sample: int = 20,
                  stat_of: Callable[[Path], os.stat_result] = os.stat) -> str | None:
    """None if ``uid`` (in ``gids``) can open files in ``directory``; else what stops it.

    Every parent must be searchable, the directory readable and searchable, and its
    files (up to ``sample`` of them) readable.
    """
    directory = Path(directory).absolute()
    for parent in reversed(directory.parents):
        if not _allowed(stat_of(parent), uid, gids, EXECUTE):
            return f"{parent} is not searchable (x) by it"
    if not _allowed(stat_of(directory), uid, gids, READ | EXECUTE):
        return f"{directory} is not readable (r-x) by it"
    for count, entry in enumerate(sorted(directory.iterdir())):
        if count >= sample:
            break
        info = stat_of(entry)
        if stat.S_ISREG(info.st_mode) and not _allowed(info, uid, gids, READ):
            return f"{entry} is not readable by it"
    return None
