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
from dataclasses import dataclass

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


@dataclass
class Found:
    """The record edk2 would read for one name, or why it cannot be said."""
    name: str
    vendor: uuid.UUID
    data: bytes | None            # None: absent
    node: Node | None = None      # the variable node (its Data field locates the bytes)
    unknown: str | None = None    # set when the store is damaged and the variable was not seen


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


# -- a light reader of a VARS file ------------------------------------------------------------
# What predict_tpm needs of a VARS file is each variable's name, vendor, state and data; the full
# decoder (decoders.nvvars, with X.509 parsing of the signature lists) costs more than the whole
# prediction. This reader follows the same edk2 rules and gives nodes of the same shape
# (`variable-store` with `variable` children: State, Attributes, Name, VendorGuid, Data).

NV_FV = uuid.UUID("fff12b8d-7696-4c8b-a985-2747075b4f50")          # gEfiSystemNvDataFvGuid
AUTH_STORE = uuid.UUID("aaf32c78-947b-439a-a180-2e144ec37792")      # gEfiAuthenticatedVariableGuid
PLAIN_STORE = uuid.UUID("ddcf3616-3275-4164-98b6-fe85707ffe7d")     # gEfiVariableGuid
FV_HEADER = struct.Struct("<16s16sQ4sIHHHBB")   # PiFirmwareVolume.h EFI_FIRMWARE_VOLUME_HEADER (to Revision)
STORE_HEADER = struct.Struct("<16sIBBHI")       # VariableFormat.h VARIABLE_STORE_HEADER (28 bytes)
# VariableFormat.h AUTHENTICATED_VARIABLE_HEADER (60 bytes) and VARIABLE_HEADER (32 bytes)
AUTH_HEADER = struct.Struct("<HBBIQ16sIII16s")
PLAIN_HEADER = struct.Struct("<HBBIII16s")
VARIABLE_DATA = 0x55AA
HEADER_ALIGNMENT = 4
# A variable is at least a 32-byte header: a 64 MiB file holds fewer than 2^21.
MAX_VARIABLES = 1 << 21


def read_vars(data: bytes, name: str = "VARS") -> Node:
    """The variable store of a VARS file (an FV whose FileSystemGuid is gEfiSystemNvDataFvGuid),
    walked as edk2 VariableParsing.c does; problems say where and why the walk stopped."""
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
    store_at = header_length
    end = min(fv_length, len(data))
    store = Node("variable-store", "Variable store", space, store_at, max(end - store_at, 0))
    root.append(store)
    if fv_length > len(data):
        store.problem(store_at, f"FvLength 0x{fv_length:x} runs past the end of the 0x{len(data):x}-byte file")
    if store_at + STORE_HEADER.size > end:
        store.problem(store_at, "truncated VARIABLE_STORE_HEADER")
        return root
    ssig, size, fmt, state, _, _ = STORE_HEADER.unpack_from(data, store_at)
    ssig = uuid.UUID(bytes_le=ssig)
    store.add("Signature", ssig, store_at, 16)
    store.add("Size", size, store_at + 16, 4)
    if ssig not in (AUTH_STORE, PLAIN_STORE) or fmt != 0x5A:
        store.problem(store_at, f"VARIABLE_STORE_HEADER Signature {ssig} / Format 0x{fmt:02x} is not a formatted "
                                "variable store")
        return root
    var_end = store_at + size
    if var_end > end:
        store.problem(store_at + 16, f"Size 0x{size:x} runs past the end of the FV")
        var_end = end
    _walk(store, data, _align(store_at + STORE_HEADER.size), var_end, ssig == AUTH_STORE)
    store.title = f"Variable store, {len(store.children)} variables"
    return root


def _align(value: int) -> int:
    return (value + HEADER_ALIGNMENT - 1) & ~(HEADER_ALIGNMENT - 1)


def _walk(store: Node, data: bytes, pos: int, end: int, auth: bool) -> None:
    header = AUTH_HEADER if auth else PLAIN_HEADER
    for _ in range(MAX_VARIABLES):
        if pos + 2 > end or struct.unpack_from("<H", data, pos)[0] != VARIABLE_DATA:
            return      # IsValidVariableHeader: the walk ends at the first non-0x55AA StartId
        if pos + header.size > end:
            store.problem(pos, f"variable header at 0x{pos:x} is cut off by the store end 0x{end:x}")
            return
        fields = header.unpack_from(data, pos)
        state, attrs = fields[1], fields[3]
        name_size, data_size, vendor = fields[-3], fields[-2], uuid.UUID(bytes_le=fields[-1])
        if state == 0xFF or 0xFFFFFFFF in (name_size, data_size, attrs):
            name_size = data_size = 0   # VariableParsing.c: an interrupted write has no name or data
        name_at = pos + header.size
        data_at = name_at + name_size
        if data_at + data_size > end:
            store.problem(pos, f"variable at 0x{pos:x}: NameSize 0x{name_size:x} / DataSize 0x{data_size:x} run "
                               f"past the store end 0x{end:x}; the walk stops here")
            return
        raw_name = data[name_at:data_at].decode("utf-16-le", "replace")
        vname = raw_name.split("\0", 1)[0]
        v = Node("variable", f"{vname} ({vendor}) 0x{state:02x}", store.space, pos, data_at + data_size - pos)
        v.add("State", state, pos + 2, 1)
        v.add("Attributes", attrs, pos + 4, 4)
        v.add("Name", vname, name_at, name_size)
        v.add("VendorGuid", vendor, pos + header.size - 16, 16)
        v.add("Data", data[data_at:data_at + data_size], data_at, data_size)
        store.append(v)
        pos = _align(data_at + data_size)
    store.problem(pos, f"more than {MAX_VARIABLES} variables: the rest is not read")
