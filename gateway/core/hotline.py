"""The town's hotline: what a caller hears and what each key does. Pure: no database, no call.

One ``HotlineCall`` per call. The driver (the FastAGI session) asks ``start()`` for the
first ``Step``, plays it, and feeds back the key pressed (None when the caller pressed
nothing in time) to ``on_key``, until a step says ``hangup``. A step's ``effects`` are
what must be recorded before it plays (a confirmation, a registration): they come only
when the caller has finished a choice (the second 0, the summary confirmed), so a caller
hanging up mid-menu leaves nothing half-done.

Menus (known caller, after the messages in progress for their zone and any poll):
  1 confirm  2 repeat  3 change zone  4 change language  0 stop all calls (0 again to confirm)
Unknown caller with a caller ID: every message in progress, then
  2 repeat  3 register  5 hear one zone's messages
Anonymous caller: every message in progress, then  2 repeat  5 hear one zone's messages.
Registration: zone (numbered, paged by 8 with 9 for more when there are more than 9),
language, a summary, 1 to confirm (2 to start again).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum

PAGE = 8               # zones per page when they do not fit in 1..9 (9 is then "more")
MAX_SILENCES = 3       # unanswered prompts in a row before we say goodbye


@dataclass(frozen=True)
class Sound:
    """Something to play. ``kind``: 'prompt' (a hotline prompt by name, in the caller's
    language), 'file' (an absolute path without extension: an alert's message),
    'zone' (a zone's spoken name), 'digit', 'language' (a language's own name for itself)."""
    kind: str
    name: str


def prompt(name: str) -> Sound:
    return Sound("prompt", name)


@dataclass(frozen=True)
class Message:
    """An alert the caller may hear, with its audio in the caller's language."""
    alert_id: int
    audio: str                       # path without extension
    poll_audio: str | None = None    # the question and its options, spoken; None: no poll
    poll_options: int = 0


@dataclass(frozen=True)
class Situation:
    """What is going on when the call starts (read by the driver from the database)."""
    zones: tuple[str, ...]                              # every zone, in menu order
    languages: tuple[str, ...]                          # languages offered, in menu order
    in_progress: dict[str | None, tuple[Message, ...]]  # zone -> messages; None: every message
    latest_information: Message | None = None           # played when nothing is in progress

    def messages(self, zone: str | None) -> tuple[Message, ...]:
        found = self.in_progress.get(zone, ()) if zone is not None else self.in_progress.get(None, ())
        if found:
            return found
        return (self.latest_information,) if self.latest_information is not None else ()


@dataclass(frozen=True)
class Caller:
    e164: str | None           # None: anonymous
    known: bool                # a contact has this number
    language: str = "it"
    zone: str | None = None


# --- effects: what the driver records ---------------------------------------------------

@dataclass(frozen=True)
class Confirm:
    alert_ids: tuple[int, ...]


@dataclass(frozen=True)
class StopCalls:
    pass


@dataclass(frozen=True)
class Register:
    """A new contact (unknown caller) or a known one's zone and language, with consent now."""
    zone: str
    language: str


@dataclass(frozen=True)
class SetLanguage:
    language: str


@dataclass(frozen=True)
class Vote:
    alert_id: int
    option: int


Effect = Confirm | StopCalls | Register | SetLanguage | Vote


@dataclass(frozen=True)
class Step:
    play: tuple[Sound, ...]
    wants_key: bool = True
    effects: tuple[Effect, ...] = ()
    hangup: bool = False
    language: str = "it"       # the language the prompts of this step are in


class Where(StrEnum):
    MENU = "menu"
    POLL = "poll"
    STOP_TWICE = "stop_twice"
    ZONE = "zone"
    LANGUAGE = "language"
    SUMMARY = "summary"
    LISTEN_ZONE = "listen_zone"


@dataclass
class HotlineCall:
    caller: Caller
    situation: Situation
    where: Where = Where.MENU
    silences: int = 0
    page: int = 0
    purpose: str = ""                      # zone/language menus: 'register', 'zone', 'language', 'listen'
    chosen_zone: str | None = None
    chosen_language: str | None = None
    polls: list[Message] = field(default_factory=list)

    # --- entry points -----------------------------------------------------------------

    def start(self) -> Step:
        messages = self._messages()
        self.polls = [m for m in messages if m.poll_audio and m.poll_options]
        intro = (prompt("welcome"),) + (() if messages else (prompt("nothing-in-progress"),))
        return self._then_polls_or_menu(intro + self._play(messages))

    def on_key(self, key: str | None) -> Step:
        if key is None:
            self.silences += 1
            if self.silences >= MAX_SILENCES:
                return self._goodbye(())
            return self._again()
        self.silences = 0
        handler = {Where.MENU: self._menu_key, Where.POLL: self._poll_key, Where.STOP_TWICE: self._stop_key,
                   Where.ZONE: self._zone_key, Where.LISTEN_ZONE: self._zone_key,
                   Where.LANGUAGE: self._language_key, Where.SUMMARY: self._summary_key}[self.where]
        return handler(key)

    # --- helpers ----------------------------------------------------------------------

    @property
    def language(self) -> str:
        return self.caller.language

    def _step(self, play: tuple[Sound, ...], **kwargs: object) -> Step:
        return Step(play, language=self.language, **kwargs)  # type: ignore[arg-type]

    def _messages(self) -> tuple[Message, ...]:
        # A known caller hears their zone (every message when they have none); others hear all.
        return self.situation.messages(self.caller.zone if self.caller.known else None)

    @staticmethod
    def _play(messages: tuple[Message, ...]) -> tuple[Sound, ...]:
        return tuple(Sound("file", m.audio) for m in messages)

    def _menu_prompt(self) -> Sound:
        if self.caller.known:
            return prompt("menu-known")
        return prompt("menu-unknown") if self.caller.e164 else prompt("menu-anonymous")

    def _menu(self, before: tuple[Sound, ...] = (), effects: tuple[Effect, ...] = ()) -> Step:
        self.where = Where.MENU
        return self._step(before + (self._menu_prompt(),), effects=effects)

    def _then_polls_or_menu(self, before: tuple[Sound, ...]) -> Step:
        if self.polls:
            self.where = Where.POLL
            return self._step(before + (Sound("file", self.polls[0].poll_audio or ""),))
        return self._menu(before)

    def _again(self) -> Step:
        """The same question again, after a silence or a key that means nothing there."""
        if self.where is Where.POLL:
            return self._then_polls_or_menu((prompt("invalid"),))
        if self.where is Where.STOP_TWICE:
            return self._step((prompt("stop-ask"),))
        if self.where in (Where.ZONE, Where.LISTEN_ZONE):
            return self._zone_menu((prompt("invalid"),))
        if self.where is Where.LANGUAGE:
            return self._language_menu((prompt("invalid"),))
        if self.where is Where.SUMMARY:
            return self._summary((prompt("invalid"),))
        return self._menu((prompt("invalid"),))

    def _goodbye(self, before: tuple[Sound, ...], effects: tuple[Effect, ...] = ()) -> Step:
        return self._step(before + (prompt("goodbye"),), wants_key=False, effects=effects, hangup=True)

    # --- the main menu ----------------------------------------------------------------

    def _menu_key(self, key: str) -> Step:
        known, has_number = self.caller.known, self.caller.e164 is not None
        if key == "2":
            return self._then_polls_or_menu(self._play(self._messages()))
        if key == "1" and known:
            # Every alert in progress: the store confirms only this number's deliveries of them.
            active = tuple(m.alert_id for m in self.situation.in_progress.get(None, ()))
            if not active:
                return self._menu((prompt("nothing-to-confirm"),))
            return self._menu((prompt("confirmed"),), effects=(Confirm(active),))
        if key == "3" and has_number:
            return self._start_zone_menu("zone" if known else "register")
        if key == "4" and known:
            self.purpose = "language"
            return self._language_menu(())
        if key == "0" and known:
            self.where = Where.STOP_TWICE
            return self._step((prompt("stop-ask"),))
        if key == "5" and not known:
            return self._start_zone_menu("listen")
        return self._menu((prompt("invalid"),))

    def _poll_key(self, key: str) -> Step:
        poll = self.polls[0]
        if not key.isdigit() or not 1 <= int(key) <= poll.poll_options:
            return self._again()
        self.polls.pop(0)
        vote = Vote(poll.alert_id, int(key))
        if not self.caller.e164:
            # One vote per number: without a number there is nothing to count it against.
            step = self._then_polls_or_menu((prompt("vote-needs-number"),))
            return step
        step = self._then_polls_or_menu((prompt("vote-recorded"),))
        return replace(step, effects=(vote,))

    def _stop_key(self, key: str) -> Step:
        if key == "0":
            return self._goodbye((prompt("stopped"),), effects=(StopCalls(),))
        return self._menu((prompt("stop-kept"),))

    # --- zones --------------------------------------------------------------------------

    def _start_zone_menu(self, purpose: str) -> Step:
        self.purpose, self.page = purpose, 0
        if not self.situation.zones:
            if purpose == "listen":
                return self._menu((prompt("no-zones"),))
            # No zones defined: registration goes on with the language alone.
            self.chosen_zone = ""
            return self._language_menu(()) if purpose == "register" else self._menu((prompt("no-zones"),))
        return self._zone_menu(())

    def _page_zones(self) -> tuple[list[str], bool]:
        zones = list(self.situation.zones)
        if len(zones) <= 9:
            return zones, False
        start = self.page * PAGE
        return zones[start:start + PAGE], start + PAGE < len(zones)

    def _zone_menu(self, before: tuple[Sound, ...]) -> Step:
        self.where = Where.LISTEN_ZONE if self.purpose == "listen" else Where.ZONE
        zones, more = self._page_zones()
        play = list(before) + [prompt("zones-intro")]
        for number, zone in enumerate(zones, 1):
            play += [Sound("zone", zone), prompt("press"), Sound("digit", str(number))]
        if more:
            play.append(prompt("zones-more"))
        elif self.page:
            play.append(prompt("zones-first-page"))   # 9 goes back to the first page
        return self._step(tuple(play))

    def _zone_key(self, key: str) -> Step:
        zones, more = self._page_zones()
        if key == "9" and len(self.situation.zones) > 9:
            self.page = self.page + 1 if more else 0
            return self._zone_menu(())
        if not key.isdigit() or not 1 <= int(key) <= len(zones):
            return self._again()
        zone = zones[int(key) - 1]
        if self.purpose == "listen":
            messages = self.situation.messages(zone)
            return self._menu(self._play(messages) if messages else (prompt("nothing-in-progress"),))
        self.chosen_zone = zone
        if self.purpose == "register":
            return self._language_menu(())
        self.chosen_language = self.caller.language
        return self._summary(())

    # --- languages ----------------------------------------------------------------------

    def _language_menu(self, before: tuple[Sound, ...]) -> Step:
        self.where = Where.LANGUAGE
        play = list(before) + [prompt("languages-intro")]
        for number, language in enumerate(self.situation.languages[:9], 1):
            play += [Sound("language", language), Sound("digit", str(number))]
        return self._step(tuple(play))

    def _language_key(self, key: str) -> Step:
        languages = self.situation.languages[:9]
        if not key.isdigit() or not 1 <= int(key) <= len(languages):
            return self._again()
        language = languages[int(key) - 1]
        if self.purpose == "language":
            self.caller = replace(self.caller, language=language)
            return self._menu((prompt("saved"),), effects=(SetLanguage(language),))
        self.chosen_language = language
        return self._summary(())

    # --- the summary ------------------------------------------------------------------

    def _summary(self, before: tuple[Sound, ...]) -> Step:
        self.where = Where.SUMMARY
        play = list(before) + [prompt("summary-zone")]
        if self.chosen_zone:
            play.append(Sound("zone", self.chosen_zone))
        play += [prompt("summary-language"), Sound("language", self.chosen_language or self.language),
                 prompt("summary-confirm")]
        return self._step(tuple(play))

    def _summary_key(self, key: str) -> Step:
        if key == "2":
            if self.purpose == "register" or self.situation.zones:
                return self._start_zone_menu(self.purpose)
            return self._language_menu(())
        if key != "1":
            return self._again()
        effect = Register(self.chosen_zone or "", self.chosen_language or self.language)
        self.caller = replace(self.caller, known=True, zone=self.chosen_zone or None,
                              language=effect.language)
        return self._menu((prompt("registered" if self.purpose == "register" else "saved"),),
                          effects=(effect,))
