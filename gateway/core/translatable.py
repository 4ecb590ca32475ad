"""An error a user interface can show in its user's language, while the CLI prints it in English."""
from __future__ import annotations

from gateway.core.plurals import is_singular


class TranslatableError(Exception):
    """``msgid`` is an English gettext key with ``%(name)s`` placeholders and ``params`` their
    values: the panel translates ``msgid`` and fills in ``params`` (web/errors.py), while ``str()``
    stays the English text the CLI prints. The core knows nothing of gettext.

    A message about a count gives its plural too (``plural=``, with the count as ``num``): the
    panel picks the form with ``ngettext``, ``str()`` with Babel's English rule ("1 contact")."""

    def __init__(self, msgid: str, *, plural: str | None = None, **params: object) -> None:
        self.msgid = msgid
        self.plural = plural
        self.params = params
        text = msgid
        if plural is not None and not is_singular(int(params["num"])):  # type: ignore[call-overload]
            text = plural
        super().__init__(text % params if params else text)
