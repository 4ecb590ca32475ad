"""Who answers the simulated phone: a seeded population plus per-number overrides.

Like python-gsmmodem's fake modems, each behaviour reproduces what a real
callee does to an outbound call: ``busy`` is cause 17, ``no_answer`` rings
until the originate timeout, ``invalid_number`` is a 404 (cause 1), and so on.
The same seed gives the same callees, so a failing test can be replayed.
"""
from __future__ import annotations

import json
import random
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Behaviour -> (Q.850 cause if the call fails, DialStatus).
FAILURES: dict[str, tuple[int, str]] = {
    "busy": (17, "BUSY"),
    "no_answer": (19, "NOANSWER"),
    "invalid_number": (1, "CHANUNAVAIL"),
    "congestion": (34, "CONGESTION"),
    "reject": (21, "CONGESTION"),
    # The other failures a real trunk or network gives (PJSIP: 502 -> 27, 484 -> 28, 500 -> 38).
    # 38, 41 and 42 are trunk-side like 34: the engine must not charge the recipient for them.
    "destination_out_of_order": (27, "CHANUNAVAIL"),
    "invalid_format": (28, "CHANUNAVAIL"),
    "network_out_of_order": (38, "CHANUNAVAIL"),
    "temporary_failure": (41, "CONGESTION"),
    "switching_congestion": (42, "CONGESTION"),
    # The callee's exchange ends the ring itself (SIP 480) before our timeout: cause 19,
    # but a real Asterisk 22 then gives OriginateResponse Reason 0, not 3.
    "unavailable": (19, "NOANSWER"),
}
# Failures decided by the network before the callee's phone rings: no Ringing state.
NOT_RINGING = frozenset({"invalid_number", "congestion", "destination_out_of_order", "invalid_format",
                         "network_out_of_order", "temporary_failure", "switching_congestion"})
ANSWERING = ("confirm", "listen", "voicemail")
BEHAVIOURS = frozenset(FAILURES) | frozenset(ANSWERING)
# Population weights -> behaviour; "answer" splits into confirm/listen by press_1.
# New keys go at the end, weighing 0 by default: random.choices then draws exactly what it drew
# before for the same seed, so existing seeded tests replay unchanged.
_WEIGHT_KEYS = ("answer", "busy", "no_answer", "invalid_number", "voicemail", "congestion",
                "destination_out_of_order", "invalid_format", "network_out_of_order", "temporary_failure",
                "switching_congestion", "unavailable")


class PopulationError(ValueError):
    """The population file or flags are wrong; the message says where."""


@dataclass(frozen=True)
class CallPlan:
    """What the callee of one call will do."""
    behaviour: str           # one of BEHAVIOURS
    ring_seconds: float      # before answering or failing
    listen_seconds: float    # after answering, before pressing or hanging up
    digit: str = "1"
    greets: bool = False     # says "Pronto?" once at pickup, then listens
    vote: str = ""           # the key pressed when the poll is asked after the message ("": none)


def _range(value: Any, name: str) -> tuple[float, float]:
    if isinstance(value, (int, float)):
        return float(value), float(value)
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(
            isinstance(v, (int, float)) for v in value) and 0 <= value[0] <= value[1]:
        return float(value[0]), float(value[1])
    raise PopulationError(f"population: {name} must be seconds or [min, max], got {value!r}")


def number_key(number: str) -> str:
    """Digits of a number without an international '00' or '+', for matching."""
    digits = re.sub(r"\D", "", number)
    return digits[2:] if number.strip().startswith("00") else digits


@dataclass
class Population:
    answer: float = 0.7
    busy: float = 0.08
    no_answer: float = 0.12
    invalid_number: float = 0.02
    voicemail: float = 0.05
    congestion: float = 0.03
    destination_out_of_order: float = 0.0
    invalid_format: float = 0.0
    network_out_of_order: float = 0.0
    temporary_failure: float = 0.0
    switching_congestion: float = 0.0
    unavailable: float = 0.0
    press_1: float = 0.8
    greet: float = 0.0       # share of answered calls whose callee says "Pronto?" at pickup
    ring_seconds: tuple[float, float] = (2.0, 10.0)
    listen_seconds: tuple[float, float] = (8.0, 20.0)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        weights = [getattr(self, key) for key in _WEIGHT_KEYS]
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise PopulationError("population: probabilities must be >= 0 and not all zero")
        for name in ("press_1", "greet"):
            if not 0 <= getattr(self, name) <= 1:
                raise PopulationError(f"population: {name} must be between 0 and 1")
        self.ring_seconds = _range(self.ring_seconds, "ring_seconds")
        self.listen_seconds = _range(self.listen_seconds, "listen_seconds")
        self.overrides = {number_key(k): self._check_override(k, v)
                          for k, v in self.overrides.items()}
        self._random = random.Random(self.seed)
        self._attempts: dict[str, int] = {}

    @staticmethod
    def _check_override(number: str, override: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(override, dict):
            raise PopulationError(f"population: override for {number} must be a table")
        unknown = set(override) - {"behaviour", "answer_on_attempt", "then",
                                   "ring_seconds", "listen_seconds", "digit", "greets", "vote"}
        if unknown:
            raise PopulationError(f"population: override for {number} has unknown keys {sorted(unknown)}")
        for key in ("behaviour", "then"):
            if key in override and override[key] not in BEHAVIOURS:
                raise PopulationError(f"population: override for {number}: {key} "
                                      f"{override[key]!r} is not one of {sorted(BEHAVIOURS)}")
        votes = override.get("vote", [])
        votes = [votes] if isinstance(votes, (str, int)) else votes
        if not isinstance(votes, list) or not all(re.fullmatch(r"[0-9*#]", str(v)) for v in votes):
            raise PopulationError(f"population: override for {number}: vote must be a key or a list of keys "
                                  f"(one per call, the last one repeats), got {override['vote']!r}")
        return dict(override)

    def set_override(self, number: str, override: dict[str, Any]) -> None:
        self.overrides[number_key(number)] = self._check_override(number, override)

    def reset(self) -> None:
        self._random = random.Random(self.seed)
        self._attempts.clear()

    def _override_for(self, key: str) -> dict[str, Any] | None:
        if key in self.overrides:
            return self.overrides[key]
        # A national-format dial string ('3331234567') still matches '+393331234567'.
        for known, override in self.overrides.items():
            shorter, longer = sorted((known, key), key=len)
            if len(shorter) >= 6 and longer.endswith(shorter):
                return override
        return None

    def plan_call(self, number: str) -> tuple[CallPlan, int]:
        """The plan for the next call to ``number`` and which attempt it is (1-based)."""
        key = number_key(number)
        attempt = self._attempts.get(key, 0) + 1
        self._attempts[key] = attempt
        ring = self._random.uniform(*self.ring_seconds)
        listen = self._random.uniform(*self.listen_seconds)
        override = self._override_for(key)
        if override is not None:
            behaviour = override.get("behaviour")
            if "answer_on_attempt" in override:
                behaviour = (override.get("then", "confirm")
                             if attempt >= int(override["answer_on_attempt"]) else
                             override.get("behaviour", "no_answer"))
            if behaviour is None:
                behaviour = self._draw()
            if "ring_seconds" in override:
                ring = self._random.uniform(*_range(override["ring_seconds"], "ring_seconds"))
            if "listen_seconds" in override:
                listen = self._random.uniform(*_range(override["listen_seconds"], "listen_seconds"))
            votes = override.get("vote", [])
            votes = [votes] if isinstance(votes, (str, int)) else votes
            vote = str(votes[min(attempt, len(votes)) - 1]) if votes else ""
            return CallPlan(behaviour, ring, listen, str(override.get("digit", "1")),
                            bool(override.get("greets", False)), vote), attempt
        behaviour = self._draw()
        # Drawn only when asked for, so seeded populations without it replay unchanged.
        greets = self.greet > 0 and self._random.random() < self.greet
        return CallPlan(behaviour, ring, listen, greets=greets), attempt

    def _draw(self) -> str:
        weights = [getattr(self, key) for key in _WEIGHT_KEYS]
        drawn = self._random.choices(_WEIGHT_KEYS, weights=weights)[0]
        if drawn == "answer":
            return "confirm" if self._random.random() < self.press_1 else "listen"
        return drawn


def population_from_mapping(data: dict[str, Any], seed: int | None = None) -> Population:
    allowed = set(_WEIGHT_KEYS) | {"press_1", "greet", "ring_seconds", "listen_seconds", "overrides", "seed"}
    unknown = set(data) - allowed
    if unknown:
        raise PopulationError(f"population: unknown keys {sorted(unknown)}; allowed {sorted(allowed)}")
    values = dict(data)
    if seed is not None:
        values["seed"] = seed
    try:
        return Population(**values)
    except TypeError as exc:
        raise PopulationError(f"population: {exc}") from exc


def load_population(path: str | Path, seed: int | None = None) -> Population:
    """Read a population from a .json or .toml file; ``seed`` overrides the file's."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        data = tomllib.loads(raw.decode()) if path.suffix == ".toml" else json.loads(raw)
    except (OSError, ValueError) as exc:
        raise PopulationError(f"population file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise PopulationError(f"population file {path}: top level must be a table")
    return population_from_mapping(data, seed)
