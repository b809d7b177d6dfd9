"""TD HOB checks and measurement (Intel TDX Virtual Firmware Design Guide, "TD HOB"; td-shim spec, TD HOB).

lint_td_hob applies the rules TDVF's ValidateHobList applies to the HOB list the VMM hands it
(edk2 OvmfPkg/IntelTdx/TdxHelperLib/SecTdxHelper.c; before 2023 the same function lived in
OvmfPkg/Library/PlatformInitLib/IntelTdx.c), plus the two the td-shim spec states (PHIT first,
END last). td_hob_digest is what TdxHelperMeasureTdHob extends into RTMR0.
"""
from __future__ import annotations

import hashlib

from decoders import budget

from decoders.errors import DecodeError
from decoders.hob import structs as s
from decoders.hob.decode import (CPU, END_OF_HOB_LIST, FV, FV2, FV3, GUID_EXTENSION, HANDOFF, MAX_HOB_LIST_BYTES,
                                 MAX_HOBS, RESOURCE_DESCRIPTOR, as_memory, attribute_names, hob_type_name, walk)
from decoders.model import Node, Problem, Severity

A = s.RESOURCE_ATTRIBUTE_BITS
# SecTdxHelper.c ValidateHobList: every defined attribute except ENCRYPTED, SPECIAL_PURPOSE and
# HOT_PLUGGABLE (edk2-stable202211 .. 202405).
ALLOWED_ATTRIBUTES_202211 = 0
for _name in ("PRESENT", "INITIALIZED", "TESTED", "READ_PROTECTED", "WRITE_PROTECTED", "EXECUTION_PROTECTED",
              "PERSISTENT", "SINGLE_BIT_ECC", "MULTIPLE_BIT_ECC", "ECC_RESERVED_1", "ECC_RESERVED_2",
              "UNCACHEABLE", "WRITE_COMBINEABLE", "WRITE_THROUGH_CACHEABLE", "WRITE_BACK_CACHEABLE",
              "16_BIT_IO", "32_BIT_IO", "64_BIT_IO", "UNCACHED_EXPORTED", "READ_PROTECTABLE",
              "WRITE_PROTECTABLE", "EXECUTION_PROTECTABLE", "PERSISTABLE", "READ_ONLY_PROTECTED",
              "READ_ONLY_PROTECTABLE", "MORE_RELIABLE"):
    ALLOWED_ATTRIBUTES_202211 |= A[_name]
# edk2 PR #5699 (merged 2024-05, "Update VMM Hob list check to support new resource attributes")
# added the PI 1.8 ENCRYPTED and SPECIAL_PURPOSE bits. HOT_PLUGGABLE stays rejected.
ALLOWED_ATTRIBUTES_202408 = ALLOWED_ATTRIBUTES_202211 | A["ENCRYPTED"] | A["SPECIAL_PURPOSE"]
PROFILES = {"edk2-stable202211": ALLOWED_ATTRIBUTES_202211, "edk2-stable202408": ALLOWED_ATTRIBUTES_202408}

# ValidateHobList's EFI_BOOT_MODE_LIST: every mode of PiBootMode.h.
VALID_BOOT_MODES = frozenset(s.EFI_BOOT_MODE)
MAX_RESOURCE_TYPE = 7  # EFI_RESOURCE_TYPE_LIST ends with BZ3937_EFI_RESOURCE_MEMORY_UNACCEPTED
# HobType -> (struct, exact length required?) for the types ValidateHobList accepts.
ACCEPTED = {
    HANDOFF: (s.EFI_HOB_HANDOFF_INFO_TABLE, True),
    RESOURCE_DESCRIPTOR: (s.EFI_HOB_RESOURCE_DESCRIPTOR, True),
    GUID_EXTENSION: (s.EFI_HOB_GUID_TYPE, False),  # variable length: only the minimum is checked
    FV: (s.EFI_HOB_FIRMWARE_VOLUME, True),
    FV2: (s.EFI_HOB_FIRMWARE_VOLUME2, True),
    FV3: (s.EFI_HOB_FIRMWARE_VOLUME3, True),
    CPU: (s.EFI_HOB_CPU, True),
}
WHERE = "(SecTdxHelper.c ValidateHobList)"


def lint_td_hob(hob_list: Node, *, profile: str = "edk2-stable202408", td_hob_size: int | None = None
                ) -> list[Problem]:
    """Check a decoded HOB list against TDVF's TD HOB rules; each violation is added to the HOB node
    it concerns (the list node for list-wide ones) and returned. `profile` picks the attribute set
    of an edk2 release (PROFILES); `td_hob_size` is the TD HOB region size (PcdOvmfSecGhcbSize),
    which ValidateHobList compares with the running total of HobLength."""
    allowed = PROFILES[profile]
    found: list[Problem] = []
    b = budget.current()
    dropped = [0]

    def flag(node: Node, offset: int | None, message: str, severity: Severity = Severity.ERROR) -> None:
        # One per violating HOB: a hostile list of 16,384 bad HOBs stops at the decode's problem
        # budget (decoders/budget.py); the rest are counted on the list node.
        if b.take_problem():
            found.append(node.problem(offset, message, severity))
        else:
            dropped[0] += 1

    try:
        _lint(hob_list, allowed, profile, td_hob_size, flag)
    finally:
        if dropped[0]:
            found.append(hob_list.problem(None, f"{dropped[0]:,} more TD HOB findings not listed; "
                                                f"{b.describe('problems')}"))
    return found


def _lint(hob_list: Node, allowed: int, profile: str, td_hob_size: int | None, flag) -> None:

    hobs = [h for h in hob_list.children if h.kind == "hob"]
    if not hobs:
        flag(hob_list, hob_list.offset, "empty TD HOB: a PHIT must come first (td-shim spec, TD HOB)")
        return
    if hobs[0].get("HobType") != HANDOFF:
        flag(hobs[0], hobs[0].offset, "the first HOB of a TD HOB must be the PHIT (td-shim spec, TD HOB; "
                                      "PiHob.h: it must be the first one in the HOB list)")
    if hobs[-1].get("HobType") != END_OF_HOB_LIST:
        flag(hob_list, hobs[-1].offset, "the TD HOB does not end with END_OF_HOB_LIST: TDVF's walk would run "
                                        "past it")
    total = 0
    for hob in hobs:
        htype, hlen, off = hob.get("HobType"), hob.get("HobLength"), hob.offset
        if htype == END_OF_HOB_LIST:
            break  # END_OF_HOB_LIST (Hob) ends ValidateHobList's loop; END itself is not checked
        name = hob_type_name(htype) or f"0x{htype:04x}"
        if hob.get("Reserved") != 0:
            flag(hob, off + 4, f"{name}: header Reserved is 0x{hob.get('Reserved'):x}, must be 0 {WHERE}")
        if hlen == 0:
            flag(hob, off + 2, f"{name}: HobLength is 0 {WHERE}")
            break
        total += hlen
        if td_hob_size is not None and total > td_hob_size:
            flag(hob, off + 2, f"HOBs up to here take {total} bytes, more than the {td_hob_size}-byte TD HOB "
                               f"region {WHERE}")
        if htype not in ACCEPTED:
            flag(hob, off, f"HOB type {name} is not allowed in a TD HOB: ValidateHobList accepts only "
                           "HANDOFF, RESOURCE_DESCRIPTOR, GUID_EXTENSION, FV, FV2, FV3 and CPU")
            continue
        struct, exact = ACCEPTED[htype]
        size = struct.size
        if (hlen != size) if exact else (hlen < size):
            want = f"exactly {size}" if exact else f"at least {size}"
            flag(hob, off + 2, f"{name}: HobLength {hlen}, must be {want} {WHERE}")
            continue
        if htype == HANDOFF:
            _handoff(hob, flag)
        elif htype == RESOURCE_DESCRIPTOR:
            _resource(hob, flag, allowed, profile)
        elif htype == CPU:
            # The second "Reserved" field is EFI_HOB_CPU.Reserved[6] (the first is the header's).
            rfield = [f for f in hob.fields if f.name == "Reserved"]
            if len(rfield) > 1 and any(rfield[1].value):
                flag(hob, rfield[1].offset, f"CPU: Reserved bytes {rfield[1].value.hex()} must be 0 {WHERE}")


def _handoff(hob: Node, flag) -> None:
    mode = hob.field("BootMode")
    if mode is not None and mode.value not in VALID_BOOT_MODES:
        flag(hob, mode.offset, f"PHIT BootMode 0x{mode.value:x} is not a PiBootMode.h value {WHERE}")
    top = hob.field("EfiFreeMemoryTop")
    if top is not None and top.value % 4096:
        flag(hob, top.offset, f"PHIT EfiFreeMemoryTop 0x{top.value:x} is not 4 KiB aligned {WHERE}")


def _resource(hob: Node, flag, allowed: int, profile: str) -> None:
    rtype, attrs = hob.field("ResourceType"), hob.field("ResourceAttribute")
    if rtype is not None and rtype.value > MAX_RESOURCE_TYPE:
        flag(hob, rtype.offset, f"ResourceType 0x{rtype.value:x} is above MEMORY_UNACCEPTED (7) {WHERE}")
    if attrs is None:
        return
    bad = attrs.value & ~allowed
    if bad:
        flag(hob, attrs.offset, f"ResourceAttribute 0x{attrs.value:x} has bits TDVF rejects ({profile}): "
                                f"{'|'.join(attribute_names(bad))} {WHERE}")
    elif attrs.value & ~ALLOWED_ATTRIBUTES_202211:
        newer = "|".join(attribute_names(attrs.value & ~ALLOWED_ATTRIBUTES_202211))
        flag(hob, attrs.offset, f"ResourceAttribute {newer} is rejected by TDVF before edk2-stable202408 "
                                "(edk2 PR #5699)", Severity.INFO)


def td_hob_digest(source, address: int = 0, *, limit: int = MAX_HOB_LIST_BYTES) -> bytes:
    """SHA-384 of the TD HOB from its start up to, not including, the END HOB, as
    TdxHelperMeasureTdHob hashes it before extending RTMR0 (SecTdxHelper.c). `source` is raw bytes
    (address = offset), a Space or a Memory (address = physical address). Raises DecodeError when
    the list has no END HOB: TDVF's walk would not stop, so there is no defined digest."""
    memory, base, _ = as_memory(source, address)
    chunks, ended, problems = walk(memory, address, limit, MAX_HOBS)
    if not ended:
        if chunks and chunks[-1][2]:
            where, why = chunks[-1][0], chunks[-1][2]
        elif problems:
            where, why = problems[-1]
        else:
            where, why = (chunks[-1][0] if chunks else address), "no END HOB"
        raise DecodeError(where - base, f"TD HOB without END_OF_HOB_LIST, no digest: {why}")
    h = hashlib.sha384()
    for _, raw, _ in chunks[:-1]:
        h.update(raw)
    return h.digest()
