"""The data of well-known UEFI variables (decoders/uefivar.py), the one decoder behind the NV store and
the event log: load options packed with `struct` from UEFI 2.10 §3.1.3, order lists and Secure Boot
switches from §3.3 table 3-1, and the same bytes reaching it through both callers."""
from __future__ import annotations

import struct
import uuid

from decoders import guids
from decoders.eventlog.events import decode_event_data
from decoders.eventlog.structs import EV_EFI_VARIABLE_BOOT
from decoders.model import Node, Space
from decoders.nvvars import decode_nv_body
from decoders.uefivar import decode_load_option, decode_variable_data
from tests.decoders.wire import efi_guid

GLOBAL = uuid.UUID("8be4df61-93ca-11d2-aa0d-00e098032b8c")  # EFI_GLOBAL_VARIABLE (GlobalVariable.h)
SHIM = uuid.UUID("605dab50-e046-4300-abb6-3dd810dd8b23")    # SHIM_LOCK_GUID



def device_path() -> bytes:
    """PciRoot(0x0)/\\EFI\\BOOT\\BOOTX64.EFI: an ACPI node (type 2, subtype 1, _HID PNP0A03, _UID 0),
    a media file-path node (type 4, subtype 4, NUL-terminated UCS-2) and End Entire (0x7F, 0xFF)."""
    path = "\\EFI\\BOOT\\BOOTX64.EFI\0".encode("utf-16-le")
    return (struct.pack("<BBHII", 2, 1, 12, 0x0A0341D0, 0) + struct.pack("<BBH", 4, 4, 4 + len(path)) + path
            + struct.pack("<BBH", 0x7F, 0xFF, 4))


def load_option(attributes: int, description: str, dp: bytes, optional: bytes = b"",
                fp_len: int | None = None) -> bytes:
    """EFI_LOAD_OPTION (packed): UINT32 Attributes, UINT16 FilePathListLength, CHAR16 Description[]
    with its NUL, FilePathList[], UINT8 OptionalData[]."""
    return (struct.pack("<IH", attributes, len(dp) if fp_len is None else fp_len)
            + (description + "\0").encode("utf-16-le") + dp + optional)


DP = device_path()
DP_TEXT = "PciRoot(0x0)/\\EFI\\BOOT\\BOOTX64.EFI"


def test_load_option_fields_at_their_spec_offsets():
    raw = load_option(0x101, "debian", DP, b"\x01\x02\x03")
    opt = decode_load_option(Space("v", raw), 0, len(raw))
    assert [(f.name, f.offset, f.size) for f in opt.fields] == [
        ("Attributes", 0, 4), ("FilePathListLength", 4, 2), ("Description", 6, 14),
        ("FilePathList", 20, 64), ("OptionalData", 84, 3)]
    assert opt.get("Attributes") == 0x101
    assert opt.field("Attributes").display == "0x101 (LOAD_OPTION_ACTIVE | LOAD_OPTION_CATEGORY_APP)"
    assert opt.get("FilePathListLength") == 64 and opt.get("Description") == "debian"
    assert opt.get("FilePathList") == DP and opt.field("FilePathList").display == DP_TEXT
    assert opt.get("OptionalData") == b"\x01\x02\x03"
    (dp,) = opt.children
    assert (dp.kind, dp.offset, dp.size, dp.get("DevicePath")) == ("device-path", 20, 64, DP_TEXT)
    assert opt.title == f"debian: {DP_TEXT}" and not opt.problems


def test_load_option_attribute_bits_and_reserved_category():
    raw = load_option(0x0000020B | 0x80000000, "x", DP)
    opt = decode_load_option(Space("v", raw), 0, len(raw))
    assert opt.field("Attributes").display == ("0x8000020b (LOAD_OPTION_ACTIVE | LOAD_OPTION_FORCE_RECONNECT | "
                                               "LOAD_OPTION_HIDDEN | reserved category 0x200 | 0x80000000)")


def test_load_option_without_optional_data_and_empty_description():
    raw = load_option(0x1, "", DP)
    opt = decode_load_option(Space("v", raw), 0, len(raw))
    assert opt.get("Description") == "" and opt.field("Description").size == 2
    assert opt.field("FilePathList").offset == 8 and opt.field("OptionalData") is None
    assert opt.field("Attributes").display == "0x1 (LOAD_OPTION_ACTIVE | LOAD_OPTION_CATEGORY_BOOT)"


def test_load_option_file_path_list_length_past_the_data_is_a_problem():
    raw = load_option(0x1, "d", DP, fp_len=200)
    opt = decode_load_option(Space("v", raw), 0, len(raw))
    assert [p.offset for p in opt.problems] == [4]
    assert opt.field("FilePathList").size == len(raw) - 10 and opt.children[0].get("DevicePath") == DP_TEXT


def test_load_option_description_without_nul_is_a_problem():
    raw = struct.pack("<IH", 1, 0) + "abc".encode("utf-16-le")
    opt = decode_load_option(Space("v", raw), 0, len(raw))
    assert opt.get("Description") == "abc" and [p.offset for p in opt.problems] == [6]
    short = decode_load_option(Space("v", b"\x01\x00\x00"), 0, 3)
    assert short.problems and short.field("Attributes") is None


def test_variable_data_load_option_names_follow_the_spec():
    """§3.1.1: four upper-case hex digits; Boot/Driver/SysPrep/PlatformRecovery under
    EFI_GLOBAL_VARIABLE, OsRecovery#### under any vendor's GUID."""
    raw = load_option(1, "d", DP)
    space = Space("v", raw)

    def kinds(name: str, vendor: uuid.UUID) -> list[str]:
        node = Node("variable", name, space, 0, len(raw))
        decode_variable_data(node, name, vendor, 0, len(raw))
        return [c.kind for c in node.children]

    for name in ("Boot000A", "Driver0001", "SysPrep0002", "PlatformRecovery0000"):
        assert kinds(name, GLOBAL) == ["load-option"], name
    assert kinds("OsRecovery0001", SHIM) == ["load-option"]
    assert kinds("Boot000a", GLOBAL) == [] and kinds("Boot0001", SHIM) == [] and kinds("Boot00012", GLOBAL) == []


def test_order_list_and_switches():
    space = Space("v", struct.pack("<3H", 3, 0x1A, 0) + b"\x02\x01")
    order = Node("variable", "BootOrder", space, 0, 6)
    decode_variable_data(order, "BootOrder", GLOBAL, 0, 6)
    assert order.get("BootOrder") == [3, 0x1A, 0]
    assert order.field("BootOrder").display == "Boot0003, Boot001A, Boot0000"
    sb = Node("variable", "SecureBoot", space, 6, 1)
    decode_variable_data(sb, "SecureBoot", GLOBAL, 6, 1)
    assert (sb.get("SecureBoot"), sb.field("SecureBoot").display) == (2, "2 (reserved value)")
    mok = Node("variable", "MokListTrusted", space, 7, 1)
    decode_variable_data(mok, "MokListTrusted", SHIM, 7, 1)
    assert mok.field("MokListTrusted").display == "1 (enabled)"


def test_odd_order_list_is_a_problem():
    space = Space("v", b"\x01\x00\x02")
    node = Node("variable", "DriverOrder", space, 0, 3)
    decode_variable_data(node, "DriverOrder", GLOBAL, 0, 3)
    assert node.get("DriverOrder") == [1] and node.field("DriverOrder").display == "Driver0001"
    assert [p.offset for p in node.problems] == [0]


def event_variable(name: str, vendor: uuid.UUID, data: bytes) -> bytes:
    """UEFI_VARIABLE_DATA (TCG PFP §10.2.3): VariableName GUID, UINT64 UnicodeNameLength (CHAR16s, no
    NUL), UINT64 VariableDataLength, the name, the data."""
    n = name.encode("utf-16-le")
    return efi_guid(vendor) + struct.pack("<QQ", len(name), len(data)) + n + data


def auth_variable(name: str, vendor: uuid.UUID, data: bytes) -> bytes:
    """AUTHENTICATED_VARIABLE_HEADER (VariableFormat.h, packed) + name + data, 4-byte aligned."""
    n = (name + "\0").encode("utf-16-le")
    hdr = struct.pack("<HBBIQ16sIII", 0x55AA, 0x3F, 0, 7, 0, bytes(16), 0, len(n), len(data)) + efi_guid(vendor)
    rec = hdr + n + data
    return rec + b"\xff" * (-len(rec) % 4)


def test_nv_store_and_event_log_decode_a_load_option_the_same_way():
    raw = load_option(0x101, "debian", DP, b"opt")
    ev = decode_event_data(EV_EFI_VARIABLE_BOOT, 1, Space("log", event_variable("Boot0003", GLOBAL, raw)),
                           0, 32 + 16 + len(raw))
    assert ev.get("VariableName") == GLOBAL and ev.field("VariableName").display.startswith("gEfiGlobalVariableGuid")
    store_hdr = efi_guid(guids.gEfiAuthenticatedVariableGuid) + struct.pack("<IBBHI", 0x400, 0x5A, 0xFE, 0, 0)
    blob = store_hdr + auth_variable("Boot0003", GLOBAL, raw)
    blob += b"\xff" * (0x400 - len(blob))
    (store,) = decode_nv_body(Space("vars", blob), 0, len(blob))
    var = next(c for c in store.children if c.kind == "variable")
    (a,) = [c for c in ev.children if c.kind == "load-option"]
    (b,) = [c for c in var.children if c.kind == "load-option"]

    def shape(opt: Node, base: int):
        return ([(f.name, f.value, f.offset - base, f.size, f.display) for f in opt.fields], opt.title,
                [(c.kind, c.get("DevicePath")) for c in opt.children])

    assert shape(a, a.offset) == shape(b, b.offset)
    assert a.get("OptionalData") == b"opt" and var.get("VendorGuid") == GLOBAL
