"""A prediction: events in measurement order and the registers they give (decoders.measure.model
has the events, the registers and their nodes)."""
from __future__ import annotations

from decoders.measure.model import PredictedEvent, event_node, extend, register_name, register_node
from decoders.model import Node


class Prediction:
    """Events in measurement order and the registers they give, with what could not be decided.
    A plain class: `measure --tdx/--snp` start without the dataclasses module (~10 ms to import)."""

    def __init__(self, events: list[PredictedEvent] | None = None, banks: tuple[str, ...] = ("sha256",),
                 initial: dict[int, bytes] | None = None):
        self.events = [] if events is None else events
        self.banks = banks
        self.initial = {} if initial is None else initial

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self.events)} events, banks={self.banks!r})"

    def registers(self) -> dict[str, dict[int, bytes]]:
        return extend(self.events, self.banks, self.initial)

    def register_nodes(self) -> list[Node]:
        values = self.registers()
        counts: dict[int, int] = {}
        for ev in self.events:
            counts[ev.index] = counts.get(ev.index, 0) + 1
        cc = bool(self.events) and self.events[0].cc
        return [register_node(register_name(i, cc), bank, values[bank][i], counts.get(i))
                for i in sorted({i for bank in values for i in values[bank]}) for bank in self.banks
                if i in values.get(bank, {})]

    def event_nodes(self) -> list[Node]:
        return [event_node(ev, n) for n, ev in enumerate(self.events)]
