"""What a trunk's dial string template may be: checked when the configuration is loaded.

Pure code, in the core so that ``gateway.core.config`` refuses a bad
``[[trunks]] dial`` at load (and ``allerta doctor`` reports it) instead of the
voice channel failing at start; ``asterisk/dialstring.py`` renders templates
that passed this check. The rendered template becomes the ``Channel`` header
of an AMI Originate: a CR or LF would let it start a header of its own, and a
comma or '&' changes what Asterisk dials.
"""
from __future__ import annotations

import re

PLACEHOLDER = "{number}"
NUMBER_FORMATS = ("keep_plus", "international", "international_00", "national")
EXAMPLE = "PJSIP/{number}@pstn"

# Technology, resource, '@', context/endpoint, '/' separators, '-' '_' '.' ':' '+'.
_CHANNEL_CHARS = re.compile(r"[A-Za-z0-9/@._:\-+{}]")
_TECHNOLOGY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*/")
_PLACEHOLDERS = re.compile(r"\{[^{}]*\}")


def dial_template_problem(template: str) -> str | None:
    """What is wrong with ``template`` and how to fix it, or None when it can be dialled."""
    if re.search(r"\s", template):
        return "whitespace is not allowed in an AMI Channel header: remove the spaces and line breaks"
    if "," in template:
        options = template[template.index(","):]
        # Originate's Channel is not Dial()'s argument: ',x' would be read as part of the resource.
        return (f"options after a comma ({options!r}) are not allowed: an Originate Channel takes no Dial() "
                f"options; remove them (the ring time is [asterisk] ring_timeout), e.g. {EXAMPLE}")
    bad = sorted({char for char in template if not _CHANNEL_CHARS.fullmatch(char)})
    if bad:
        return (f"characters not allowed in an AMI Channel header: {' '.join(map(repr, bad))} "
                "(allowed: letters, digits, / @ . _ : - + and {number})")
    outside = _PLACEHOLDERS.sub("", template)
    if "{" in outside or "}" in outside:
        return f"a '{{' or '}}' without its pair: write the placeholder as {PLACEHOLDER}, e.g. {EXAMPLE}"
    unknown = sorted(set(_PLACEHOLDERS.findall(template)) - {PLACEHOLDER})
    if unknown:
        return (f"unknown placeholder {', '.join(unknown)}: the template must contain {PLACEHOLDER} exactly "
                f"once and nothing else in braces, e.g. {EXAMPLE}")
    count = template.count(PLACEHOLDER)
    if count != 1:
        where = "where the number goes" if count == 0 else f"not {count} times"
        return f"the template must contain {PLACEHOLDER} exactly once, {where}, e.g. {EXAMPLE}"
    if not _TECHNOLOGY.match(template):
        return f"the template must start with a technology such as PJSIP/ or Local/, e.g. {EXAMPLE}"
    return None
