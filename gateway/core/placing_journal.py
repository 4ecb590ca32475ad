"""Which calls claimed ahead went to a trunk, written before each call without waiting for the database.

Voice is claimed ahead of the free trunk channels (dispatcher.voice_claim_ahead): the claims
are 'submitting' on disk, with attempt rows 'claimed', before any of them is placed. Writing
"this one is placed now" to the database first would make every freed channel wait for the
writer thread again, which is what claiming ahead avoids. So the attempt id goes to this file,
one line each, just before the call (one write(), no fsync: the operating system keeps it
through the engine's own crash, kill -9 or OOM). At the next start the store gives back
unflagged, and without counting them toward the cap, the 'claimed' attempts this file does not
list: they never left. Those it lists are resent flagged, as any call that may have gone out.
No file at all (deleted by hand) proves nothing: every 'claimed' attempt counts as placed.

A power cut may lose the last lines the system had not written back yet: calls placed in those
last seconds then come back unflagged (a PBX on the same machine lost them too).
"""
from __future__ import annotations

import os
from pathlib import Path


class PlacingJournal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def placed_ids(self) -> set[int] | None:
        """The attempt ids a previous run placed; None when there is no file to say."""
        try:
            text = self.path.read_text(encoding="ascii", errors="replace")
        except FileNotFoundError:
            return None
        # Only whole lines: a call starts after its line was written.
        return {int(line) for line in text.split("\n")[:-1] if line.isdigit()}

    def start(self) -> None:
        """Empty the file (what it said was applied at start-up) and keep it open for this run."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)

    def placing(self, attempt_id: int) -> None:
        """Before the call is placed. Raises OSError (disk full): the call must not go then."""
        assert self._fd is not None, "start() first"
        os.write(self._fd, b"%d\n" % attempt_id)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
