"""The YAML that `tpm2_eventlog` (tpm2-tools 5.4, default --eventlog-version=1) prints.

Layout from tpm2-tools lib/tpm2_eventlog_yaml.c (yaml_eventhdr, yaml_specid*, yaml_event2hdr,
yaml_digest2, yaml_event2data, yaml_eventlog_pcrs) as built by Debian without libefivar, checked
key for key against the *.tpm2_eventlog-5.4.yaml fixtures.

Deliberate differences (documented, tested):
  * TPM 1.2 SHA-1 logs: tpm2_eventlog prints their events as one mapping with repeated keys and
    no EventNum (not a YAML list, so a YAML parser keeps only the last event). We print the same
    keys as a proper list item with an EventNum.
  * CC event logs (Spec ID PCRIndex 1), which tpm2_eventlog rejects: we print them as if the
    header had PCRIndex 0, which is exactly tpm2_eventlog's output for the DERIVED-hdr-pcr0
    fixtures except for that one header value; pcrs: are keyed by MrIndex (1-3 = RTMR0-2).
  * A log we could only decode in part is printed up to where decoding stopped (tpm2_eventlog
    prints nothing of the pcrs then, or crashes as on the option-ROM log).
  * `device_paths="text"` prints DevicePath as UEFI text (libefivar style) instead of hex, like a
    tpm2-tools built with libefivar; the default "hex" matches Debian's 5.4.
"""
from __future__ import annotations

from decoders.devicepath import device_path_text
from decoders.eventlog import structs as S
from decoders.eventlog.decode import log_events
from decoders.eventlog.replay import Replay

# tpm2-tools prints at most 1024 bytes of an event as hex (EVENT_BUF_MAX in tpm2_eventlog_yaml.c)
EVENT_HEX_MAX = 1024
_BANK_ORDER = ("sha1", "sha256", "sha384", "sha512", "sm3_256")


def _type_name(t: int) -> str:
    # tpm2-tools 5.4's eventtype_to_string knows neither EV_EFI_HCRTM_EVENT nor the SPDM types
    if t in (S.EV_EFI_HCRTM_EVENT, S.EV_EFI_SPDM_FIRMWARE_BLOB, S.EV_EFI_SPDM_FIRMWARE_CONFIG,
             S.EV_EFI_SPDM_DEVICE_POLICY, S.EV_EFI_SPDM_DEVICE_AUTHORITY):
        return "Unknown event type"
    return S.event_type_name(t) or "Unknown event type"


def _cstr(raw: bytes) -> str:
    """printf("%.*s"): up to the first NUL."""
    end = raw.find(b"\0")
    return (raw if end < 0 else raw[:end]).decode("utf-8", errors="replace")


# tpm2-tools 5.4 yaml_ipl escapes these bytes (but not '"') and splits the text at newlines
_IPL_ESCAPES = {0: "\\0", 7: "\\a", 8: "\\b", 9: "\\t", 11: "\\v", 12: "\\f", 13: "\\r",
                27: "\\e", 92: "\\\\", 39: "\\'"}


def _ipl_lines(raw: bytes) -> list[str]:
    """tpm2-tools 5.4 EV_IPL: one quoted line per newline-separated part, control bytes escaped."""
    out = []
    for part in raw.split(b"\n"):
        text = part.decode("utf-8", errors="replace")
        text = "".join(_IPL_ESCAPES.get(ord(c), c) if ord(c) < 128 else c for c in text)
        out.append(f'"{text}"')
    return out


def _event_lines(ev, etype: int, raw: bytes, device_paths: str) -> list[str]:
    if not raw:
        return []
    data = ev.children[0] if ev.children else None
    if etype in (S.EV_EFI_VARIABLE_DRIVER_CONFIG, S.EV_EFI_VARIABLE_BOOT, S.EV_EFI_VARIABLE_BOOT2,
                 S.EV_EFI_VARIABLE_AUTHORITY) and data is not None and data.field("UnicodeName") is not None:
        out = ["  Event:",
               f"    VariableName: {data.get('VariableName')}",
               f"    UnicodeNameLength: {data.get('UnicodeNameLength')}",
               f"    VariableDataLength: {data.get('VariableDataLength')}",
               f"    UnicodeName: {data.get('UnicodeName')}"]
        if data.get("VariableDataLength"):
            out.append(f'    VariableData: "{data.get("VariableData").hex()}"')
        return out
    if etype in (S.EV_S_CRTM_CONTENTS, S.EV_EFI_PLATFORM_FIRMWARE_BLOB) or (
            etype == S.EV_POST_CODE and len(raw) == 16):
        blob = (raw + bytes(16))[:16]
        base, length = int.from_bytes(blob[:8], "little"), int.from_bytes(blob[8:], "little")
        return ["  Event:", f"    BlobBase: 0x{base:x}", f"    BlobLength: 0x{length:x}"]
    if etype in (S.EV_POST_CODE, S.EV_EFI_ACTION):
        return ["  Event: |-", f"    {_cstr(raw)}"]
    if etype == S.EV_EFI_PLATFORM_FIRMWARE_BLOB2 and len(raw) >= 1 + raw[0] + 16:
        n = raw[0]
        blob = raw[1 + n:1 + n + 16]
        return ["  Event:", f"    BlobDescriptionSize: {n}", f'    BlobDescription: "{raw[1:n].hex()}"',  # 5.4 prints n-1 bytes
                f"    BlobBase: 0x{int.from_bytes(blob[:8], 'little'):x}",
                f"    BlobLength: 0x{int.from_bytes(blob[8:], 'little'):x}"]
    if etype == S.EV_IPL:
        return ["  Event:", "    String: |-"] + ["      " + line for line in _ipl_lines(raw)]
    if etype in (S.EV_EFI_BOOT_SERVICES_APPLICATION, S.EV_EFI_BOOT_SERVICES_DRIVER,
                 S.EV_EFI_RUNTIME_SERVICES_DRIVER) and len(raw) >= 32:
        vals = [int.from_bytes(raw[i:i + 8], "little") for i in range(0, 32, 8)]
        dp = raw[32:]
        if device_paths == "text":
            text, _problems = device_path_text(dp[:vals[3]], style="efivar")
        else:
            text = dp.hex()
        return ["  Event:", f"    ImageLocationInMemory: 0x{vals[0]:x}", f"    ImageLengthInMemory: {vals[1]}",
                f"    ImageLinkTimeAddress: 0x{vals[2]:x}", f"    LengthOfDevicePath: {vals[3]}",
                f"    DevicePath: '{text}'"]
    return [f'  Event: "{raw[:EVENT_HEX_MAX].hex()}"']


def _specid_lines(ev) -> list[str]:
    sid = ev.children[0] if ev.children else None
    out = ["- EventNum: 0", "  PCRIndex: 0", "  EventType: EV_NO_ACTION",
           f'  Digest: "{ev.get("Digest").hex()}"', f"  EventSize: {ev.get('EventSize')}"]
    if sid is None or sid.field("signature") is None:
        return out
    out += ["  SpecID:",
            f"  - Signature: {sid.field('signature').display}",
            f"    platformClass: {sid.get('platformClass')}",
            f"    specVersionMinor: {sid.get('specVersionMinor')}",
            f"    specVersionMajor: {sid.get('specVersionMajor')}",
            f"    specErrata: {sid.get('specErrata')}",
            f"    uintnSize: {sid.get('uintnSize')}",
            f"    numberOfAlgorithms: {sid.get('numberOfAlgorithms')}",
            "    Algorithms:"]
    i = 0
    for f in sid.fields:
        if f.name.startswith("digestSizes["):
            out += [f"    - Algorithm[{i}]:", f"      algorithmId: {_alg_text(f.value['algorithmId'])}",
                    f"      digestSize: {f.value['digestSize']}"]
            i += 1
    if sid.field("vendorInfoSize") is not None:
        out.append(f"    vendorInfoSize: {sid.get('vendorInfoSize')}")
        if sid.get("vendorInfoSize"):
            out.append(f'    vendorInfo: "{(sid.get("vendorInfo") or b"").hex()}"')
    return out


def _alg_text(alg_id: int) -> str:
    return S.ALGORITHMS[alg_id][0] if alg_id in S.ALGORITHMS else "(null)"


def to_tpm2_eventlog_yaml(log_node, replay: Replay, *, device_paths: str = "hex") -> str:
    """tpm2_eventlog's YAML for a decoded log and its replay (see the module doc for differences)."""
    fmt = log_node.get("Format", "tcg")
    lines = ["---", "version: 1", "events:"]
    used: dict[str, set[int]] = {}
    for index, ev in enumerate(log_events(log_node)):
        etype = ev.get("EventType")
        raw = ev.get("Event")
        if fmt != "tcg1.2" and index == 0:
            lines += _specid_lines(ev)
            continue
        reg = ev.get("MrIndex") if fmt == "cc" else ev.get("PCRIndex")
        lines += [f"- EventNum: {index}", f"  PCRIndex: {reg}", f"  EventType: {_type_name(etype)}"]
        if fmt == "tcg1.2":
            digests = [("sha1", ev.get("Digest"))]
            if etype != S.EV_NO_ACTION:
                used.setdefault("sha1", set()).add(reg)
        else:
            digests = [(f.name[len("Digest."):].split("[")[0], f.value) for f in ev.fields
                       if f.name.startswith("Digest.")]
            for bank, _d in digests:
                # tpm2-tools marks a PCR used for every digest it walks, EV_NO_ACTION included
                if reg is not None and reg < 24:
                    used.setdefault(bank, set()).add(reg)
        lines.append(f"  DigestCount: {len(digests) if fmt == 'tcg1.2' else ev.get('Count')}")
        lines.append("  Digests:")
        for bank, d in digests:
            lines += [f"  - AlgorithmId: {bank if bank in _BANK_ORDER else '(null)'}", f'    Digest: "{d.hex()}"']
        if ev.get("EventSize") is None:
            break
        lines.append(f"  EventSize: {ev.get('EventSize')}")
        if raw is None:
            break
        lines += _event_lines(ev, etype, raw, device_paths)
    lines.append("pcrs:")
    for bank in _BANK_ORDER:
        regs = sorted(used.get(bank, ()))
        if not regs:
            continue
        lines.append(f"  {bank}:")
        for r in regs:
            if fmt == "cc":
                value = replay.value(bank, r - 1) if r >= 1 else None
                size = 48
            else:
                value = replay.value(bank, r)
                size = dict(S.ALGORITHMS.values()).get(bank, 32)
            if value is None:
                value = replay.initial.get((bank, r), bytes(size)) if fmt != "cc" else bytes(size)
            lines.append(f"    {r:<2d} : 0x{value.hex()}")
    return "\n".join(lines) + "\n"

