"""SMS memories of one modem ("SM" on the SIM, "ME" in the phone, "SR" for status reports)."""
from __future__ import annotations

from dataclasses import dataclass

# <stat> values of 27.005 3.1 in PDU mode, and their text-mode names.
REC_UNREAD, REC_READ, STO_UNSENT, STO_SENT = 0, 1, 2, 3
STAT_NAMES = {0: "REC UNREAD", 1: "REC READ", 2: "STO UNSENT", 3: "STO SENT", 4: "ALL"}


@dataclass
class StoredMessage:
    kind: str  # "deliver" or "status_report"
    pdu: str  # hex, SMSC field included
    tpdu_length: int
    stat: int
    details: dict  # what text mode shows: sender/recipient, timestamps, text, reference, status


class MemoryFull(Exception):
    pass


class MessageStore:
    def __init__(self, capacity: dict[str, int]) -> None:
        self.capacity = dict(capacity)
        self.memories: dict[str, dict[int, StoredMessage]] = {name: {} for name in capacity}
        # The most each memory ever held: a test proves with it that a memory never filled.
        self.high_water: dict[str, int] = {name: 0 for name in capacity}

    def __contains__(self, memory: str) -> bool:
        return memory in self.memories

    def add(self, memory: str, message: StoredMessage) -> int:
        slots = self.memories[memory]
        for index in range(1, self.capacity[memory] + 1):
            if index not in slots:
                slots[index] = message
                self.high_water[memory] = max(self.high_water[memory], len(slots))
                return index
        raise MemoryFull(memory)

    def get(self, memory: str, index: int) -> StoredMessage | None:
        return self.memories[memory].get(index)

    def valid_index(self, memory: str, index: int) -> bool:
        return 1 <= index <= self.capacity[memory]

    def delete(self, memory: str, index: int) -> None:
        self.memories[memory].pop(index, None)

    def delete_by_flag(self, memory: str, flag: int) -> None:
        """AT+CMGD=<i>,<delflag> with delflag 1..4 (read; +sent; +unsent; all)."""
        doomed = {1: {REC_READ}, 2: {REC_READ, STO_SENT}, 3: {REC_READ, STO_SENT, STO_UNSENT}}
        slots = self.memories[memory]
        for index in [i for i, m in slots.items() if flag == 4 or m.stat in doomed.get(flag, set())]:
            del slots[index]

    def listing(self, memory: str, stat: int) -> list[tuple[int, StoredMessage]]:
        return sorted((i, m) for i, m in self.memories[memory].items() if stat == 4 or m.stat == stat)

    def used(self, memory: str) -> int:
        return len(self.memories[memory])

    def counts(self) -> dict[str, int]:
        return {name: len(slots) for name, slots in self.memories.items()}

    def clear(self) -> None:
        for slots in self.memories.values():
            slots.clear()
        self.high_water = {name: 0 for name in self.capacity}
