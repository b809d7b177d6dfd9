"""EFI_SYSTEM_TABLE_POINTER, EFI_SYSTEM_TABLE, its configuration tables and the debug image info
table, decoded through a Memory (UEFI 2.10 §4.3, §4.6; edk2 MdePkg/Include/Uefi/UefiSpec.h,
MdePkg/Include/Guid/DebugImageInfoTable.h, MdePkg/Include/Protocol/LoadedImage.h).

Each structure read from memory becomes a Node in its own Space holding exactly the bytes read,
based at the structure's address (as decoders.hob does), so offsets are hex-view positions.
"""
from __future__ import annotations

import struct as _struct
import uuid
import zlib

from decoders import guids
from decoders.devicepath import decode_device_path, walk as dp_walk
from decoders.display import enum_name
from decoders.efi import structs as S
from decoders.fields import read_fields
from decoders.hob.structs import EFI_MEMORY_TYPE  # MdePkg/Include/Uefi/UefiMultiPhase.h
from decoders.memory import Memory, Unreadable
from decoders.model import Node, Space

# Config tables: OVMF has ~11; UEFI firmware with many drivers a few dozen.
MAX_CONFIG_TABLES = 256
# Debug image info slots: DxeCore grows the array one page (512 pointers) at a time; OVMF at the
# shell has ~100 images. Slots past TableSize may be NULL holes left by unloaded images.
MAX_DEBUG_IMAGE_SLOTS = 8192
MAX_VENDOR_CHARS = 256
MAX_DEVICE_PATH_BYTES = 4096
END_TYPE = 0x7F

# The configuration tables the locator follows (their GUIDs are named once, in decoders/guids.py).
GUID_HOB_LIST = guids.gEfiHobListGuid
GUID_ACPI20 = guids.gEfiAcpi20TableGuid
GUID_ACPI10 = guids.gEfiAcpi10TableGuid
GUID_DEBUG_IMAGE_INFO = guids.gEfiDebugImageInfoTableGuid
GUID_TCG2_FINAL_EVENTS = guids.gEfiTcg2FinalEventsTableGuid
GUID_CC_FINAL_EVENTS = guids.gEfiCcFinalEventsTableGuid

def _space(kind: str, address: int, raw: bytes) -> Space:
    return Space(f"{kind}@0x{address:x}", raw, address)


def crc32_with_zeroed(raw: bytes, crc_offset: int) -> int:
    """CRC32 (the standard polynomial, as gBS->CalculateCrc32) with the CRC field itself zeroed."""
    return zlib.crc32(raw[:crc_offset] + b"\0\0\0\0" + raw[crc_offset + 4:]) & 0xFFFFFFFF


def revision_text(rev: int) -> str:
    major, minor = rev >> 16, rev & 0xFFFF
    return f"{major}.{minor // 10}" + (f".{minor % 10}" if minor % 10 else "")


def read_ucs2(mem: Memory, address: int, max_chars: int = MAX_VENDOR_CHARS) -> tuple[str | None, str | None]:
    """(string, problem): a NUL-terminated UCS-2 string read in small pieces, bounded."""
    out = bytearray()
    addr = address
    while len(out) < 2 * max_chars:
        try:
            chunk = mem.read(addr, 64)
        except Unreadable:
            try:
                chunk = mem.read(addr, 2)
            except Unreadable as e:
                return (out.decode("utf-16-le", "replace") if out else None), f"string at 0x{address:x}: {e}"
        for i in range(0, len(chunk) - 1, 2):
            if chunk[i] == 0 and chunk[i + 1] == 0:
                return out.decode("utf-16-le", "replace"), None
            out += chunk[i:i + 2]
        addr += len(chunk)
    return out.decode("utf-16-le", "replace"), f"string at 0x{address:x} has no NUL in {max_chars} characters"


# -- EFI_SYSTEM_TABLE_POINTER ----------------------------------------------------------------------
def decode_system_table_pointer(mem: Memory, address: int) -> Node:
    node = Node("efi-system-table-pointer", f"EFI_SYSTEM_TABLE_POINTER at 0x{address:x}")
    p = read_fields(node, mem, address, S.EFI_SYSTEM_TABLE_POINTER, "EFI_SYSTEM_TABLE_POINTER")
    if p is None:
        return node
    if p.Signature != S.EFI_SYSTEM_TABLE_SIGNATURE:
        node.problem(0, f"Signature {p.Signature!r} is not 'IBI SYST'")
    crc = crc32_with_zeroed(node.space.data, 16)
    node.field("Crc32").display = f"0x{p.Crc32:08x} ({'valid' if crc == p.Crc32 else f'computed 0x{crc:08x}'})"
    if crc != p.Crc32:
        # DxeCore fills the CRC only once the runtime arch protocol is up (DebugImageInfo.c
        # CoreUpdateDebugTableCrc32): a zero CRC means a dump taken before that.
        node.problem(16, f"Crc32 0x{p.Crc32:08x} does not match the computed 0x{crc:08x}"
                         + (" (not yet filled in: early DXE)" if p.Crc32 == 0 else ""))
    node.title = f"EFI_SYSTEM_TABLE_POINTER at 0x{address:x} -> 0x{p.EfiSystemTableBase:x}"
    return node


def scan_system_table_pointer(mem: Memory, ranges: list[tuple[int, int]], align: int = 4 << 20,
                              limit: int = 16) -> list[int]:
    """Addresses on `align` boundaries inside `ranges` ((start, size) pairs) holding 'IBI SYST'
    (DebugImageInfo.c allocates the pointer 4 MiB-aligned). At most `limit` hits, highest first,
    because edk2 allocates it as high as it can."""
    hits = []
    for start, size in sorted(ranges, reverse=True):
        top = (start + size - 8) & ~(align - 1)
        addr = top
        while addr >= start and len(hits) < limit:
            try:
                if mem.read(addr, 8) == S.EFI_SYSTEM_TABLE_SIGNATURE:
                    hits.append(addr)
            except Unreadable:
                pass
            addr -= align
    return hits


# -- EFI_SYSTEM_TABLE --------------------------------------------------------------------------------
def decode_system_table(mem: Memory, address: int) -> Node:
    """The system table with the configuration tables as children (kind "efi-config-table").
    The pointer width comes from Hdr.HeaderSize (120 = X64, 72 = IA32); field "PointerSize"."""
    node = Node("efi-system-table", f"EFI_SYSTEM_TABLE at 0x{address:x}")
    try:
        head = mem.read(address, S.EFI_TABLE_HEADER.sizeof())
    except Unreadable as e:
        node.problem(None, f"EfiSystemTableBase 0x{address:x} is not readable: {e}")
        return node
    hdr = S.EFI_TABLE_HEADER.parse(head, 0)
    width = {S.EFI_SYSTEM_TABLE(8).sizeof(): 8, S.EFI_SYSTEM_TABLE(4).sizeof(): 4}.get(hdr.HeaderSize)
    if width is None:
        node.space, node.size = _space("EFI_SYSTEM_TABLE", address, head), len(head)
        S.EFI_TABLE_HEADER.add_fields(node, hdr, 0, prefix="Hdr.")
        node.problem(12, f"HeaderSize {hdr.HeaderSize} is neither 120 (X64) nor 72 (IA32): not a system table")
        return node
    st_struct = S.EFI_SYSTEM_TABLE(width)
    st = read_fields(node, mem, address, st_struct, "EFI_SYSTEM_TABLE")
    if st is None:
        return node
    members = vars(st)                  # Hdr.* as read with the rest (the bytes the fields show)
    signature, revision, stored_crc = members["Hdr.Signature"], members["Hdr.Revision"], members["Hdr.CRC32"]
    node.add("PointerSize", width, display="X64 (8)" if width == 8 else "IA32 (4)")
    if signature != S.EFI_SYSTEM_TABLE_SIGNATURE:
        node.problem(0, f"Hdr.Signature {signature!r} is not 'IBI SYST'")
    node.field("Hdr.Revision").display = f"0x{revision:x} (UEFI {revision_text(revision)})"
    crc = crc32_with_zeroed(node.space.data, 16)
    node.field("Hdr.CRC32").display = f"0x{stored_crc:08x} ({'valid' if crc == stored_crc else 'bad'})"
    if crc != stored_crc:
        node.problem(16, f"Hdr.CRC32 0x{stored_crc:08x} does not match the computed 0x{crc:08x}")
    vendor, why = read_ucs2(mem, st.FirmwareVendor) if st.FirmwareVendor else (None, "FirmwareVendor is NULL")
    f = node.field("FirmwareVendor")
    f.display = f"0x{st.FirmwareVendor:x} \"{vendor}\"" if vendor is not None else f"0x{st.FirmwareVendor:x}"
    if why:
        node.warn(f.offset, why)
    node.add("FirmwareVendorString", vendor)
    node.field("FirmwareRevision").display = f"0x{st.FirmwareRevision:x}"
    node.title = (f"EFI_SYSTEM_TABLE at 0x{address:x}: UEFI {revision_text(revision)}, "
                  f"{vendor or '?'}, {st.NumberOfTableEntries} configuration tables")
    _config_tables(node, mem, st.ConfigurationTable, st.NumberOfTableEntries, width)
    return node


def _config_tables(parent: Node, mem: Memory, address: int, count: int, width: int) -> None:
    entry = S.EFI_CONFIGURATION_TABLE(width)
    n = count
    if count > MAX_CONFIG_TABLES:
        parent.problem(parent.field("NumberOfTableEntries").offset,
                       f"NumberOfTableEntries {count} is more than any firmware has; reading {MAX_CONFIG_TABLES}")
        n = MAX_CONFIG_TABLES
    if not n:
        return
    try:
        raw = mem.read(address, n * entry.sizeof())
    except Unreadable as e:
        parent.problem(parent.field("ConfigurationTable").offset,
                       f"ConfigurationTable array ({n} x {entry.sizeof()} bytes at 0x{address:x}) not readable: {e}")
        return
    space = _space("EFI_CONFIGURATION_TABLE", address, raw)
    for i in range(n):
        off = i * entry.sizeof()
        e = entry.parse(raw, off)
        g = e.VendorGuid
        c = Node("efi-config-table", f"{guids.describe(g)} -> 0x{e.VendorTable:x}", space, off, entry.sizeof())
        c.add("VendorGuid", g, off, 16, guids.describe(g))
        c.add("VendorTable", e.VendorTable, off + 16, width, f"0x{e.VendorTable:x}")
        parent.append(c)


def config_tables(system_table: Node) -> list[tuple[uuid.UUID, int]]:
    return [(c.get("VendorGuid"), c.get("VendorTable")) for c in system_table.children
            if c.kind == "efi-config-table"]


# -- debug image info table and loaded images ---------------------------------------------------
def decode_debug_image_info(mem: Memory, address: int, width: int = 8) -> Node:
    """EFI_DEBUG_IMAGE_INFO_TABLE_HEADER at `address` (the config table's VendorTable) and every
    EFI_DEBUG_IMAGE_INFO_NORMAL it points to, each with its EFI_LOADED_IMAGE_PROTOCOL (children of
    kind "loaded-image")."""
    hs = S.EFI_DEBUG_IMAGE_INFO_TABLE_HEADER(width)
    node = Node("efi-debug-image-info-table", f"EFI_DEBUG_IMAGE_INFO_TABLE_HEADER at 0x{address:x}")
    h = read_fields(node, mem, address, hs, "EFI_DEBUG_IMAGE_INFO_TABLE_HEADER")
    if h is None:
        return node
    flags = [n for bit, n in ((1, "UPDATE_IN_PROGRESS"), (2, "TABLE_MODIFIED")) if h.UpdateStatus & bit]
    node.field("UpdateStatus").display = f"0x{h.UpdateStatus:x} ({', '.join(flags) or 'none'})"
    if h.UpdateStatus & S.EFI_DEBUG_IMAGE_INFO_UPDATE_IN_PROGRESS:
        node.warn(0, "UpdateStatus has UPDATE_IN_PROGRESS: the dump caught DxeCore changing the table")
    node.title = f"Debug image info table: {h.TableSize} images"
    if not h.EfiDebugImageInfoTable:
        if h.TableSize:
            node.problem(8, f"TableSize {h.TableSize} but EfiDebugImageInfoTable is NULL")
        return node
    # The array holds one pointer per slot; unloaded images leave NULL slots, so walk until
    # TableSize non-NULL entries are found (DebugImageInfo.c CoreRemoveDebugImageInfoEntry).
    found, slot = 0, 0
    want = min(h.TableSize, MAX_DEBUG_IMAGE_SLOTS)
    if h.TableSize > MAX_DEBUG_IMAGE_SLOTS:
        node.problem(4, f"TableSize {h.TableSize} is more than {MAX_DEBUG_IMAGE_SLOTS}; reading that many")
    fmt = "<Q" if width == 8 else "<I"
    while found < want and slot < MAX_DEBUG_IMAGE_SLOTS:
        at = h.EfiDebugImageInfoTable + slot * width
        try:
            ptr = _struct.unpack(fmt, mem.read(at, width))[0]
        except Unreadable as e:
            node.problem(8, f"slot {slot} at 0x{at:x} not readable ({e}); {found} of {h.TableSize} images read")
            break
        slot += 1
        if ptr:
            found += 1
            node.append(decode_debug_image_entry(mem, ptr, width))
    if found < want and slot >= MAX_DEBUG_IMAGE_SLOTS:
        node.problem(8, f"only {found} of {h.TableSize} images in {MAX_DEBUG_IMAGE_SLOTS} slots")
    return node


def decode_debug_image_entry(mem: Memory, address: int, width: int = 8) -> Node:
    ns = S.EFI_DEBUG_IMAGE_INFO_NORMAL(width)
    node = Node("loaded-image", f"image (EFI_DEBUG_IMAGE_INFO_NORMAL at 0x{address:x})")
    e = read_fields(node, mem, address, ns, "EFI_DEBUG_IMAGE_INFO_NORMAL")
    if e is None:
        return node
    if e.ImageInfoType != S.EFI_DEBUG_IMAGE_INFO_TYPE_NORMAL:
        node.problem(0, f"ImageInfoType {e.ImageInfoType} is not EFI_DEBUG_IMAGE_INFO_TYPE_NORMAL (1)")
        return node
    li = decode_loaded_image(mem, e.LoadedImageProtocolInstance, width)
    node.append(li)
    for name in ("ImageBase", "ImageSize", "FilePath", "FvFileName"):
        if li.field(name) is not None:
            node.add(name, li.get(name), display=li.field(name).display)
    base, size = li.get("ImageBase"), li.get("ImageSize")
    if base is not None:
        fv = li.get("FvFileName")
        what = guids.describe(fv) if fv else li.get("FilePathText") or "(no file path)"
        node.title = f"0x{base:x} +0x{size:x} {what}"
    return node


def decode_loaded_image(mem: Memory, address: int, width: int = 8) -> Node:
    ls = S.EFI_LOADED_IMAGE_PROTOCOL(width)
    node = Node("efi-loaded-image-protocol", f"EFI_LOADED_IMAGE_PROTOCOL at 0x{address:x}")
    li = read_fields(node, mem, address, ls, "EFI_LOADED_IMAGE_PROTOCOL")
    if li is None:
        return node
    for name in ("ImageCodeType", "ImageDataType"):
        v = getattr(li, name)
        node.field(name).display = enum_name(EFI_MEMORY_TYPE, v) or f"0x{v:x}"
    node.field("ImageBase").display = f"0x{li.ImageBase:x}"
    node.field("ImageSize").display = f"0x{li.ImageSize:x}"
    if li.FilePath:
        dp = read_device_path(mem, li.FilePath)
        node.append(dp)
        node.add("FilePathText", dp.get("DevicePath"))
        fv_file = dp.get("FvFileName")
        if fv_file is not None:
            node.add("FvFileName", fv_file, display=guids.describe(fv_file))
    node.title = f"EFI_LOADED_IMAGE_PROTOCOL: 0x{li.ImageBase:x} +0x{li.ImageSize:x}"
    return node


def read_device_path(mem: Memory, address: int) -> Node:
    """A device path read node by node through memory (bounded), decoded by decoders.devicepath;
    the MEDIA_PIWG_FW_FILE_DP (4/6) GUID, when present, is the field "FvFileName"."""
    raw = bytearray()
    problem = None
    while len(raw) < MAX_DEVICE_PATH_BYTES:
        try:
            h = mem.read(address + len(raw), 4)
        except Unreadable as e:
            problem = f"device path node at 0x{address + len(raw):x} not readable: {e}"
            break
        dtype, length = h[0], int.from_bytes(h[2:4], "little")
        if length < 4 or len(raw) + length > MAX_DEVICE_PATH_BYTES:
            raw += h   # let the decoder report the bad length
            break
        try:
            raw += mem.read(address + len(raw), length)
        except Unreadable as e:
            problem = f"device path node at 0x{address + len(raw):x} ({length} bytes) not readable: {e}"
            raw += h
            break
        if dtype == END_TYPE and h[1] == 0xFF:
            break
    space = _space("EFI_DEVICE_PATH_PROTOCOL", address, bytes(raw))
    node = decode_device_path(space, 0, len(raw))
    if problem:
        node.problem(len(raw), problem)
    for off, dtype, sub, length, _text in dp_walk(bytes(raw))[0]:
        if dtype == S.MEDIA_DEVICE_PATH and sub == S.MEDIA_PIWG_FW_FILE_DP and length >= 20:
            node.add("FvFileName", guids.from_bytes(raw[off + 4:off + 20]), off + 4, 16)
            break
    return node


__all__ = ["decode_system_table_pointer", "scan_system_table_pointer", "decode_system_table", "config_tables",
           "decode_debug_image_info", "decode_debug_image_entry", "decode_loaded_image", "read_device_path"]
