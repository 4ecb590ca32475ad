"""Files that hold secrets or residents' data, created with their final mode.

Writing first and chmod-ing afterwards leaves a moment (or, if the process
dies in between, forever) in which the AMI secret, a SIM PIN or the phone
numbers are readable by every local user.
"""
from __future__ import annotations

import os
from pathlib import Path


def open_private(path: str | os.PathLike[str], mode: int = 0o600, *, exclusive: bool = False,
                 gid: int | None = None) -> int:
    """A write descriptor on ``path``, created with ``mode``; an existing file is narrowed
    to ``mode`` and emptied. ``gid``: the group to give it (needs root or membership)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, mode)
    try:
        # os.open's mode only applies to a new file (and the umask narrows it further,
        # never widens it): an old world-readable file keeps its mode through O_TRUNC.
        os.fchmod(fd, mode)
        if gid is not None:
            os.fchown(fd, -1, gid)
    except OSError:
        os.close(fd)
        raise
    return fd


def write_private(path: str | os.PathLike[str], text: str, mode: int = 0o600, *, exclusive: bool = False,
                  gid: int | None = None) -> Path:
    """Write ``text`` to ``path`` (UTF-8), never readable beyond ``mode`` at any moment."""
    with os.fdopen(open_private(path, mode, exclusive=exclusive, gid=gid), "w", encoding="utf-8") as out:
        out.write(text)
    return Path(path)


def complete_lines(text: str) -> list[str]:
    """The lines of a log another process is appending to, without a half-written last one."""
    lines = text.split("\n")
    return lines[:-1]   # after the last newline: empty, or a line still being written
