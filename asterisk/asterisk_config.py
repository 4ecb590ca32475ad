"""Render the Asterisk configuration files Allerta needs from asterisk/conf/.

The templates use ``@@NAME@@`` placeholders: Asterisk's own ``${VAR}`` and
``$[expr]`` syntax then needs no escaping, and a placeholder left unfilled
is easy to detect. Every value is checked, because a newline in a secret
or a comma in a path would change the meaning of the file.
"""
from __future__ import annotations

import re
from importlib import resources

from asterisk.dialplan_modules import required_modules

TEMPLATES = ("extensions_allerta.conf", "manager_allerta.conf")
_PLACEHOLDER = re.compile(r"@@([A-Z0-9_]+)@@")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_SOUND = re.compile(r"^[A-Za-z0-9_./-]+$")


class ConfigRenderError(ValueError):
    """A value cannot go into an Asterisk configuration file; the message says which."""


def _render(name: str, values: dict[str, str]) -> str:
    template = (resources.files("asterisk") / "conf" / name).read_text(encoding="utf-8")
    missing = sorted(set(_PLACEHOLDER.findall(template)) - set(values))
    if missing:
        raise ConfigRenderError(f"{name}: no value for {', '.join(missing)}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


HANGUP_CONTEXT = "allerta-hangup"   # the hangup handler's context in extensions_allerta.conf
# Where docs/install.md renders the files ('#include allerta/...'): the doctor's hints say the same.
CONFIG_DIR = "/etc/asterisk/allerta"


def dialplan_modules() -> list[str]:
    """The Asterisk modules extensions_allerta.conf needs (its applications and functions)."""
    template = (resources.files("asterisk") / "conf" / "extensions_allerta.conf").read_text(encoding="utf-8")
    return required_modules(template)


def render_configs(ami_user: str, ami_secret: str, sounds_dir: str, *, context: str = "allerta-outbound",
                   ami_port: int = 5038,
                   max_plays: int = 3, read_timeout_seconds: int = 5,
                   amd_silence_ms: int = 1500, amd_max_wait_seconds: int = 20,
                   machine_talk_ms: int = 3000, machine_gap_ms: int = 1000,
                   machine_window_seconds: int = 20, hotline_context: str = "allerta-hotline",
                   agi_port: int = 4573) -> dict[str, str]:
    """File name -> rendered text, for every file in ``TEMPLATES``."""
    if not _NAME.match(ami_user):
        raise ConfigRenderError(f"AMI user {ami_user!r}: use letters, digits, '_', '-', '.'")
    if len(ami_secret) < 8 or re.search(r"[\s;\[\]]", ami_secret):
        raise ConfigRenderError("AMI secret must be at least 8 characters, without spaces, ';' or brackets")
    if not sounds_dir.startswith("/") or not _SOUND.match(sounds_dir):
        raise ConfigRenderError(f"sounds directory {sounds_dir!r} must be an absolute path of "
                                "letters, digits, '_', '.', '-' and '/'")
    # The engine originates into [asterisk] context: the dialplan must be named the same.
    if not _NAME.match(context) or context == HANGUP_CONTEXT:
        raise ConfigRenderError(f"dialplan context {context!r}: use letters, digits, '_', '-', '.' "
                                f"(and not {HANGUP_CONTEXT}, the hangup handler's)")
    if not _NAME.match(hotline_context) or hotline_context in (HANGUP_CONTEXT, context):
        raise ConfigRenderError(f"hotline context {hotline_context!r}: use letters, digits, '_', '-', '.' "
                                f"(and not {HANGUP_CONTEXT} or the outbound context)")
    for label, number, low, high in (("ami_port", ami_port, 1, 65535), ("max_plays", max_plays, 1, 10),
                                     ("agi_port", agi_port, 1, 65535),
                                     ("read_timeout_seconds", read_timeout_seconds, 1, 60),
                                     ("amd_silence_ms", amd_silence_ms, 100, 10000),
                                     ("amd_max_wait_seconds", amd_max_wait_seconds, 1, 120),
                                     ("machine_talk_ms", machine_talk_ms, 500, 30000),
                                     ("machine_gap_ms", machine_gap_ms, 200, 5000),
                                     ("machine_window_seconds", machine_window_seconds, 1, 120)):
        if not low <= number <= high:
            raise ConfigRenderError(f"{label} must be between {low} and {high}, got {number}")
    values = {
        "CONTEXT": context, "AMI_USER": ami_user, "AMI_SECRET": ami_secret, "AMI_PORT": str(ami_port),
        "SOUNDS_DIR": sounds_dir.rstrip("/") or "/", "MAX_PLAYS": str(max_plays),
        "READ_TIMEOUT_SECONDS": str(read_timeout_seconds),
        "AMD_SILENCE_MS": str(amd_silence_ms), "AMD_MAX_WAIT_SECONDS": str(amd_max_wait_seconds),
        "MACHINE_TALK_MS": str(machine_talk_ms), "MACHINE_GAP_MS": str(machine_gap_ms),
        "MACHINE_WINDOW_SECONDS": str(machine_window_seconds),
        "MACHINE_WINDOW_MS": str(machine_window_seconds * 1000),
        "HOTLINE_CONTEXT": hotline_context, "AGI_PORT": str(agi_port),
    }
    return {name: _render(name, values) for name in TEMPLATES}
