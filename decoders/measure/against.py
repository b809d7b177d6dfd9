"""A real TCG event log against a predicted one: where they part first, why, and the final PCRs.

The log's events of every PCR the prediction covers (for OVMF: PCR0 and PCR7) are paired, in log
order, with the predicted events of that PCR. Two events agree when their event types match and
their digests match in every bank both carry (TCG PC Client PFP 1.05 §10.2.2: TCG_PCR_EVENT2 holds
one digest per active bank). Where they do not, the event data (PFP §10.4: the logged structure,
which is not always what was hashed) say why, in words:

- EV_S_CRTM_VERSION: the two version strings (edk2 SecurityPkg/Tcg/Tcg2Pei/Tcg2Pei.c
  MeasureCRTMVersion logs PcdFirmwareVersionString, UTF-16);
- EV_EFI_PLATFORM_FIRMWARE_BLOB(2): UEFI_PLATFORM_FIRMWARE_BLOB {BlobBase, BlobLength} (PFP
  §10.2.5): another range means another image or another PEIFV/DXEFV layout, the same range with
  another digest other firmware bytes (Tcg2Pei.c MeasureFvImage hashes the volume in memory);
- EV_EFI_VARIABLE_*: UEFI_VARIABLE_DATA (PFP §10.2.6); for the signature databases the two
  EFI_SIGNATURE_LISTs are decoded (decoders/efisig.py) and their entries compared by certificate
  or hash, so the message names the certificate one side lacks;
- other events: their decoded data side by side.

An event one side has and the other lacks is found by looking one event ahead on either side. A
log may lack a bank the prediction has; what the log has is still compared. The final values are
the prediction's extend (decoders/measure/model.py) against the log's replay
(decoders/eventlog/replay.py), per PCR and bank.

`so_far=True` compares a log that is still being written (a live stop before ReadyToBoot, when
edk2's Tcg2Dxe.c OnReadyToBoot has not yet measured the separators): each PCR's prediction is cut
to as many events as the log holds for it, so an event not yet logged is not a divergence.
"""
from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass, field

from decoders import budget
from decoders.eventlog import structs as S
from decoders.eventlog.decode import event_digests, log_events
from decoders.eventlog.events import decode_event_data
from decoders.eventlog.replay import Replay, replay
from decoders.measure.model import DIGEST_SIZES, Prediction, PredictedEvent, extend
from decoders.model import Node, Space

# Divergences described in words and as nodes; a hostile log can differ at each of its 20,000
# events, and after the first few the rest say nothing new. Past it they are only counted.
MAX_EXPLAINED = 64
# Entries named in one signature-database message (a dbx differs by hundreds of hashes).
MAX_NAMED = 4
# The variables whose data are EFI_SIGNATURE_LISTs (UEFI 2.10 §32.6.1; edk2 uefivar's table).
_SIGNATURE_DATABASES = ("PK", "KEK", "db", "dbx", "dbt", "dbr")
_VARIABLE_EVENTS = (S.EV_EFI_VARIABLE_DRIVER_CONFIG, S.EV_EFI_VARIABLE_BOOT, S.EV_EFI_VARIABLE_BOOT2,
                    S.EV_EFI_VARIABLE_AUTHORITY)
_BLOB_EVENTS = (S.EV_EFI_PLATFORM_FIRMWARE_BLOB, S.EV_S_CRTM_CONTENTS, S.EV_POST_CODE)
_STRING_EVENTS = (S.EV_EFI_ACTION, S.EV_ACTION, S.EV_IPL, S.EV_EFI_HCRTM_EVENT)


# -- the two sides ------------------------------------------------------------------------------

@dataclass
class LogEvent:
    """One extending event of the real log."""
    index: int                     # its position in the log (0 is the Spec ID header)
    node: Node
    pcr: int
    event_type: int
    digests: dict[str, bytes]
    data: bytes


@dataclass
class Divergence:
    """One place where log and prediction part."""
    pcr: int
    kind: str                      # "differs", "unexpected" (log only), "missing" (prediction only), "data"
    log_index: int                 # the log event; for "missing", the next event of that PCR, or EventCount
    reason: str
    logged: LogEvent | None = None
    predicted: PredictedEvent | None = None
    predicted_number: int | None = None    # its position among the predicted events of the PCR

    @property
    def changes_pcr(self) -> bool:
        return self.kind != "data"


@dataclass
class RegisterCheck:
    """One PCR in one bank: the predicted value, the replayed one."""
    index: int
    bank: str
    predicted: bytes | None        # None: the prediction has no event for it in this bank
    replayed: bytes | None         # None: the log has no such bank
    predicted_events: int = 0
    logged_events: int = 0

    @property
    def register(self) -> str:
        return f"PCR{self.index}"

    @property
    def equal(self) -> bool:
        return self.predicted is not None and self.predicted == self.replayed


def _log_banks(log_root: Node, events: list[LogEvent]) -> list[str]:
    algs = log_root.get("Algorithms")
    if isinstance(algs, dict) and algs:
        return [str(a) for a in algs]
    seen: list[str] = []
    for ev in events:
        for bank in ev.digests:
            if bank not in seen:
                seen.append(bank)
    return seen


def _extending_events(log_root: Node) -> tuple[list[LogEvent], list[int]]:
    """The log's events that extend a PCR, and the indices of truncated events (no Event bytes)."""
    out: list[LogEvent] = []
    truncated: list[int] = []
    for index, ev in enumerate(log_events(log_root)):
        etype, pcr = ev.get("EventType"), ev.get("PCRIndex")
        if index == 0 or etype is None or pcr is None or etype == S.EV_NO_ACTION:
            continue        # the Spec ID header; EV_NO_ACTION is never extended (PFP §10.4.1)
        if ev.field("Event") is None:
            truncated.append(index)
            continue
        digests: dict[str, bytes] = {}
        for bank, value in event_digests(ev):
            digests.setdefault(bank, value)
        out.append(LogEvent(index, ev, pcr, etype, digests, ev.get("Event")))
    return out, truncated


def _cut_so_far(predicted: list[PredictedEvent], logged: dict[int, list[LogEvent]]) -> list[PredictedEvent]:
    """Each PCR's predicted events cut to as many as the log holds for that PCR."""
    left = {pcr: len(evs) for pcr, evs in logged.items()}
    out = []
    for ev in predicted:
        if left.get(ev.index, 0) > 0:
            out.append(ev)
            left[ev.index] -= 1
    return out


# -- pairing ------------------------------------------------------------------------------------

def _agree(p: PredictedEvent, e: LogEvent, banks: list[str]) -> bool:
    if p.event_type != e.event_type:
        return False
    common = [b for b in banks if b in p.digests and b in e.digests]
    if not common:
        return p.data == e.data          # nothing to hash-compare: the data must say it
    return all(p.digests[b] == e.digests[b] for b in common)


def _pair(pcr: int, predicted: list[PredictedEvent], logged: list[LogEvent], banks: list[str],
          end_index: int) -> list[Divergence]:
    """Walk both sequences; an event missing on one side is recognised when the other side's next
    event agrees (one event of lookahead), otherwise the two events at the same place differ."""
    out: list[Divergence] = []
    i = j = 0
    while i < len(logged) or j < len(predicted):
        e = logged[i] if i < len(logged) else None
        p = predicted[j] if j < len(predicted) else None
        if e is None:
            out.append(Divergence(pcr, "missing", end_index, _missing(p), predicted=p, predicted_number=j))
            j += 1
            continue
        if p is None:
            out.append(Divergence(pcr, "unexpected", e.index, _unexpected(e), logged=e))
            i += 1
            continue
        if _agree(p, e, banks):
            if p.data != e.data:
                out.append(Divergence(pcr, "data", e.index, _data_only(p, e), e, p, j))
            i, j = i + 1, j + 1
            continue
        if j + 1 < len(predicted) and _agree(predicted[j + 1], e, banks):
            out.append(Divergence(pcr, "missing", e.index, _missing(p), predicted=p, predicted_number=j))
            j += 1
            continue
        if i + 1 < len(logged) and _agree(p, logged[i + 1], banks):
            out.append(Divergence(pcr, "unexpected", e.index, _unexpected(e), logged=e))
            i += 1
            continue
        out.append(Divergence(pcr, "differs", e.index, _why(p, e, banks), e, p, j))
        i, j = i + 1, j + 1
    return out


# -- words --------------------------------------------------------------------------------------

def _type(t: int) -> str:
    return S.event_type_name(t) or f"event type 0x{t:x}"


def _decoded(etype: int, pcr: int, data: bytes) -> Node:
    """The event data decoded as the log decoder decodes it (events.py), from bytes."""
    with budget.scope():
        return decode_event_data(etype, pcr, Space("event-data", data), 0, len(data))


def _quoted(text: str) -> str:
    return f'"{text}"'


def _version(data: bytes) -> str:
    """An EV_S_CRTM_VERSION string (UTF-16LE, NUL-terminated in edk2), quoted, or its hex."""
    if len(data) % 2 == 0:
        try:
            return _quoted(data.decode("utf-16-le").split("\0", 1)[0])
        except UnicodeDecodeError:
            pass
    return data.hex() or "(empty)"


def _blob(etype: int, data: bytes) -> tuple[str, int, int] | None:
    """(description, BlobBase, BlobLength) of UEFI_PLATFORM_FIRMWARE_BLOB(2) (PFP §10.2.5), or None."""
    if etype == S.EV_EFI_PLATFORM_FIRMWARE_BLOB2:
        if not data or 1 + data[0] + 16 > len(data):
            return None
        n = data[0]
        base, length = struct.unpack_from("<QQ", data, 1 + n)
        return data[1:1 + n].rstrip(b"\0").decode("ascii", "replace"), base, length
    if etype in _BLOB_EVENTS and len(data) == 16:
        base, length = struct.unpack("<QQ", data)
        return "", base, length
    return None


def _range(blob: tuple[str, int, int]) -> str:
    desc, base, length = blob
    return f"{desc + ' ' if desc else ''}0x{base:x}+0x{length:x}"


def _variable(node: Node) -> tuple[str, object, bytes] | None:
    if node.kind != "uefi-variable-data" or node.get("UnicodeName") is None:
        return None
    return node.get("UnicodeName"), node.get("VariableName"), node.get("VariableData", b"")


def _summary(etype: int, pcr: int, data: bytes, node: Node | None = None) -> str:
    """A few words for an event's data."""
    if etype == S.EV_S_CRTM_VERSION:
        return f"version {_version(data)}"
    blob = _blob(etype, data)
    if blob is not None:
        return f"blob {_range(blob)}"
    node = node if node is not None else _decoded(etype, pcr, data)
    var = _variable(node)
    if var is not None:
        name, _vendor, value = var
        if name == "SecureBoot" and len(value) == 1:
            return f"SecureBoot = {value[0]}"
        return f"{name} ({len(value)} bytes)"
    if etype == S.EV_SEPARATOR and len(data) == 4:
        return f"separator 0x{struct.unpack('<I', data)[0]:08x}"
    text = node.get("String")
    if isinstance(text, str):
        return _quoted(text if len(text) <= 60 else text[:57] + "...")
    if not data:
        return "no data"
    return f"{len(data)} bytes {data[:16].hex()}{'…' if len(data) > 16 else ''}"


def _log_text(e: LogEvent) -> str:
    data = e.node.children[0] if e.node.children else None
    return f"#{e.index} PCR{e.pcr} {_type(e.event_type)} ({_summary(e.event_type, e.pcr, e.data, data)})"


def _pred_text(p: PredictedEvent) -> str:
    what = p.description or p.source
    return f"PCR{p.index} {_type(p.event_type)} ({_summary(p.event_type, p.index, p.data)}{'; ' + what if what else ''})"


def _missing(p: PredictedEvent) -> str:
    return f"predicted {_pred_text(p)} is not in the log"


def _unexpected(e: LogEvent) -> str:
    return f"the log has {_log_text(e)}, which the prediction did not expect"


def _digest_text(p: PredictedEvent, e: LogEvent, banks: list[str]) -> str:
    # one bank's digests, sha256 first: the bank verifiers most often check
    differing = [b for b in banks if b in p.digests and b in e.digests and p.digests[b] != e.digests[b]]
    order = ("sha256", "sha384", "sha512", "sha1")
    bank = min(differing, key=lambda b: order.index(b) if b in order else len(order), default=None)
    if bank is None:
        return ""
    return f" ({bank} {e.digests[bank].hex()[:16]}… in the log, {p.digests[bank].hex()[:16]}… predicted)"


def _data_only(p: PredictedEvent, e: LogEvent) -> str:
    return (f"#{e.index} PCR{e.pcr} {_type(e.event_type)}: the digests agree but the logged data differ "
            f"({_summary(e.event_type, e.pcr, e.data)} in the log, "
            f"{_summary(p.event_type, p.index, p.data)} predicted); the PCR is not affected")


def _why(p: PredictedEvent, e: LogEvent, banks: list[str]) -> str:
    """Why two events at the same place differ, from their types, data and digests."""
    head = f"#{e.index} PCR{e.pcr} {_type(e.event_type)}: "
    if p.event_type != e.event_type:
        return f"the log has {_log_text(e)} where the prediction has {_pred_text(p)}"
    digest = _digest_text(p, e, banks)
    etype = e.event_type
    if etype == S.EV_S_CRTM_VERSION:
        if p.data != e.data:
            return (head + f"CRTM version {_version(e.data)} in the log, {_version(p.data)} predicted: the "
                           f"firmware that booted has another version string (PcdFirmwareVersionString)")
        return head + f"same version {_version(e.data)}, another digest{digest}"
    lb, pb = _blob(etype, e.data), _blob(etype, p.data)
    if lb is not None and pb is not None:
        if lb[1:] != pb[1:]:
            what = ("at another base" if lb[1] != pb[1] and lb[2] == pb[2] else
                    "of another size" if lb[1] == pb[1] else "at another base and of another size")
            return (head + f"firmware blob {_range(lb)} in the log, {_range(pb)} predicted ({what}): the "
                           f"image booted is not this one, or its PEIFV/DXEFV is at another base or of "
                           f"another size")
        if p.description.startswith("PEIFV") and "(RAM)" not in p.description:
            # Tcg2Pei hashes PEIFV in RAM, where the PEIMs dispatched before it (which run in place)
            # have written their globals: decoders/measure/tpm.py PEIFV_WRITES.
            return (head + f"firmware blob {_range(lb)} (PEIFV): same range, another digest{digest}: the "
                           f"prediction hashes PEIFV as built, the boot hashed it in RAM after the PEIMs that "
                           f"ran before Tcg2Pei wrote their globals into it; give a memory dump of that boot "
                           f"(--against DUMP) to predict from its RAM copy")
        return (head + f"firmware blob {_range(lb)}: same range, another digest{digest}: the bytes hashed "
                       f"differ from the predicted ones (another build of the same layout was booted, or "
                       f"the firmware wrote into the volume before measuring it)")
    if etype in _VARIABLE_EVENTS:
        return head + _variable_why(p, e, digest)
    if p.data == e.data:
        return head + f"same data ({_summary(etype, e.pcr, e.data)}), another digest{digest}"
    return (head + f"{_summary(etype, e.pcr, e.data)} in the log, {_summary(etype, p.index, p.data)} "
                   f"predicted{digest}")


def _variable_why(p: PredictedEvent, e: LogEvent, digest: str) -> str:
    lnode = e.node.children[0] if e.node.children else _decoded(e.event_type, e.pcr, e.data)
    pnode = _decoded(p.event_type, p.index, p.data)
    lv, pv = _variable(lnode), _variable(pnode)
    if lv is None or pv is None:
        side = "the log's" if lv is None else "the predicted"
        return f"{side} UEFI_VARIABLE_DATA does not decode; {len(e.data)} bytes in the log, {len(p.data)} predicted{digest}"
    (lname, lvendor, ldata), (pname, pvendor, pdata) = lv, pv
    if (lname, lvendor) != (pname, pvendor):
        return f"the log measures {lname} ({lvendor}) where the prediction has {pname} ({pvendor})"
    if ldata == pdata:
        if e.data == p.data:
            return f"{lname}: same data, another digest{digest}: the firmware hashed other bytes than it logged"
        return f"{lname}: same value, but the UEFI_VARIABLE_DATA headers differ{digest}"
    if lname == "SecureBoot" and len(ldata) == 1 and len(pdata) == 1:
        words = {0: "disabled", 1: "enabled"}
        hint = ""
        if ldata[0] == 1 and pdata[0] == 0:
            hint = ": Secure Boot was on in the boot, and these VARS would leave it off (no PK enrolled?)"
        elif ldata[0] == 0 and pdata[0] == 1:
            hint = ": Secure Boot was off in the boot, and these VARS would turn it on (a PK is enrolled)"
        return (f"SecureBoot is {ldata[0]} ({words.get(ldata[0], 'invalid')}) in the log, {pdata[0]} "
                f"({words.get(pdata[0], 'invalid')}) predicted from the VARS{hint}")
    if lname in _SIGNATURE_DATABASES:
        return _database_why(lname, lnode, pnode)
    if not ldata or not pdata:
        shown = _value_text(lname, ldata or pdata)
        if not pdata:
            return (f"{lname} is {shown} in the log, absent from the prediction (measured with "
                    f"VariableDataLength 0: the VARS or the image do not make it)")
        return (f"{lname} is absent in the log (measured with VariableDataLength 0), {shown} predicted "
                f"from the VARS")
    at = next((k for k, (a, b) in enumerate(zip(ldata, pdata)) if a != b), min(len(ldata), len(pdata)))
    return (f"{lname} holds {len(ldata)} byte{'s' if len(ldata) != 1 else ''} in the log, {len(pdata)} "
            f"predicted from the VARS; they differ from byte {at}")


def _value_text(name: str, value: bytes) -> str:
    if name == "SecureBoot" and len(value) == 1:
        return f"{value[0]} ({ {0: 'disabled', 1: 'enabled'}.get(value[0], 'invalid') })"
    return f"{len(value)} byte{'s' if len(value) != 1 else ''} ({value[:16].hex()}{'…' if len(value) > 16 else ''})"


def _entries(node: Node) -> list[tuple[tuple, str, bool, object]]:
    """(identity, label, is a certificate, SignatureOwner) of every EFI_SIGNATURE_DATA."""
    out = []
    for lst in node.children:
        if lst.kind != "signature-list":
            continue
        for sig in lst.children:
            if sig.kind != "signature":
                continue
            owner = sig.get("SignatureOwner")
            if sig.get("SHA256") is not None:
                subject = sig.title[len("X.509 "):] if sig.title.startswith("X.509 ") else sig.title
                out.append((("x509", sig.get("SHA256")), subject, True, owner))
            else:
                value = sig.get("Hash", sig.get("ToBeSignedHash", sig.get("SignatureData", b"")))
                value = value if isinstance(value, bytes) else b""
                out.append((("hash", lst.get("SignatureType"), value), f"hash {value[:8].hex()}…", False, owner))
    return out


def _kinds(entries) -> tuple[int, int]:
    certs = sum(1 for e in entries if e[2])
    return certs, len(entries) - certs


def _count(entries, nouns: bool = True) -> str:
    """"2 certificates", "1 certificate and 3 hashes"; without nouns just the numbers."""
    certs, hashes = _kinds(entries)
    parts = []
    if certs or not hashes:
        parts.append(f"{certs} certificate{'s' if certs != 1 else ''}" if nouns else f"{certs}")
    if hashes:
        parts.append(f"{hashes} hash{'es' if hashes != 1 else ''}" if nouns else f"{hashes}")
    return " and ".join(parts)


def _named(labels: list[str]) -> str:
    shown = ", ".join(labels[:MAX_NAMED])
    return shown + (f" and {len(labels) - MAX_NAMED} more" if len(labels) > MAX_NAMED else "")


def _database_why(name: str, lnode: Node, pnode: Node) -> str:
    lent, pent = _entries(lnode), _entries(pnode)
    lkeys, pkeys = Counter(e[0] for e in lent), Counter(e[0] for e in pent)
    labels = {e[0]: e[1] for e in lent + pent}
    log_empty = not lent and not (lnode.get("VariableData") or b"")
    vars_empty = not pent and not (pnode.get("VariableData") or b"")
    # "2 certificates in the log, 1 in the VARS": the nouns once when both sides hold the same kinds
    same = [bool(n) for n in _kinds(lent)] == [bool(n) for n in _kinds(pent)]
    text = (f"{name} holds {'nothing' if log_empty else _count(lent)} in the log, "
            f"{'none' if vars_empty else _count(pent, nouns=not same)} in the VARS")
    if log_empty:
        text += f" ({name} was not enrolled in the boot)"
    elif vars_empty:
        text += f" ({name} is not enrolled there)"
    only_log = [labels[k] for k in (lkeys - pkeys).elements()]
    only_vars = [labels[k] for k in (pkeys - lkeys).elements()]
    if only_log or only_vars:
        parts = []
        if only_log:
            parts.append(f"{_named(only_log)} missing from the VARS")
        if only_vars:
            parts.append(f"{_named(only_vars)} only in the VARS")
        return text + ": " + "; ".join(parts)
    lown = {e[0]: e[3] for e in lent}
    owners = [f"{e[1]} owned by {lown.get(e[0])} in the log, by {e[3]} in the VARS"
              for e in pent if lown.get(e[0]) != e[3]]
    if owners:
        return text + ": same entries, other SignatureOwner: " + _named(owners)
    return text + ": the same entries, in other EFI_SIGNATURE_LISTs or another order"


# -- the comparison -----------------------------------------------------------------------------

def _covered(prediction: Prediction) -> list[int]:
    return sorted({ev.index for ev in prediction.events})


def compare_registers(prediction: Prediction, rp: Replay, *, so_far: bool = False,
                      banks=None, pcrs=None) -> list[RegisterCheck]:
    """Predicted against replayed value of every PCR the prediction covers (or `pcrs`), per bank
    (`banks`, default the prediction's). With `so_far`, each PCR's prediction stops after as many
    events as the replay extended it with (a log still being written)."""
    banks = list(banks) if banks is not None else list(prediction.banks)
    pcrs = list(pcrs) if pcrs is not None else _covered(prediction)
    out = []
    for bank in banks:
        have = bank in rp.banks or any(b == bank for b, _i in rp.contributions)
        for pcr in pcrs:
            evs = [ev for ev in prediction.events if ev.index == pcr and bank in ev.digests]
            logged = len(rp.events_for(bank, pcr))
            if so_far:
                evs = evs[:logged]
            predicted = None
            # model.extend hashes the banks of DIGEST_SIZES only (sm3_256 has no hashlib name everywhere)
            if bank in DIGEST_SIZES and (evs or so_far):
                init = prediction.initial.get(pcr, bytes(DIGEST_SIZES.get(bank, 32)))
                predicted = extend(evs, (bank,), prediction.initial)[bank].get(pcr, init)
            replayed = None
            if have:
                replayed = rp.value(bank, pcr)
                if replayed is None:
                    replayed = rp.initial.get((bank, pcr), bytes(DIGEST_SIZES.get(bank, 32)))
            out.append(RegisterCheck(pcr, bank, predicted, replayed, len(evs), logged))
    return out


@dataclass
class Against:
    """What explain_against found, before it becomes a Node."""
    divergences: list[Divergence] = field(default_factory=list)
    registers: list[RegisterCheck] = field(default_factory=list)
    banks: list[str] = field(default_factory=list)        # compared: in the prediction and in the log
    missing_banks: list[str] = field(default_factory=list)
    truncated: list[int] = field(default_factory=list)
    event_count: int = 0

    @property
    def first(self) -> Divergence | None:
        changing = [d for d in self.divergences if d.changes_pcr]
        return min(changing, key=lambda d: (d.log_index, d.kind != "missing")) if changing else None


def against(prediction: Prediction, log_root: Node, *, banks=None, so_far: bool = False) -> Against:
    """The comparison as data (explain_against makes the Node)."""
    wanted = list(banks) if banks is not None else list(prediction.banks)
    events, truncated = _extending_events(log_root)
    log_banks = _log_banks(log_root, events)
    result = Against(banks=[b for b in wanted if b in log_banks],
                     missing_banks=[b for b in wanted if b not in log_banks], truncated=truncated,
                     event_count=len(log_events(log_root)))
    pcrs = _covered(prediction)
    by_pcr: dict[int, list[LogEvent]] = {pcr: [e for e in events if e.pcr == pcr] for pcr in pcrs}
    predicted = prediction.events
    if so_far:
        predicted = _cut_so_far(predicted, by_pcr)
    for pcr in pcrs:
        mine = [p for p in predicted if p.index == pcr]
        result.divergences += _pair(pcr, mine, by_pcr[pcr], result.banks, result.event_count)
    if 0 in pcrs:
        result.divergences += _locality(prediction, log_root, by_pcr[0], result.event_count)
    result.divergences.sort(key=lambda d: (d.log_index, d.pcr))
    rp = replay(log_root)
    result.registers = compare_registers(Prediction(predicted, prediction.banks, prediction.initial), rp,
                                         banks=wanted, pcrs=pcrs)
    return result


def _locality(prediction: Prediction, log_root: Node, pcr0: list[LogEvent], end: int) -> list[Divergence]:
    """PCR0's reset value: 0…0L after a StartupLocality event of locality L (PFP §10.4.5.3), zero
    without one; the prediction says it with `initial[0]`."""
    logged, where = 0, None
    for index, ev in enumerate(log_events(log_root)):
        data = ev.children[0] if ev.children else None
        if index and ev.get("EventType") == S.EV_NO_ACTION and ev.get("PCRIndex") == 0 \
                and data is not None and data.kind == "startup-locality":
            logged, where = data.get("StartupLocality") or 0, index
            break
    init = prediction.initial.get(0)
    predicted = init[-1] if init else 0
    if logged == predicted:
        return []
    index = where if where is not None else (pcr0[0].index if pcr0 else end)
    said = f" (StartupLocality event #{where})" if where is not None else " (no StartupLocality event)"
    return [Divergence(0, "differs", index, f"PCR0 starts at locality {logged} in the log{said}, at locality "
                                            f"{predicted} in the prediction: every PCR0 value differs")]


def explain_against(prediction: Prediction, log_root: Node, *, banks=None, so_far: bool = False) -> Node:
    """The `measure-against` node: the first event where the log and the prediction part and why
    (field FirstDivergence, the log event's index, or None when they agree), every divergence as a
    child and a warning, and predicted against replayed value per PCR and bank."""
    node = Node("measure-against", "event log against the prediction", log_root.space, 0, log_root.size)
    fmt = log_root.get("Format")
    if log_root.kind != "event-log" or fmt != "tcg":
        node.problem(None, f"not a TCG crypto-agile event log (format {fmt or log_root.kind}): nothing to "
                           "compare with a TPM prediction")
        node.add("FirstDivergence", None, display="none (not compared)")
        return node
    if any(ev.cc for ev in prediction.events):
        node.problem(None, "the prediction is of CC (RTMR) events; a TPM log is compared with a TPM prediction")
        node.add("FirstDivergence", None, display="none (not compared)")
        return node
    res = against(prediction, log_root, banks=banks, so_far=so_far)
    first = res.first
    pcrs = _covered(prediction)
    node.add("PCRs", pcrs, display=", ".join(f"PCR{i}" for i in pcrs) or "none")
    node.add("Banks", res.banks, display=", ".join(res.banks) or "none in common")
    node.add("FirstDivergence", first.log_index if first else None,
             display=(f"#{first.log_index}" if first.log_index < res.event_count else
                      f"end of the log ({res.event_count} events)") if first else "none")
    node.add("Reason", first.reason if first else None, display=first.reason if first else "they agree")
    node.add("SoFar", so_far, display="the prediction cut to the events logged so far" if so_far else "whole")
    for bank in res.missing_banks:
        node.warn(None, f"the log has no {bank} bank (it has {', '.join(_log_banks(log_root, []) or ['none'])}): "
                        f"the predicted {bank} values cannot be checked")
    if not res.banks:
        node.note(None, "no bank in common: events compared by type and data only")
    for index in res.truncated:
        ev = log_events(log_root)[index]
        node.note(ev.offset, f"event #{index} is truncated (its data run past the end): not compared")
    explained = 0
    for d in res.divergences:
        if explained >= MAX_EXPLAINED:
            break
        explained += 1
        node.append(_divergence_node(d, log_root))
        where = d.logged.node.offset if d.logged is not None else None
        (node.warn if d.changes_pcr else node.note)(where, d.reason)
    if len(res.divergences) > explained:
        node.warn(None, f"{len(res.divergences) - explained} more divergences not listed (first {MAX_EXPLAINED} shown)")
    for r in res.registers:
        node.append(_register_node(r))
    differing = [r for r in res.registers if r.replayed is not None and not r.equal]
    changing = sum(1 for d in res.divergences if d.changes_pcr)
    if first is None:
        node.title = (f"event log agrees with the prediction on {', '.join(f'PCR{i}' for i in pcrs)}"
                      + (f" ({', '.join(res.banks)})" if res.banks else ""))
    else:
        node.title = (f"event log parts from the prediction at "
                      f"{node.field('FirstDivergence').display}: {changing} divergence(s), "
                      f"{len(differing)} register value(s) differ")
    return node


def _divergence_node(d: Divergence, log_root: Node) -> Node:
    e = d.logged
    n = Node("against-divergence", d.reason, log_root.space if e else None,
             e.node.offset if e else 0, e.node.size if e else 0)
    n.add("LogIndex", d.log_index)
    n.add("PCRIndex", d.pcr)
    n.add("Kind", d.kind, display={"differs": "the events differ", "unexpected": "only in the log",
                                   "missing": "only in the prediction",
                                   "data": "logged data differ, digests agree"}[d.kind])
    n.add("Logged", _log_text(e) if e else None, display=_log_text(e) if e else "-")
    p = d.predicted
    n.add("Predicted", _pred_text(p) if p else None, display=_pred_text(p) if p else "-")
    if p is not None and p.space is not None:
        n.add("PredictedSource", p.source, display=f"{p.source} ({p.space.name} 0x{p.offset:x}+0x{p.size:x})")
    n.add("Reason", d.reason)
    return n


def _register_node(r: RegisterCheck) -> Node:
    pred = r.predicted.hex() if r.predicted is not None else "-"
    real = r.replayed.hex() if r.replayed is not None else "(bank not in the log)"
    verdict = "equal" if r.equal else "not checked" if r.replayed is None or r.predicted is None else "differs"
    n = Node("against-register", f"{r.register} ({r.bank}): {verdict}")
    n.add("Register", r.register)
    n.add("Bank", r.bank)
    n.add("Predicted", pred, display=f"{pred} ({r.predicted_events} events)")
    n.add("Replayed", real, display=f"{real} ({r.logged_events} events)" if r.replayed is not None else real)
    n.add("Equal", r.equal, display=verdict)
    if verdict == "differs":
        n.warn(None, f"{r.register} ({r.bank}) predicted {pred}, replayed {real}")
    return n
