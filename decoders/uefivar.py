"""The data of well-known UEFI variables, decoded one way wherever it is found: in the NV variable
store (decoders/nvvars) and in the TCG event log, whose EV_EFI_VARIABLE_* events carry a
UEFI_VARIABLE_DATA with the variable's name, vendor GUID and data (decoders/eventlog/events.py).

Sources: UEFI 2.10 §3.1.3 (EFI_LOAD_OPTION), §3.3 table 3-1 (globally defined variables), §32.4.1
(signature databases), §32.6 (SecureBoot, SetupMode, AuditMode, DeployedMode); edk2
MdePkg/Include/Uefi/UefiSpec.h (EFI_LOAD_OPTION, LOAD_OPTION_*), MdePkg/Include/Guid/GlobalVariable.h,
MdePkg/Include/Guid/ImageAuthentication.h, SecurityPkg/Include/Guid/AuthenticatedVariableFormat.h
(SecureBootEnable, CustomMode, VendorKeysNv), MdeModulePkg/Include/Guid/MtcVendor.h,
MdeModulePkg/Include/Guid/MemoryTypeInformation.h; shim's MokManager/SBAT variables (MokList*,
MokSBState, MokListTrusted, SbatLevel under SHIM_LOCK_GUID).

The decoded value of a variable is a field named after the variable (`BootOrder`, `SecureBoot`);
structured data (a load option, signature lists) becomes children.
"""
from __future__ import annotations

import struct
import uuid

from decoders import guids
from decoders.devicepath import decode_device_path_list
from decoders.display import flags_text
from decoders.efisig import decode_signature_lists
from decoders.layout import Layout
from decoders.model import Node, Space

GLOBAL = guids.gEfiGlobalVariableGuid

# UefiSpec.h EFI_LOAD_OPTION (#pragma pack(1)): the fixed part; then CHAR16 Description[] (NUL
# terminated), EFI_DEVICE_PATH_PROTOCOL FilePathList[] (FilePathListLength bytes) and
# UINT8 OptionalData[] (the rest of the variable).
EFI_LOAD_OPTION = Layout(
    "EFI_LOAD_OPTION",
    ("Attributes", "I"),
    ("FilePathListLength", "H"),
)
LOAD_OPTION_FIXED = EFI_LOAD_OPTION.size  # 6

# UEFI 2.10 §3.1.3 "Related Definitions"; values 0x200-0x1F00 of the category are reserved.
LOAD_OPTION_ATTRIBUTES = {
    0x00000001: "LOAD_OPTION_ACTIVE",
    0x00000002: "LOAD_OPTION_FORCE_RECONNECT",
    0x00000008: "LOAD_OPTION_HIDDEN",
}
LOAD_OPTION_CATEGORY = 0x00001F00
LOAD_OPTION_CATEGORIES = {0x00000000: "LOAD_OPTION_CATEGORY_BOOT", 0x00000100: "LOAD_OPTION_CATEGORY_APP"}

# UEFI 2.10 §3.1.1: a load option lives in Boot####, Driver####, SysPrep####, OsRecovery#### or
# PlatformRecovery####, #### being four upper-case hex digits. OsRecovery#### options carry the OS
# vendor's GUID (§3.4.1); the others are EFI_GLOBAL_VARIABLE.
LOAD_OPTION_PREFIXES = ("Boot", "Driver", "SysPrep", "PlatformRecovery", "OsRecovery")
_HEX_UPPER = frozenset("0123456789ABCDEF")

# Order lists: UINT16 option numbers (§3.3 table 3-1). An option number is a UINT16, so a longer
# list necessarily repeats one; past this it is not decoded further.
ORDER_LISTS = {"BootOrder": "Boot", "DriverOrder": "Driver", "SysPrepOrder": "SysPrep",
               "PlatformRecoveryOrder": "PlatformRecovery"}
MAX_ORDER_ENTRIES = 0x10000

# Signature databases (EFI_SIGNATURE_LISTs): §32.4.1 / §3.3; shim's MOK lists have the same format.
SIGNATURE_DATABASES = {
    GLOBAL: {"PK", "KEK", "PKDefault", "KEKDefault", "dbDefault", "dbxDefault", "dbtDefault", "dbrDefault"},
    guids.gEfiImageSecurityDatabaseGuid: {"db", "dbx", "dbt", "dbr"},
    guids.SHIM_LOCK_GUID: {"MokList", "MokListX", "MokListRT", "MokListXRT"},
}

# (vendor, name) -> struct format of a scalar variable.
SCALARS = {
    (GLOBAL, "SecureBoot"): "<B", (GLOBAL, "SetupMode"): "<B", (GLOBAL, "AuditMode"): "<B",
    (GLOBAL, "DeployedMode"): "<B", (GLOBAL, "VendorKeys"): "<B",
    (guids.gEfiSecureBootEnableDisableGuid, "SecureBootEnable"): "<B",
    (guids.gEfiCustomModeEnableGuid, "CustomMode"): "<B", (guids.gEfiVendorKeysNvGuid, "VendorKeysNv"): "<B",
    (guids.SHIM_LOCK_GUID, "MokSBState"): "<B", (guids.SHIM_LOCK_GUID, "MokListTrusted"): "<B",
    (GLOBAL, "Timeout"): "<H", (GLOBAL, "BootCurrent"): "<H", (GLOBAL, "BootNext"): "<H",
    (guids.gMtcVendorGuid, "MTC"): "<I",
    (GLOBAL, "OsIndications"): "<Q", (GLOBAL, "OsIndicationsSupported"): "<Q",
}
# 1 = enabled, 0 = disabled, other values reserved (§32.6; AuthenticatedVariableFormat.h; shim).
_SWITCHES = {"SecureBoot", "SetupMode", "AuditMode", "DeployedMode", "VendorKeys", "SecureBootEnable",
             "VendorKeysNv", "MokSBState", "MokListTrusted"}
ASCII_STRINGS = {(GLOBAL, "Lang"), (GLOBAL, "PlatformLang"), (GLOBAL, "LangCodes"), (GLOBAL, "PlatformLangCodes"),
                 (guids.SHIM_LOCK_GUID, "SbatLevel")}


def decode_variable_data(node: Node, name: str, vendor: uuid.UUID, start: int, size: int) -> None:
    """Decode the `size` data bytes at `start` (in node.space) of variable `name` of `vendor` into
    `node`. Variables not known here are left as they are."""
    if size <= 0 or node.space is None or node.space.data is None:
        return
    space = node.space
    raw = bytes(space.data[start:start + size])
    if name in SIGNATURE_DATABASES.get(vendor, ()):
        for child in decode_signature_lists(space, start, size):
            node.append(child)
        return
    fmt = SCALARS.get((vendor, name))
    if fmt is not None:
        need = struct.calcsize(fmt)
        if size != need:
            node.warn(start, f"{name} holds {size} byte(s); UEFI defines it as {need}")
        if size >= need:
            value = struct.unpack_from(fmt, raw)[0]
            node.add(name, value, start, need, _scalar_text(name, value))
        return
    if (vendor, name) in ASCII_STRINGS:
        text = raw.split(b"\0", 1)[0].decode("ascii", errors="replace")
        node.add(name, text, start, size, repr(text))
    elif vendor == GLOBAL and name in ORDER_LISTS:
        _order_list(node, name, raw, start)
    elif is_load_option_name(name, vendor):
        node.append(decode_load_option(space, start, size))
    elif (vendor, name) == (guids.gEfiMemoryTypeInformationGuid, "MemoryTypeInformation"):
        # MemoryTypeInformation.h: {UINT32 Type; UINT32 NumberOfPages}[]
        pairs = list(struct.iter_unpack("<II", raw[:size - size % 8]))
        node.add(name, pairs, start, size, ", ".join(f"type {t}: 0x{n:x} pages" for t, n in pairs))


def _scalar_text(name: str, value: int) -> str:
    if name in _SWITCHES:
        return f"{value} ({'enabled' if value == 1 else 'disabled' if value == 0 else 'reserved value'})"
    if name == "CustomMode":
        mode = {0: "STANDARD_SECURE_BOOT_MODE", 1: "CUSTOM_SECURE_BOOT_MODE"}.get(value, "reserved value")
        return f"{value} ({mode})"
    if name in ("BootCurrent", "BootNext"):
        return f"Boot{value:04X}"
    if name == "Timeout":
        return f"{value} s"
    return f"0x{value:x}"


def _order_list(node: Node, name: str, raw: bytes, start: int) -> None:
    if len(raw) % 2:
        node.problem(start, f"{name} is {len(raw)} bytes, not a whole number of UINT16s")
    count = len(raw) // 2
    if count > MAX_ORDER_ENTRIES:
        node.problem(start, f"{name} lists {count} options; a UINT16 option number repeats after "
                            f"{MAX_ORDER_ENTRIES}, the rest is not decoded")
        count = MAX_ORDER_ENTRIES
    items = list(struct.unpack_from(f"<{count}H", raw))
    prefix = ORDER_LISTS[name]
    node.add(name, items, start, len(raw), ", ".join(f"{prefix}{i:04X}" for i in items))


def is_load_option_name(name: str, vendor: uuid.UUID) -> bool:
    for prefix in LOAD_OPTION_PREFIXES:
        digits = name[len(prefix):]
        if name.startswith(prefix) and len(digits) == 4 and set(digits) <= _HEX_UPPER:
            return prefix == "OsRecovery" or vendor == GLOBAL
    return False


def load_option_attributes_text(value: int) -> str:
    """`0x101 (LOAD_OPTION_ACTIVE | LOAD_OPTION_CATEGORY_APP)`: the flags and the category."""
    category = value & LOAD_OPTION_CATEGORY
    cat = LOAD_OPTION_CATEGORIES.get(category, f"reserved category 0x{category:x}")
    return flags_text(value, LOAD_OPTION_ATTRIBUTES, extra=[cat], handled=LOAD_OPTION_CATEGORY)


def decode_load_option(space: Space, start: int, size: int) -> Node:
    """UEFI 2.10 §3.1.3 EFI_LOAD_OPTION in space.data[start:start+size] (the whole variable data)."""
    node = Node("load-option", "EFI_LOAD_OPTION", space, start, size)
    data = space.data
    end = start + size
    if size < LOAD_OPTION_FIXED:
        node.problem(start, f"EFI_LOAD_OPTION needs {LOAD_OPTION_FIXED} bytes, the data has {size}")
        return node
    h = EFI_LOAD_OPTION.parse(data, start, "EFI_LOAD_OPTION")
    node.add("Attributes", h.Attributes, start, 4, load_option_attributes_text(h.Attributes))
    node.add("FilePathListLength", h.FilePathListLength, start + 4, 2)
    # Description: CHAR16s up to and including the first NUL CHAR16.
    desc_start = pos = start + LOAD_OPTION_FIXED
    while pos + 2 <= end and data[pos:pos + 2] != b"\0\0":
        pos += 2
    if pos + 2 > end:
        text = bytes(data[desc_start:end - (end - desc_start) % 2]).decode("utf-16-le", errors="replace")
        node.add("Description", text, desc_start, end - desc_start, repr(text))
        node.problem(desc_start, "Description has no NUL terminator inside the variable data")
        return node
    desc = bytes(data[desc_start:pos]).decode("utf-16-le", errors="replace")
    node.add("Description", desc, desc_start, pos + 2 - desc_start, repr(desc))
    fp, fp_len = pos + 2, h.FilePathListLength
    if fp + fp_len > end:
        node.problem(start + 4, f"FilePathListLength 0x{fp_len:x} runs past the variable data "
                                f"(0x{end - fp:x} bytes left)")
        fp_len = end - fp
    paths = decode_device_path_list(space, fp, fp_len)
    texts = [p.get("DevicePath") or "" for p in paths]
    node.add("FilePathList", bytes(data[fp:fp + fp_len]), fp, fp_len, " ".join(texts) or None)
    node.children.extend(paths)
    if fp + fp_len < end:
        node.add("OptionalData", bytes(data[fp + fp_len:end]), fp + fp_len, end - fp - fp_len)
    node.title = f"{desc}: {texts[0] if texts else '(no device path)'}"
    return node
