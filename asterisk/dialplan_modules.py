"""Which Asterisk modules a dialplan needs: read from the dialplan text itself.

With one of them not loaded, Asterisk 22 answers the call and hangs up a
moment later with nothing played (a missing application), or evaluates a
missing function to nothing. ``allerta doctor`` asks Asterisk about each
(``ModuleCheck``) and the PBX simulator refuses the same calls when told
a module is missing. Pure: no I/O.
"""
from __future__ import annotations

import re

# Application -> the module that registers it (Asterisk 22 source tree).
APPLICATION_MODULES = {
    "Answer": "pbx_builtin", "NoOp": "pbx_builtin", "Set": "pbx_builtin", "GotoIf": "pbx_builtin",
    "Goto": "pbx_builtin", "Hangup": "pbx_builtin", "Wait": "pbx_builtin",
    "Return": "app_stack", "Gosub": "app_stack",
    "Read": "app_read", "Playback": "app_playback", "UserEvent": "app_userevent",
    "BackgroundDetect": "app_talkdetect", "WaitForSilence": "app_waitforsilence",
    "AMD": "app_amd", "AGI": "res_agi",
}
# Dialplan function -> module.
FUNCTION_MODULES = {
    "CHANNEL": "func_channel", "STAT": "func_env", "DB": "func_db", "DIALPLAN_EXISTS": "func_dialplan",
    "IF": "func_logic", "LEN": "func_strings",
    "CALLERID": "func_callerid",
}
# Always needed: the parser of extensions.conf, the format of our audio, the timer that
# paces playback, and func_dialplan for doctor's check that our context is loaded.
# Hangup handlers run as Gosub (app_stack) even when no Return() is written.
BASE_MODULES = ("pbx_config", "format_wav", "res_timing_timerfd", "func_dialplan", "app_stack")
# Built into the core: nothing to check.
_CORE = {"pbx_builtin"}

_APPLICATION = re.compile(r"^\s*(?:exten\s*=>\s*[^,]+,|same\s*=>\s*)[^,]+,\s*([A-Za-z]+)\(", re.MULTILINE)
_FUNCTION = re.compile(r"([A-Z][A-Z_]+)\(")


class UnknownApplication(ValueError):
    """The dialplan uses an application this table does not know: add it."""


def required_modules(dialplan: str) -> list[str]:
    """The modules ``dialplan`` needs, sorted; UnknownApplication for one not in the tables."""
    text = "\n".join(line.split(";", 1)[0] for line in dialplan.splitlines())
    modules = set(BASE_MODULES)
    for application in _APPLICATION.findall(text):
        if application not in APPLICATION_MODULES:
            raise UnknownApplication(f"dialplan application {application}() has no module in "
                                     "asterisk/dialplan_modules.py")
        modules.add(APPLICATION_MODULES[application])
    for function in _FUNCTION.findall(text):
        if function in FUNCTION_MODULES:
            modules.add(FUNCTION_MODULES[function])
    return sorted(modules - _CORE)
