"""An error a user interface can show in its user's language, while the CLI prints it in English."""
from __future__ import annotations


class TranslatableError(Exception):
    """``msgid`` is an English gettext key with ``%(name)s`` placeholders and ``params`` their
    values: the panel translates ``msgid`` and fills in ``params`` (web/errors.py), while ``str()``
    stays the English text the CLI prints. The core knows nothing of gettext."""

    def __init__(self, msgid: str, **params: object) -> None:
        self.msgid = msgid
        self.params = params
        super().__init__(msgid % params if params else msgid)
