"""One health check's result, shared by `allerta doctor` (gateway/shell) and the probes of
the adapters (modem/probe.py), which must not import the shell that calls them."""
from __future__ import annotations

from dataclasses import dataclass

OK, WARN, FAIL = "ok", "warn", "fail"
MODEM_TIMEOUT = 3.0         # seconds for one AT command of a read-only probe


@dataclass(frozen=True)
class Check:
    name: str
    status: str            # ok | warn | fail
    detail: str
    fix: str = ""          # what to do when it is not ok

    def line(self) -> str:
        text = f"{self.status.upper():<4}  {self.name}: {self.detail}"
        return text + (f"  -> {self.fix}" if self.fix and self.status != OK else "")
