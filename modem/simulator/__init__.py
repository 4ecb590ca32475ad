"""GSM modem simulator: faithful AT modems on pseudo-terminals, for drills, demos and tests.

- at_engine: one modem's AT state machine (pure)
- profiles: generic, huawei, sim800
- pty_transport / pool: ptys served by one asyncio loop
- control: JSON-lines control socket; cli: the command line; harness: a subprocess wrapper
"""
from .at_engine import Action, ModemConfig, SimulatedModem, Timer
from .latency import Latency
from .profiles import PROFILES, Profile, get_profile

__all__ = ["Action", "Latency", "ModemConfig", "PROFILES", "Profile", "SimulatedModem", "Timer", "get_profile"]
