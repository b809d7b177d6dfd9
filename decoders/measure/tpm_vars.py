"""What the variable store decides about PCR7: the Secure Boot policy variables Tcg2Dxe measures.

Rules (edk2 2025.02, `SecurityPkg/Tcg/Tcg2Dxe/Tcg2Dxe.c`):

- MeasureSecureBootPolicy runs once the variable write protocol is there (long before
  ReadyToBoot). MeasureAllSecureVariables measures, in this order, SecureBoot, PK, KEK (vendor
  gEfiGlobalVariableGuid), db, dbx (gEfiImageSecurityDatabaseGuid) as
  EV_EFI_VARIABLE_DRIVER_CONFIG in PCR7 **whether or not they exist** (ReadAndMeasureVariable:
  a missing variable is measured with VariableDataLength 0), then dbt only when it exists. dbr
  (EFI_IMAGE_SECURITY_DATABASE3) is not measured. "UEFI Debug Mode" (EV_EFI_ACTION in PCR7) comes
  first only with PcdFirmwareDebuggerInitialized, SecurityPkg.dec default FALSE, which OVMF does
  not set. Then EV_SEPARATOR (4 zero bytes) in PCR7.
- MeasureVariable: the digest of a DRIVER_CONFIG event is over the whole UEFI_VARIABLE_DATA
  {VariableName GUID, UnicodeNameLength u64 (characters, no NUL), VariableDataLength u64,
  UnicodeName, VariableData} (`MdePkg/Include/IndustryStandard/UefiTcgPlatform.h`).
- SecureBoot is a volatile variable that AuthVariableLibInitialize
  (`SecurityPkg/Library/AuthVariableLib/AuthVariableLib.c`) creates at every boot: 1 when PK
  exists (user mode) and SecureBootEnable (gEfiSecureBootEnableDisableGuid) is 1 or absent
  (absent in user mode means enable), else 0. A build without SECURE_BOOT_ENABLE links
  AuthVariableLibNull instead and has no SecureBoot variable at all.
- Which record of a name counts: VariableParsing.c FindVariableEx — the first record in state
  VAR_ADDED (0x3F), else one in VAR_ADDED & VAR_IN_DELETED_TRANSITION (0x3E); deleted records
  and records past the end of the walk are not seen.
"""
from __future__ import annotations

import struct
import uuid

from decoders.model import Node, Severity, Space

GLOBAL = uuid.UUID("8be4df61-93ca-11d2-aa0d-00e098032b8c")          # gEfiGlobalVariableGuid
IMAGE_SECURITY = uuid.UUID("d719b2cb-3d3a-4596-a3bc-dad00e67656f")  # gEfiImageSecurityDatabaseGuid
SECURE_BOOT_ENABLE = uuid.UUID("f0a30bc7-af08-4556-99c4-001009c93a44")  # gEfiSecureBootEnableDisableGuid
VAR_ADDED = 0x3F
VAR_ADDED_IN_DELETED_TRANSITION = 0x3E   # VAR_ADDED & VAR_IN_DELETED_TRANSITION

# Tcg2Dxe.c mVariableType, then dbt when present
POLICY = (("SecureBoot", GLOBAL), ("PK", GLOBAL), ("KEK", GLOBAL), ("db", IMAGE_SECURITY),
          ("dbx", IMAGE_SECURITY))
DBT = ("dbt", IMAGE_SECURITY)


class Found:
    """The record edk2 would read for one name, or why it cannot be said. (A plain class: `diff`
    and `measure` start without the dataclasses module.)"""

    def __init__(self, name: str, vendor: uuid.UUID, data: bytes | None, node: Node | None = None,
                 unknown: str | None = None):
        self.name = name
        self.vendor = vendor
        self.data = data            # None: absent
        self.node = node            # the variable node (its Data field locates the bytes)
        self.unknown = unknown      # set when the store is damaged and the variable was not seen

    def __repr__(self) -> str:
        return f"Found({self.name!r}, {self.vendor}, {self.data!r}, unknown={self.unknown!r})"


def variable_data(name: str, vendor: uuid.UUID, data: bytes | None) -> bytes:
    """UEFI_VARIABLE_DATA as Tcg2Dxe MeasureVariable logs (and hashes) it."""
    encoded = name.encode("utf-16-le")
    data = data or b""
    return vendor.bytes_le + struct.pack("<QQ", len(name), len(data)) + encoded + data


class Store:
    """A decoded variable store (decoders.nvvars `variable-store` node) with edk2's lookup."""

    def __init__(self, store: Node | None, label: str, damage: str | None = None):
        self.node = store
        self.label = label
        self.damage = damage
        self.by_key: dict[tuple[str, uuid.UUID], Node] = {}
        if store is None:
            return
        deleting: dict[tuple[str, uuid.UUID], Node] = {}
        for v in store.children:
            if v.kind != "variable":
                continue
            state, name, vendor = v.get("State"), v.get("Name"), v.get("VendorGuid")
            if not isinstance(name, str) or not isinstance(vendor, uuid.UUID) or v.field("Data") is None:
                continue
            key = (name, vendor)
            if state == VAR_ADDED:
                self.by_key.setdefault(key, v)
            elif state == VAR_ADDED_IN_DELETED_TRANSITION:
                deleting.setdefault(key, v)
        for key, v in deleting.items():
            self.by_key.setdefault(key, v)
        if self.damage is None:
            self.damage = _damage(store)

    def lookup(self, name: str, vendor: uuid.UUID) -> Found:
        v = self.by_key.get((name, vendor))
        if v is not None:
            if v.get("State") == VAR_ADDED or self.damage is None:
                return Found(name, vendor, bytes(v.get("Data")), v)
        if self.damage is not None:
            return Found(name, vendor, None, None,
                         f"not found before the store's damage ({self.damage}): edk2 may or may not see it")
        return Found(name, vendor, None)


def _damage(store: Node) -> str | None:
    """Why the walk of a store may have missed variables: an error on the store itself (its header,
    a variable whose sizes run past the end, a cut-off header). Errors inside a variable's payload
    (a malformed signature list) do not hide other variables."""
    for p in store.problems:
        if p.severity == Severity.ERROR:
            return p.message
    return None


def secure_boot_value(store: Store, supported: bool | None) -> tuple[Found, str]:
    """The SecureBoot variable as AuthVariableLibInitialize leaves it, and the reason in words
    (`supported` None: whether the image has AuthVariableLib is unknown)."""
    if supported is None:
        return Found("SecureBoot", GLOBAL, None, None, "whether the image creates it (a Secure Boot build) is "
                                                       "unknown: the image's DXEFV is missing"), ""
    if not supported:
        found = store.lookup("SecureBoot", GLOBAL)
        return found, "no AuthVariableLib in the image: SecureBoot is whatever the store holds (normally absent)"
    pk = store.lookup("PK", GLOBAL)
    if pk.unknown:
        return Found("SecureBoot", GLOBAL, None, None, f"depends on PK, which is {pk.unknown}"), ""
    if pk.data is None:
        return Found("SecureBoot", GLOBAL, b"\x00"), "0: no PK enrolled (setup mode)"
    enable = store.lookup("SecureBootEnable", SECURE_BOOT_ENABLE)
    if enable.unknown:
        return Found("SecureBoot", GLOBAL, None, None, f"depends on SecureBootEnable, which is {enable.unknown}"), ""
    if enable.data is None:
        return Found("SecureBoot", GLOBAL, b"\x01"), "1: PK enrolled (user mode), no SecureBootEnable (enable)"
    on = enable.data[:1] == b"\x01"
    return (Found("SecureBoot", GLOBAL, b"\x01" if on else b"\x00"),
            f"{int(on)}: PK enrolled (user mode), SecureBootEnable = {enable.data[:1].hex() or 'empty'}")


def data_location(found: Found) -> tuple[Space | None, int, int]:
    if found.node is None:
        return None, 0, 0
    f = found.node.field("Data")
    if f is None or f.offset is None:
        return found.node.space, found.node.offset, found.node.size
    return found.node.space, f.offset, f.size or 0


# -- reading a VARS file ------------------------------------------------------------------------
# A VARS file is one FV (PiFirmwareVolume.h) whose FileSystemGuid is gEfiSystemNvDataFvGuid; its
# body is walked by decoders.nvvars, without decoding the variables' payloads (the X.509
# certificates of PK/KEK/db cost more than the whole prediction and are not measured as such).

NV_FV = uuid.UUID("fff12b8d-7696-4c8b-a985-2747075b4f50")          # gEfiSystemNvDataFvGuid
FV_HEADER = struct.Struct("<16s16sQ4sIHHHBB")   # PiFirmwareVolume.h EFI_FIRMWARE_VOLUME_HEADER (to Revision)


def read_vars(data: bytes, name: str = "VARS") -> Node:
    """The variable store (and FTW areas) of a VARS file, as decoders.nvvars decodes them, under a
    `vars-file` root; problems say where and why the walk stopped."""
    from decoders.nvvars import decode_nv_body

    space = Space(name, data)
    root = Node("vars-file", f"{name}: 0x{len(data):x} bytes", space, 0, len(data))
    if len(data) < FV_HEADER.size:
        root.problem(0, f"{len(data)} bytes: shorter than an EFI_FIRMWARE_VOLUME_HEADER ({FV_HEADER.size})")
        return root
    _, fs, fv_length, sig, _, header_length, _, _, _, _ = FV_HEADER.unpack_from(data, 0)
    fs = uuid.UUID(bytes_le=fs)
    if sig != b"_FVH" or fs != NV_FV:
        root.problem(0, f"not a variable FV: Signature {sig!r}, FileSystemGuid {fs} (expected _FVH and "
                        "gEfiSystemNvDataFvGuid)")
        return root
    end = min(fv_length, len(data))
    if fv_length > len(data):
        root.problem(0x20, f"FvLength 0x{fv_length:x} runs past the end of the 0x{len(data):x}-byte file")
    if not FV_HEADER.size <= header_length < end:
        root.problem(0x30, f"HeaderLength 0x{header_length:x} leaves no variable store in the FV")
        return root
    root.children = decode_nv_body(space, header_length, end - header_length, payloads=False)
    return root
