"""Replay an event log into PCR / RTMR values, check event digests, compare with expected values.

TPM: each PCR starts at zero (PCR0 at 0…0L after a StartupLocality L event, PFP §10.4.5.3, and
0…04 before an H-CRTM event, TPM 2.0 Library Part 1 §34.3), then PCR = H(PCR || digest) per bank
for every event except EV_NO_ACTION (PFP §10.4.1: "not extended").
CC (TDX): RTMR[MrIndex-1] starts as 48 zero bytes; RTMR = SHA384(RTMR || digest)
(edk2 MdePkg/Library/TdxLib/Rtmr.c TDG.MR.RTMR.EXTEND; OvmfPkg/Tcg/TdTcg2Dxe/TdTcg2Dxe.c).
"""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field

from decoders import budget
from decoders.eventlog import structs as S
from decoders.eventlog.decode import event_digests, log_events, mr_name
from decoders.model import Node, Problem, Severity, Space

# hashlib names of the banks we can compute (sm3 only when OpenSSL provides it)
_HASHLIB = {"sha1": "sha1", "sha256": "sha256", "sha384": "sha384", "sha512": "sha512", "sm3_256": "sm3"}
_SIZES = {name: size for (name, size) in S.ALGORITHMS.values()}
NUM_PCRS = 24   # PC Client PCRs 0-23
NUM_RTMRS = 4


_HASHERS: dict[str, object] = {}


def _hasher(bank: str):
    """digest(data) for a bank, or None when no implementation is available (cached)."""
    if bank in _HASHERS:
        return _HASHERS[bank]
    name = _HASHLIB.get(bank)
    fn = None
    if name is not None:
        ctor = getattr(hashlib, name, None)
        try:
            if ctor is None:  # sm3: only through OpenSSL, when it has it
                hashlib.new(name)
                ctor = functools.partial(hashlib.new, name)
            fn = (lambda data, c=ctor: c(data).digest())
        except ValueError:
            fn = None
    _HASHERS[bank] = fn
    return fn


@dataclass
class Contribution:
    """One extension: which event, its digest, and the register value after it."""
    event_index: int
    event_offset: int
    event_type: int
    digest: bytes
    value_after: bytes


@dataclass
class Replay:
    kind: str  # "tcg", "tcg1.2" or "cc"
    banks: dict[str, dict[int, bytes]] = field(default_factory=dict)
    contributions: dict[tuple[str, int], list[Contribution]] = field(default_factory=dict)
    initial: dict[tuple[str, int], bytes] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def register_name(self, index: int) -> str:
        return f"RTMR{index}" if self.kind == "cc" else f"PCR{index}"

    def value(self, bank: str, index: int) -> bytes | None:
        return self.banks.get(bank, {}).get(index)

    def rtmrs(self) -> list[bytes]:
        """RTMR0-3 of a CC log (48 zero bytes for a register no event extended)."""
        bank = self.banks.get("sha384", {})
        return [bank.get(i, bytes(48)) for i in range(NUM_RTMRS)]

    def events_for(self, bank: str, index: int) -> list[Contribution]:
        """The events that built a register, in order."""
        return self.contributions.get((bank, index), [])

    def to_node(self, space: Space | None = None, sizes: dict[int, int] | None = None) -> Node:
        """The replay table: per bank, each register's final value as a field, and as a child node
        listing the events that built it, in order. With the log's `space` (and each event's size by
        offset), every event row points at the event's bytes, so a view can show them."""
        root = Node("replay", f"replay ({'RTMR' if self.kind == 'cc' else 'PCR'})")
        sizes = sizes or {}
        for bank in sorted(self.banks):
            b = Node("replay-bank", bank)
            for idx in sorted(self.banks[bank]):
                v = self.banks[bank][idx]
                events = self.events_for(bank, idx)
                name = self.register_name(idx)
                b.add(name, v, display=f"{v.hex()} ({len(events)} events)")
                reg = b.append(Node("replay-register", f"{name} ({bank}) = {v.hex()[:16]}…, {len(events)} events"))
                reg.add("Value", v, display=v.hex())
                initial = self.initial.get((bank, idx))
                if initial is not None:
                    reg.add("Initial", initial, display=initial.hex())
                for c in events:
                    ev = reg.append(Node("replay-extend", f"event #{c.event_index} {S.event_type_name(c.event_type) or hex(c.event_type)}",
                                         space, c.event_offset, sizes.get(c.event_offset, 0)))
                    ev.add("EventIndex", c.event_index)
                    ev.add("EventType", c.event_type, display=S.event_type_name(c.event_type))
                    ev.add("Digest", c.digest, display=c.digest.hex())
                    ev.add("ValueAfter", c.value_after, display=c.value_after.hex())
            root.append(b)
        root.problems.extend(self.problems)
        return root


# tpm2-tools 5.4 (lib/tpm2_eventlog.c foreach_digest2) extends EV_NO_ACTION events other than the
# Spec ID header like any other event and knows neither StartupLocality nor H-CRTM; its `pcrs:`
# therefore differ from the TPM's PCR0 on logs with such events (verified on gdc-host.bin,
# confidential-gke-debug-251000_eventlog.bin and binary_measurements_hcrtm.bin). Later tpm2-tools
# skip EV_NO_ACTION and handle locality. quirks="tpm2-tools-5.4" reproduces 5.4's values.
QUIRKS_TPM2_TOOLS_54 = "tpm2-tools-5.4"


def replay(log_node: Node, *, quirks: str | None = None) -> Replay:
    """Replay every bank of a decoded log (decode_event_log's root).

    `quirks=QUIRKS_TPM2_TOOLS_54` replays as tpm2_eventlog 5.4 does (for comparing its YAML).
    """
    if quirks not in (None, QUIRKS_TPM2_TOOLS_54):
        raise ValueError(f"unknown quirks {quirks!r}")
    compat54 = quirks == QUIRKS_TPM2_TOOLS_54
    kind = log_node.get("Format", "tcg")
    rp = Replay(kind)
    locality: int | None = None
    extended_pcr0 = False
    for index, ev in enumerate(log_events(log_node)):
        etype = ev.get("EventType")
        if etype is None:
            continue
        reg = ev.get("MrIndex") if kind == "cc" else ev.get("PCRIndex")
        if etype == S.EV_NO_ACTION and not (compat54 and index > 0 and kind != "tcg1.2"):
            data = ev.children[0] if ev.children else None
            if data is not None and data.kind == "startup-locality" and reg == 0 and kind != "cc":
                if extended_pcr0:
                    rp.problems.append(Problem(ev.offset, Severity.WARNING,
                                               "StartupLocality event after PCR0 was extended; ignored"))
                else:
                    locality = data.get("StartupLocality")
            continue
        if index == 0 and kind != "tcg1.2":
            continue  # the Spec ID header (always EV_NO_ACTION in a valid log)
        if "Event" not in {f.name for f in ev.fields}:
            continue  # truncated event: its digests may be there but the log stops here
        if kind == "tcg1.2":
            digests = [("sha1", ev.get("Digest"))]
        else:
            digests = event_digests(ev)
        if kind == "cc":
            if reg == 0 or reg > NUM_RTMRS:
                rp.problems.append(Problem(ev.offset, Severity.ERROR,
                                           f"event #{index}: MrIndex {reg} ({mr_name(reg)}) cannot be extended "
                                           f"from a log; only 1-4 (RTMR0-3)"))
                continue
            target = reg - 1
        else:
            if reg >= NUM_PCRS:
                rp.problems.append(Problem(ev.offset, Severity.ERROR,
                                           f"event #{index}: PCRIndex {reg} is not a PC Client PCR; not replayed"))
                continue
            target = reg
        for bank, digest in digests:
            h = _hasher(bank)
            if h is None:
                rp.problems.append(Problem(ev.offset, Severity.INFO,
                                           f"event #{index}: no hash implementation for bank {bank}"))
                continue
            regs = rp.banks.setdefault(bank, {})
            if target not in regs:
                size = len(digest) if kind == "cc" else _SIZES.get(bank, len(digest))
                init = bytearray(size)
                if kind != "cc" and target == 0 and not compat54:
                    if etype == S.EV_EFI_HCRTM_EVENT:
                        init[-1] = 4      # TPM 2.0 Library Part 1 §34.3: H-CRTM sets locality 4
                    elif locality:
                        init[-1] = locality
                if kind != "cc" and 17 <= target <= 22 and not compat54:
                    init = bytearray(b"\xff" * size)  # DRTM PCRs reset to all ones (PFP §2.3.4)
                regs[target] = bytes(init)
                rp.initial[(bank, target)] = bytes(init)
            new = h(regs[target] + digest)
            regs[target] = new
            rp.contributions.setdefault((bank, target), []).append(
                Contribution(index, ev.offset, etype, digest, new))
            if target == 0:
                extended_pcr0 = True
    return rp


# -- digest checks -------------------------------------------------------------------------------

def _hashed_bytes(ev: Node) -> tuple[list[tuple[str, bytes]], bool] | None:
    """The candidate byte ranges that were hashed for this event, and whether a mismatch is a
    real finding (strict) or only means "covers other bytes"; None when not checkable.

    SecurityPkg/Tcg/Tcg2Dxe/Tcg2Dxe.c (same rules in OvmfPkg/Tcg/TdTcg2Dxe/TdTcg2Dxe.c):
      * MeasureVariable: EV_EFI_VARIABLE_DRIVER_CONFIG hashes the whole UEFI_VARIABLE_DATA,
        EV_EFI_VARIABLE_BOOT/BOOT2 only the VariableData. Other vendors' firmware hashes the whole
        UEFI_VARIABLE_DATA for boot variables too (seen in the go-attestation, tpm2-tools and
        tpm2-tss fixtures), so both are accepted and the check says which one matched;
      * MeasureSeparatorEvent: the 4-byte separator value;
      * Tcg2MeasureAction (EV_EFI_ACTION): the string without its NUL, exactly the event data;
    SecurityPkg/Library/DxeImageVerificationLib MeasureVariable, EV_EFI_VARIABLE_AUTHORITY: the whole
    UEFI_VARIABLE_DATA; shim logs its own authority events whose digest covers neither (its
    event size is off by its name's NUL), so those are reported as not checkable, not as mismatches.
    Tcg2Pei.c MeasureCRTMVersion: the version string as logged. DxeTpm2MeasureBootLib
    Tcg2MeasureGptTable: the UEFI_GPT_DATA as logged.
    Not checkable: image loads (Authenticode hash of the image), firmware blobs and handoff tables
    (hash of memory), EV_IPL (grub/shim hash other bytes than they log).
    """
    etype = ev.get("EventType")
    raw = ev.get("Event")
    if raw is None:
        return None
    if etype in (S.EV_SEPARATOR, S.EV_EFI_ACTION, S.EV_ACTION, S.EV_EFI_VARIABLE_DRIVER_CONFIG,
                 S.EV_S_CRTM_VERSION, S.EV_EFI_GPT_EVENT):
        return [("event data", raw)], True
    data = ev.children[0] if ev.children else None
    vdata = data.get("VariableData") if data is not None and data.kind == "uefi-variable-data" else None
    if etype in (S.EV_EFI_VARIABLE_BOOT, S.EV_EFI_VARIABLE_BOOT2):
        return ([("VariableData", vdata)] if vdata is not None else []) + [("UEFI_VARIABLE_DATA", raw)], True
    if etype == S.EV_EFI_VARIABLE_AUTHORITY:
        return [("UEFI_VARIABLE_DATA", raw)] + ([("VariableData", vdata)] if vdata is not None else []), False
    return None


@dataclass
class DigestCheck:
    event_index: int
    event_offset: int
    bank: str
    matches: bool | None   # None: covers none of the candidate ranges, but that is not a finding
    logged: bytes
    computed: bytes        # the hash of the first candidate range
    covers: str | None = None  # which bytes matched ("event data", "VariableData", ...)


def check_digests(log_node: Node) -> list[DigestCheck]:
    """Recompute the digests of events whose data is what was hashed; a mismatch becomes a
    warning problem on the event node (the log is kept; only the payload is suspect)."""
    kind = log_node.get("Format", "tcg")
    out: list[DigestCheck] = []
    b = budget.current()
    unlisted = 0
    for index, ev in enumerate(log_events(log_node)):
        if index == 0 and kind != "tcg1.2":
            continue
        cand = _hashed_bytes(ev)
        if cand is None:
            continue
        ranges, strict = cand
        digests = [("sha1", ev.get("Digest"))] if kind == "tcg1.2" else event_digests(ev)
        for bank, logged in digests:
            h = _hasher(bank)
            if h is None or logged is None:
                continue
            hashes = [(label, h(b)) for label, b in ranges]
            covers = next((label for label, d in hashes if d == logged), None)
            ok: bool | None = covers is not None
            if not ok and not strict:
                ok = None
            out.append(DigestCheck(index, ev.offset, bank, ok, logged, hashes[0][1], covers))
            f = ev.field("Digest" if kind == "tcg1.2" else f"Digest.{bank}")
            where = f.offset if f else ev.offset
            name = S.event_type_name(ev.get("EventType"))
            if ok is not True and not b.take_problem():
                unlisted += 1     # a hostile log can mismatch at every event: the decode's problem budget
            elif ok is False:
                ev.warn(where, f"{bank} digest does not match the event data ({name}: computed "
                               f"{hashes[0][1].hex()})")
            elif ok is None:
                ev.note(where, f"{bank} digest covers neither the {' nor the '.join(l for l, _ in ranges)} "
                               f"({name}); not checkable from the log")
    if unlisted:
        log_node.warn(None, f"{unlisted:,} more digest findings not listed; {b.describe('problems')}")
    return out


# -- comparison with expected values --------------------------------------------------------------

@dataclass
class RegisterComparison:
    bank: str
    index: int
    name: str
    expected: bytes
    replayed: bytes | None
    matches: bool
    last_event_index: int | None = None      # the last event that extended it
    last_event_offset: int | None = None
    parted_after_event: int | None = None    # expected equals the value after this event
    diagnosis: str | None = None             # a one-event edit of the log that reaches `expected`
    diverges_at_event: int | None = None     # first event of this register that the edit explains


@dataclass
class Comparison:
    registers: list[RegisterComparison] = field(default_factory=list)

    @property
    def matches(self) -> bool:
        return all(r.matches for r in self.registers)

    @property
    def mismatched(self) -> list[RegisterComparison]:
        return [r for r in self.registers if not r.matches]

    @property
    def first_event(self) -> int | None:
        """The earliest event that can be named as where replay and expectation part.

        With only final expected values this is, per mismatching register, the event after the
        last matching intermediate value when there is one, else the last event that extended it;
        the smallest of those over all mismatching registers.
        """
        cands = []
        for r in self.mismatched:
            if r.diverges_at_event is not None:
                cands.append(r.diverges_at_event)
            elif r.parted_after_event is not None:
                cands.append(r.parted_after_event + 1)
            elif r.last_event_index is not None:
                cands.append(r.last_event_index)
        return min(cands) if cands else None

    def summary(self) -> str:
        lines = []
        for r in self.registers:
            if r.matches:
                lines.append(f"{r.name}: match")
            else:
                where = (f"; last extended by event #{r.last_event_index}" if r.last_event_index is not None
                         else "; no event extended it")
                if r.parted_after_event is not None:
                    where += f"; expected equals the value after event #{r.parted_after_event}"
                if r.diagnosis:
                    where += f"; {r.diagnosis}"
                lines.append(f"{r.name}: MISMATCH expected {r.expected.hex()} replayed "
                             f"{r.replayed.hex() if r.replayed else '-'}{where}")
        return "\n".join(lines)

    def to_node(self) -> Node:
        n = Node("comparison", "match" if self.matches else f"{len(self.mismatched)} register(s) differ")
        for r in self.registers:
            n.add(r.name, r.matches, display="match" if r.matches else
                  f"expected {r.expected.hex()}, replayed {r.replayed.hex() if r.replayed else '-'}")
            if not r.matches:
                n.problem(r.last_event_offset, f"{r.name} differs from the expected value"
                          + (f"; last extended by event #{r.last_event_index}"
                             if r.last_event_index is not None else ""))
        return n


def _normalise(rp: Replay, expected: dict) -> list[tuple[str, int, bytes]]:
    out = []
    for key, val in expected.items():
        if isinstance(val, dict):
            for idx, v in val.items():
                out.append((key, int(idx), bytes.fromhex(v) if isinstance(v, str) else bytes(v)))
        else:
            k = str(key).upper()
            v = bytes.fromhex(val) if isinstance(val, str) else bytes(val)
            if k.startswith("RTMR"):
                out.append(("sha384", int(k[4:]), v))
            elif k.startswith("PCR"):
                out.append((_bank_for(len(v)), int(k[3:]), v))
            else:
                raise ValueError(f"expected-value key {key!r}: use RTMRn, PCRn or a bank name")
    return out


def _bank_for(size: int) -> str:
    return {20: "sha1", 32: "sha256", 48: "sha384", 64: "sha512"}.get(size, "sha256")


def compare(rp: Replay, expected: dict) -> Comparison:
    """Compare a replay with expected values.

    `expected` is {"RTMR0": bytes, ...} (e.g. quote_rtmrs()), {"PCR7": bytes}, or
    {bank: {index: bytes}} ({"sha256": {0: ..., 7: ...}}). A register no event extended replays as
    its reset value (zeros). For each mismatching register we report the last event that
    extended it and, when the expected value equals one of the replay's intermediate values, the
    event after which the two parted (the log has extra events from there on).
    """
    cmp = Comparison()
    for bank, idx, exp in _normalise(rp, expected):
        got = rp.value(bank, idx)
        if got is None:
            size = 48 if rp.kind == "cc" else _SIZES.get(bank, len(exp))
            got = rp.initial.get((bank, idx), bytes(size))
        contribs = rp.events_for(bank, idx)
        name = f"RTMR{idx}" if rp.kind == "cc" else f"{bank}:PCR{idx}"
        rc = RegisterComparison(bank, idx, name, exp, got, got == exp)
        if not rc.matches:
            if contribs:
                rc.last_event_index = contribs[-1].event_index
                rc.last_event_offset = contribs[-1].event_offset
            init = rp.initial.get((bank, idx))
            if init is not None and init == exp:
                rc.parted_after_event = -1
            for c in contribs[:-1]:
                if c.value_after == exp:
                    rc.parted_after_event = c.event_index
            if rc.parted_after_event is None and init is not None:
                rc.diagnosis, rc.diverges_at_event = _diagnose(rp, bank, idx, init, exp)
        cmp.registers.append(rc)
    return cmp


# Work bound for _diagnose: leave-one-out and insert-one replays cost O(n^2 * m) hashes for n events
# in the register and m distinct digests in the bank (a few thousand for a real log).
MAX_DIAGNOSIS_HASHES = 500_000


def _diagnose(rp: Replay, bank: str, idx: int, init: bytes, exp: bytes) -> tuple[str | None, int | None]:
    """Find one extra or one missing extension that would explain the mismatch.

    Only final expected values are known, so the first divergent event cannot be found in general;
    but a log with one event too many (e.g. a duplicated separator) or one missing (a separator
    logged under another register) is explained by a single edit, which we search for.
    """
    h = _hasher(bank)
    contribs = rp.events_for(bank, idx)
    digests = [c.digest for c in contribs]
    pool: dict[bytes, int] = {}
    for c in (c for lst in rp.contributions.values() for c in lst):
        if len(c.digest) == len(init):
            pool.setdefault(c.digest, c.event_index)
    n = len(digests)
    if h is None or (n + 1) * n * (len(pool) + 1) > MAX_DIAGNOSIS_HASHES:
        return None, None
    prefix = [init]
    for d in digests:
        prefix.append(h(prefix[-1] + d))

    def finish(value: bytes, rest: list[bytes]) -> bytes:
        for d in rest:
            value = h(value + d)
        return value

    for k in range(n):          # one event too many
        if finish(prefix[k], digests[k + 1:]) == exp:
            c = contribs[k]
            return (f"the expected value is reached without event #{c.event_index} "
                    f"({S.event_type_name(c.event_type)}): an extra extension"), c.event_index
    for k in range(n + 1):      # one event missing
        for d, src in pool.items():
            if finish(h(prefix[k] + d), digests[k:]) == exp:
                after = f"after event #{contribs[k - 1].event_index}" if k else "before the first event"
                nxt = contribs[k].event_index if k < n else None
                return (f"the expected value is reached when the digest of event #{src} is extended "
                        f"{after}: an extension is missing from this register"), nxt
    return None, None
