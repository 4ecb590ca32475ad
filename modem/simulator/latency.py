"""Latency distributions for simulated modems.

Real submits (Ctrl-Z to +CMGS) take about 1-3 s on 3G/4G and 5-10 s on 2G,
with a long tail: a lognormal with a cap models that well. The random source
is always injected so that a seed reproduces a run.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Latency:
    """``fixed`` seconds plus a lognormal part (``median``, ``sigma``) capped at ``cap``."""

    median: float = 0.0
    sigma: float = 0.0
    cap: float = 30.0
    fixed: float = 0.0

    def sample(self, rng: random.Random) -> float:
        if self.median <= 0:
            return max(0.0, self.fixed)
        if self.sigma <= 0:
            variable = self.median
        else:
            variable = rng.lognormvariate(math.log(self.median), self.sigma)
        return max(0.0, self.fixed + min(self.cap, variable))

    def to_dict(self) -> dict:
        return {"median": self.median, "sigma": self.sigma, "cap": self.cap, "fixed": self.fixed}


# Ordinary commands answer in a few milliseconds on a real UART.
COMMAND_LATENCY = Latency(median=0.004, sigma=0.3, cap=0.05, fixed=0.001)
# "> " usually arrives in well under 100 ms.
PROMPT_LATENCY = Latency(median=0.02, sigma=0.3, cap=0.1)
# Suggested default for submits: median 2 s, tail to 30 s.
DEFAULT_SUBMIT_LATENCY = Latency(median=2.0, sigma=0.5, cap=30.0)
