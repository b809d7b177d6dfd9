"""Decode TCG PC Client event logs (TPM 1.2 SHA-1 format and TPM 2.0 crypto-agile) and CC event logs.

Specs: TCG PC Client Platform Firmware Profile 1.05 §10 (TCG_PCR_EVENT, TCG_PCR_EVENT2,
TCG_EfiSpecIDEventStruct); edk2 MdePkg/Include/IndustryStandard/UefiTcgPlatform.h;
CC event log: edk2 MdePkg/Include/Protocol/CcMeasurement.h and OvmfPkg/Tcg/TdTcg2Dxe/TdTcg2Dxe.c.

Node kinds: root `event-log`; one `event` per entry with fields PCRIndex (MrIndex in a CC log, with
display "RTMRn"), EventType, the digests (Digest for TCG_PCR_EVENT; Count then Digest.<alg> for
TCG_PCR_EVENT2), EventSize, Event (raw), and one child with the decoded event data (events.py).

Auto-detection (kind="auto"):
  * the first entry is always in TCG_PCR_EVENT (SHA-1) format. If it is EV_NO_ACTION with the
    "Spec ID Event03" signature, the rest is crypto-agile (TCG_PCR_EVENT2), otherwise the whole log
    is a TPM 1.2 SHA-1 log (this includes "Spec ID Event02" headers).
  * it is a CC log when that Spec ID header has PCRIndex 1 and lists exactly one algorithm, SHA-384:
    TDVF writes `SpecIdEvent.PCRIndex = 1; // PCRIndex 0 maps to MrIndex 1` (TdTcg2Dxe.c
    SetupCcEventLog) and logs SHA-384 only, while a TPM log's header must have PCRIndex 0 (PFP §10.4.5.1).
A CC log ends at the first MrIndex 0xFFFFFFFF (TDVF leaves the rest of the area 0xFF).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from decoders import budget
from decoders.errors import DecodeError
from decoders.eventlog import structs as S
from decoders.eventlog.events import decode_event_data
from decoders.model import Node, Space

# Bounds on hostile input. A real log has a few hundred to a few thousand events (the largest
# fixture has about 700). A decoded event with its data is about 6 KB of Python objects, so the
# events decoded stop at MAX_EVENTS (about 120 MiB), with a located problem, before the decode's
# node budget (decoders/budget.py, two Nodes an event) would. TPML_DIGEST_VALUES holds one digest
# per PCR bank (five algorithms exist), and a Spec ID lists at most those banks. The caps keep a lying count from costing time or memory.
MAX_EVENTS = 20_000
NODES_PER_EVENT = 2
MAX_DIGESTS = 16
MAX_SPEC_ID_ALGORITHMS = 16

SPEC_ID_03 = b"Spec ID Event03\0"
SPEC_ID_02 = b"Spec ID Event02\0"
CC_MR_END = 0xFFFFFFFF  # TDVF fills the unused log area with 0xFF


@dataclass
class SpecId:
    signature: bytes
    algorithms: dict[int, int] = field(default_factory=dict)  # algorithmId -> digestSize
    pcr_index: int = 0


def mr_name(mr_index: int) -> str:
    """CC MR index to register name for TDX (UEFI 2.10 §38.4.1; TdxMeasurementCommon.c)."""
    if mr_index == 0:
        return "MRTD"
    if 1 <= mr_index <= 4:
        return f"RTMR{mr_index - 1}"
    return f"MR{mr_index}"


def _type_display(t: int) -> str:
    name = S.event_type_name(t)
    return name if name else f"unknown event type 0x{t:08x}"


def decode_event_log(data: bytes, *, kind: str = "auto", space_name: str = "eventlog") -> Node:
    """Decode an event log. `kind` is "auto", "tcg" (TPM) or "cc" (confidential-computing)."""
    if kind not in ("auto", "tcg", "cc"):
        raise ValueError(f"kind must be auto, tcg or cc, not {kind!r}")
    with budget.scope():
        return _decode(data, kind, space_name)


def _decode(data: bytes, kind: str, space_name: str) -> Node:
    space = Space(space_name, bytes(data))
    buf = space.data
    root = Node("event-log", "event log", space, 0, len(buf))
    if len(buf) < S.TCG_PCR_EVENT_HDR.size:
        root.problem(0, f"log is {len(buf)} bytes, shorter than the 32-byte TCG_PCR_EVENT header")
        root.add("Format", "unknown")
        root.title = "event log (empty or truncated)"
        return root

    hdr = S.TCG_PCR_EVENT_HDR.parse(buf, 0)
    spec_id = None
    if hdr.EventType == S.EV_NO_ACTION and len(buf) >= 32 + 16 and buf[32:48] in (SPEC_ID_03, SPEC_ID_02):
        spec_id = SpecId(bytes(buf[32:48]), pcr_index=hdr.PCRIndex)

    agile = spec_id is not None and spec_id.signature == SPEC_ID_03
    events: list[Node] = []
    if not agile:
        fmt = "tcg1.2"
        if kind == "cc":
            root.problem(0, "a CC event log needs a Spec ID Event03 header; decoded as a SHA-1 log")
        _decode_sha1_log(root, space, 0, events)
    else:
        first = _decode_header_event(root, space, spec_id)
        events.append(first)
        is_cc_shape = (spec_id.pcr_index == 1 and list(spec_id.algorithms) == [S.TPM_ALG_SHA384])
        if kind == "cc" or (kind == "auto" and is_cc_shape):
            fmt = "cc"
            if spec_id.pcr_index != 1:
                root.note(0, f"Spec ID header has PCRIndex {spec_id.pcr_index}; TDVF writes 1")
        else:
            fmt = "tcg"
            if spec_id.pcr_index != 0:
                root.warn(0, f"Spec ID header has PCRIndex {spec_id.pcr_index}; PFP §10.4.5.1 requires 0")
        if spec_id.algorithms and first.size >= 32:
            _decode_agile_events(root, space, first.offset + first.size, spec_id, fmt, events)
        else:
            root.problem(0, "the Spec ID header lists no usable algorithm; the events cannot be decoded")

    root.add("Format", fmt, display={"tcg": "TCG crypto-agile (TCG_PCR_EVENT2)",
                                      "tcg1.2": "TCG 1.2 SHA-1 (TCG_PCR_EVENT)",
                                      "cc": "CC event log (CC_EVENT, TDX RTMRs)"}[fmt])
    if spec_id is not None and agile:
        root.add("Algorithms", {S.alg_name(a): s for a, s in spec_id.algorithms.items()},
                 display=", ".join(f"{S.alg_name(a)}/{s}" for a, s in spec_id.algorithms.items()))
    root.add("EventCount", len(events))
    root.children.extend(events)
    budget.current().summarize(root)
    root.title = f"{root.field('Format').display}: {len(events)} events"
    return root


# -- TCG_PCR_EVENT (SHA-1) ---------------------------------------------------------------------

def _sha1_event(space: Space, off: int, index: int) -> tuple[Node, int | None]:
    """One TCG_PCR_EVENT at `off`; returns the node and the next offset (None: stop)."""
    buf = space.data
    hdr = S.TCG_PCR_EVENT_HDR.parse(buf, off)
    ev = Node("event", "", space, off, 32)
    S.TCG_PCR_EVENT_HDR.add_fields(ev, hdr, off, displays={"EventType": _type_display})
    ev.title = f"#{index} PCR{hdr.PCRIndex} {_type_display(hdr.EventType)}"
    data_off = off + 32
    if hdr.EventSize > len(buf) - data_off:
        ev.problem(off + 28, f"EventSize {hdr.EventSize} runs past the end of the log "
                             f"({len(buf) - data_off} bytes left); log truncated here")
        ev.size = len(buf) - off
        return ev, None
    ev.size = 32 + hdr.EventSize
    raw = bytes(buf[data_off:data_off + hdr.EventSize])
    ev.add("Event", raw, data_off, hdr.EventSize)
    return ev, data_off + hdr.EventSize


def _decode_sha1_log(root: Node, space: Space, off: int, events: list[Node]) -> None:
    buf = space.data
    padding = _padding_start(buf)
    while off < len(buf):
        if off >= padding:
            root.note(off, f"log ends at 0x{off:x}; {len(buf) - off} bytes of 0x{buf[off]:02X} padding follow")
            return
        if not _take_event(root, off, len(buf), len(events)):
            return
        if len(buf) - off < 32:
            root.problem(off, f"{len(buf) - off} trailing bytes, too short for a 32-byte TCG_PCR_EVENT header")
            return
        ev, nxt = _sha1_event(space, off, len(events))
        if ev.field("Event") is not None:
            ev.append(decode_event_data(ev.get("EventType"), ev.get("PCRIndex"), space,
                                        off + 32, ev.get("EventSize"), log_format="tcg1.2"))
        events.append(ev)
        if nxt is None:
            return
        off = nxt


def _padding_start(buf: bytes) -> int:
    """Where the trailing run of 0x00 or 0xFF starts (a log copied out of its reserved area ends in
    one): from there on, all of the rest is padding. Computed once per log, so the check at each
    event costs nothing (a scan of the rest at every event is quadratic)."""
    return min(len(buf.rstrip(b"\x00")), len(buf.rstrip(b"\xff")))


def _take_event(root: Node, off: int, end: int, decoded: int) -> bool:
    """Room for one more event (MAX_EVENTS, then the node budget); if not, the located problem."""
    if decoded >= MAX_EVENTS:
        root.warn(off, f"{end - off:,} more bytes of events not decoded; the budget is {MAX_EVENTS:,} events")
        return False
    b = budget.current()
    if b.take_nodes(NODES_PER_EVENT) == NODES_PER_EVENT:
        return True
    b.left_out(root, off, end - off, "bytes of events", "nodes")
    return False


# -- the Spec ID header ------------------------------------------------------------------------

_SPEC_ID_DISPLAYS = {
    "signature": lambda v: v.rstrip(b"\0").decode("ascii", "replace"),
    "platformClass": {0: "client", 1: "server"}.get,
    "uintnSize": {1: "UINT32", 2: "UINT64"}.get,
}


def _decode_header_event(root: Node, space: Space, spec_id: SpecId) -> Node:
    buf = space.data
    ev, nxt = _sha1_event(space, 0, 0)
    if ev.get("Digest") != bytes(20):
        ev.warn(8, "Spec ID header Digest is not all zeros (PFP §10.4.5.1)")
    data = Node("spec-id-event", "TCG_EfiSpecIDEventStruct", space, 32, ev.get("EventSize", 0))
    ev.append(data)
    end = 32 + min(ev.get("EventSize", 0), len(buf) - 32)
    try:
        sid = S.TCG_EfiSpecIdEventStruct.parse(buf[:end], 32)
    except DecodeError as e:
        data.problem(e.offset, f"Spec ID event: {e.message}")
        ev.size = max(ev.size, 32)
        return ev
    p = S.TCG_EfiSpecIdEventStruct.add_fields(data, sid, 32, displays=_SPEC_ID_DISPLAYS)
    count = sid.numberOfAlgorithms
    count_at = data.field("numberOfAlgorithms").offset
    if count == 0:
        data.problem(count_at, "numberOfAlgorithms is 0; a crypto-agile log needs at least one")
    if count > MAX_SPEC_ID_ALGORITHMS:
        data.problem(count_at, f"numberOfAlgorithms {count} exceeds {MAX_SPEC_ID_ALGORITHMS}; list not decoded")
        count = 0
    for i in range(count):
        if p + 4 > end:
            data.problem(p, f"algorithm {i} of {sid.numberOfAlgorithms} runs past the Spec ID event")
            break
        a = S.TCG_EfiSpecIdEventAlgorithmSize.parse(buf, p)
        spec_id.algorithms[a.algorithmId] = a.digestSize
        data.add(f"digestSizes[{i}]", {"algorithmId": a.algorithmId, "digestSize": a.digestSize}, p, 4,
                 f"{S.alg_name(a.algorithmId)}, {a.digestSize} bytes")
        known = S.ALGORITHMS.get(a.algorithmId)
        if known and known[1] != a.digestSize:
            data.warn(p + 2, f"{known[0]} digestSize {a.digestSize}, the algorithm's size is {known[1]}")
        if a.digestSize == 0 or a.digestSize > 512:
            data.problem(p + 2, f"digestSize {a.digestSize} for algorithm 0x{a.algorithmId:04x} is implausible")
        p += 4
    # tpm2-tools (lib/tpm2_eventlog.c specid_event) finds the next event from the structure, not
    # from EventSize; follow it when the two disagree but the structure fits in the log.
    if p < len(buf):
        vsize = buf[p]
        data.add("vendorInfoSize", vsize, p, 1)
        if p + 1 + vsize > len(buf):
            data.problem(p, f"vendorInfoSize {vsize} runs past the end of the log")
        else:
            data.add("vendorInfo", bytes(buf[p + 1:p + 1 + vsize]), p + 1, vsize)
            p += 1 + vsize
    else:
        data.problem(p, "Spec ID event ends before vendorInfoSize")
    if nxt is not None and p != nxt:
        data.warn(p, f"Spec ID structure ends at 0x{p:x}, EventSize says 0x{nxt:x}; "
                     f"following the structure")
    data.size = p - 32
    ev.size = p
    data.title = f"Spec ID Event03: {', '.join(S.alg_name(a) for a in spec_id.algorithms)}"
    ev.title = f"#0 PCR{ev.get('PCRIndex')} EV_NO_ACTION Spec ID"
    return ev


# -- TCG_PCR_EVENT2 / CC_EVENT -----------------------------------------------------------------

def _decode_agile_events(root: Node, space: Space, off: int, spec_id: SpecId, fmt: str,
                         events: list[Node]) -> None:
    buf = space.data
    cc = fmt == "cc"
    padding = _padding_start(buf)
    while off < len(buf):
        left = len(buf) - off
        if cc and left >= 4 and buf[off:off + 4] == b"\xff\xff\xff\xff":
            rest = buf[off:]
            pad = len(rest) - len(rest.lstrip(b"\xff"))
            msg = f"log ends at 0x{off:x} (MrIndex 0xFFFFFFFF); {pad} bytes of 0xFF padding follow"
            if pad != len(rest):
                root.warn(off + pad, msg + f", then {len(rest) - pad} other bytes")
            else:
                root.note(off, msg)
            return
        if off >= padding:
            root.note(off, f"log ends at 0x{off:x}; {left} bytes of 0x{buf[off]:02X} padding follow")
            return
        if not _take_event(root, off, len(buf), len(events)):
            return
        nxt = _agile_event(root, space, off, spec_id, cc, events)
        if nxt is None:
            return
        off = nxt


def _agile_event(root: Node, space: Space, off: int, spec_id: SpecId, cc: bool,
                 events: list[Node]) -> int | None:
    buf = space.data
    index = len(events)
    if len(buf) - off < 12:
        root.problem(off, f"{len(buf) - off} trailing bytes, too short for a TCG_PCR_EVENT2 header (12 bytes)")
        return None
    hdr = S.TCG_PCR_EVENT2_HDR.parse(buf, off)
    ev = Node("event", "", space, off, 12)
    events.append(ev)
    if cc:
        ev.add("MrIndex", hdr.PCRIndex, off, 4, mr_name(hdr.PCRIndex))
        reg = mr_name(hdr.PCRIndex)
    else:
        ev.add("PCRIndex", hdr.PCRIndex, off, 4)
        reg = f"PCR{hdr.PCRIndex}"
        if hdr.PCRIndex > 23 and hdr.EventType != S.EV_NO_ACTION:
            ev.warn(off, f"PCRIndex {hdr.PCRIndex} is beyond the 24 PC Client PCRs")
    ev.add("EventType", hdr.EventType, off + 4, 4, _type_display(hdr.EventType))
    ev.add("Count", hdr.count, off + 8, 4)
    ev.title = f"#{index} {reg} {_type_display(hdr.EventType)}"
    p = off + 12
    if hdr.count > MAX_DIGESTS:
        ev.problem(off + 8, f"digest count {hdr.count} exceeds {MAX_DIGESTS}; the log cannot be followed")
        ev.size = len(buf) - off
        return None
    if hdr.count != len(spec_id.algorithms):
        ev.warn(off + 8, f"digest count {hdr.count}, the Spec ID lists {len(spec_id.algorithms)} algorithms")
    for i in range(hdr.count):
        if p + 2 > len(buf):
            ev.problem(p, f"digest {i} of {hdr.count} runs past the end of the log")
            ev.size = len(buf) - off
            return None
        alg = buf[p] | buf[p + 1] << 8
        size = spec_id.algorithms.get(alg)
        if size is None:
            known = S.ALGORITHMS.get(alg)
            if known is None:
                ev.problem(p, f"digest {i}: algorithm 0x{alg:04x} is not in the Spec ID and its size "
                              f"is unknown; the log cannot be followed")
                ev.size = len(buf) - off
                return None
            size = known[1]
            ev.warn(p, f"digest {i}: algorithm {known[0]} is not in the Spec ID; assumed {size} bytes")
        if p + 2 + size > len(buf):
            ev.problem(p, f"digest {i} ({S.alg_name(alg)}, {size} bytes) runs past the end of the log")
            ev.size = len(buf) - off
            return None
        name = f"Digest.{S.alg_name(alg)}"
        if ev.field(name) is not None:
            ev.warn(p, f"second {S.alg_name(alg)} digest in one event")
            name = f"{name}[{i}]"
        ev.add(name, bytes(buf[p + 2:p + 2 + size]), p + 2, size, display=None)
        p += 2 + size
    if p + 4 > len(buf):
        ev.problem(p, "EventSize runs past the end of the log")
        ev.size = len(buf) - off
        return None
    size = int.from_bytes(buf[p:p + 4], "little")
    ev.add("EventSize", size, p, 4)
    data_off = p + 4
    if size > len(buf) - data_off:
        ev.problem(p, f"EventSize {size} runs past the end of the log ({len(buf) - data_off} bytes left); "
                      f"log truncated here")
        ev.size = len(buf) - off
        return None
    ev.add("Event", bytes(buf[data_off:data_off + size]), data_off, size)
    ev.size = data_off + size - off
    ev.append(decode_event_data(hdr.EventType, hdr.PCRIndex, space, data_off, size,
                                log_format="cc" if cc else "tcg"))
    return data_off + size


# -- helpers for other modules -----------------------------------------------------------------

def event_digests(ev: Node) -> list[tuple[str, bytes]]:
    """(algorithm name, digest) pairs of an event node, in log order."""
    out = []
    for f in ev.fields:
        if f.name.startswith("Digest."):
            out.append((f.name[len("Digest."):].split("[")[0], f.value))
    return out


def log_events(log: Node) -> list[Node]:
    return [c for c in log.children if c.kind == "event"]
