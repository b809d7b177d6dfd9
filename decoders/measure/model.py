"""What every prediction is made of: predicted events, the registers they extend, and their nodes.

A prediction says which event the firmware or the VMM will measure (its register, its event type,
its digest per bank) and where the measured bytes come from (a firmware volume, a variable, a
metadata section). The registers follow from the events:

- TPM PCRs and TDX RTMRs are extended: `R = H(R || digest)`, from zero (TPM 2.0 Library Part 1,
  "PCR Extend"; Intel TDX Module ABI, TDG.MR.RTMR.EXTEND), per bank.
- The TDX MRTD and the SEV-SNP launch digest are not: they are running hashes of their own
  records, computed by decoders.mrtd and decoders.measure.snp, and appear here only as registers.

Nodes: every event is a `predicted-event` (fields PCRIndex or MRIndex, EventType, Digests, Source,
EventData), every final value a `predicted-register` (fields Register, Bank, Value as lowercase
hex), so the views, the JSON export and the comparison with a real log read one shape.
"""
from __future__ import annotations

import hashlib

from decoders.model import Node, Space

DIGEST_SIZES = {"sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}
BANKS = tuple(DIGEST_SIZES)


def digest(bank: str, data: bytes | bytearray | memoryview) -> bytes:
    return hashlib.new(bank, data).digest()


def digests(banks, data: bytes | bytearray | memoryview) -> dict[str, bytes]:
    """The digest of `data` in every bank."""
    return {bank: digest(bank, data) for bank in banks}


class PredictedEvent:
    """One event the firmware (or the VMM) will measure.

    `index` is the PCR index for a TPM event, the CC MR index for a TDX event (1 = RTMR0, UEFI
    2.10 §38.4.1 EFI_CC_MEASUREMENT_PROTOCOL). `data` is the event data as the firmware logs it
    (not always the bytes it hashes: a firmware blob's data is its base and length). `source`
    says where the hashed bytes come from, in words; `space`/`offset`/`size` point at them when
    they are bytes of a decoded input (a volume of the image, a variable of the VARS).
    """

    # A plain class (not a dataclass): the SNP/TDX commands start in well under 100 ms, and
    # `dataclasses` alone costs ~15 ms to import (decoders/model.py says more).
    def __init__(self, index: int, event_type: int, digests: dict[str, bytes], data: bytes, source: str,
                 description: str = "", space: Space | None = None, offset: int = 0, size: int = 0,
                 cc: bool = False):
        self.index = index
        self.event_type = event_type
        self.digests = digests
        self.data = data
        self.source = source
        self.description = description
        self.space = space
        self.offset = offset
        self.size = size
        self.cc = cc

    def __repr__(self) -> str:
        return (f"PredictedEvent({self.register} type=0x{self.event_type:x} {self.description or self.source!r} "
                f"{ {b: d.hex()[:16] for b, d in self.digests.items()} })")

    @property
    def register(self) -> str:
        return register_name(self.index, self.cc)


def register_name(index: int, cc: bool = False) -> str:
    """PCR<n>, or RTMR<n-1> for a CC MR index (MR index 0 is the MRTD)."""
    if not cc:
        return f"PCR{index}"
    return "MRTD" if index == 0 else f"RTMR{index - 1}"


def extend(events: list[PredictedEvent], banks, initial: dict[int, bytes] | None = None
           ) -> dict[str, dict[int, bytes]]:
    """The final value of every register the events extend, per bank: R = H(R || digest), each
    register from zero (or from `initial[index]`, e.g. PCR0 after a StartupLocality event)."""
    out: dict[str, dict[int, bytes]] = {}
    for bank in banks:
        values: dict[int, bytes] = {}
        for ev in events:
            d = ev.digests.get(bank)
            if d is None:
                continue
            start = values.get(ev.index)
            if start is None:
                start = (initial or {}).get(ev.index, bytes(DIGEST_SIZES[bank]))
            values[ev.index] = digest(bank, start + d)
        out[bank] = values
    return out


def _event_type_text(event_type: int) -> str:
    from decoders.tcg import event_type_name

    return event_type_name(event_type) or f"0x{event_type:x}"


def event_node(ev: PredictedEvent, number: int | None = None) -> Node:
    """The `predicted-event` node of one event."""
    label = f"#{number} " if number is not None else ""
    what = ev.description or ev.source
    node = Node("predicted-event", f"{label}{ev.register} {_event_type_text(ev.event_type)}: {what}",
                ev.space, ev.offset, ev.size)
    node.add("MRIndex" if ev.cc else "PCRIndex", ev.index, display=f"{ev.index} ({ev.register})")
    node.add("EventType", ev.event_type, display=f"{_event_type_text(ev.event_type)} (0x{ev.event_type:x})")
    node.add("Digests", {bank: d.hex() for bank, d in ev.digests.items()},
             display=", ".join(f"{bank}:{d.hex()}" for bank, d in ev.digests.items()))
    node.add("Source", ev.source)
    if ev.description:
        node.add("Description", ev.description)
    node.add("EventData", ev.data, display=_data_text(ev.data))
    return node


def _data_text(data: bytes) -> str:
    if len(data) <= 64:
        return data.hex() if data else "(empty)"
    return f"{data[:32].hex()}… ({len(data)} bytes)"


def register_node(register: str, bank: str, value: bytes, events: int | None = None) -> Node:
    """The `predicted-register` node of one final value."""
    count = f", {events} events" if events is not None else ""
    node = Node("predicted-register", f"{register} ({bank}) = {value.hex()}{count}")
    node.add("Register", register)
    node.add("Bank", bank)
    node.add("Value", value.hex())
    if events is not None:
        node.add("Events", events)
    return node


def __getattr__(name: str):
    """Prediction is a dataclass (predictions subclass it as dataclasses); it is loaded on first use
    so that a command that only builds nodes (the SNP launch digest) never imports `dataclasses`."""
    if name == "Prediction":
        from decoders.measure.prediction import Prediction

        return Prediction
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
