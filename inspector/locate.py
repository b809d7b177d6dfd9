"""Find the firmware's structures in guest memory and decode them into Nodes: one route for a
memory dump, a live stop and anything else that offers a Memory and its RAM ranges.

`locate(memory, ram_ranges, names)` follows (UEFI 2.10 §4.3, §4.6; PI vol. 3 §5; ACPI 6.5 §5.2.5;
TCG PC Client PFP 1.05 §10; UEFI 2.10 §38.4 for the CC event log):
1. EFI_SYSTEM_TABLE_POINTER: "IBI SYST" on a 4 MiB boundary, CRC32 checked
   (MdeModulePkg/Core/Dxe/Misc/DebugImageInfo.c allocates it 4 MiB-aligned);
2. EFI_SYSTEM_TABLE and its configuration tables, by GUID;
3. what they point to: the (relocated, DXE-time) HOB list, ACPI through the RSDP (else the legacy
   0xE0000-0xFFFFF scan), the TPM and CC event logs (LASA of the TPM2/CCEL/TDEL tables, else a
   bounded scan for "Spec ID Event03"), the debug image info table and its loaded images, named by
   their FvFile GUID (or the MODULE HOB at their base) through `names`, the FFS UI names.
Whatever is not found becomes a note saying where we looked. `dump_overview(dump)` is the same
route over a memory dump, under the dump's own node.
"""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from decoders import budget, guids
from decoders.acpi import decode_acpi_from_rsdp, find_rsdp
from decoders.efi import (config_tables, decode_debug_image_info, decode_system_table,
                          decode_system_table_pointer, scan_system_table_pointer)
from decoders.efi.tables import (GUID_ACPI10, GUID_ACPI20, GUID_CC_FINAL_EVENTS, GUID_DEBUG_IMAGE_INFO,
                                 GUID_HOB_LIST, GUID_TCG2_FINAL_EVENTS)
from decoders.eventlog import decode_event_log
from decoders.hob import decode_hob_list
from decoders.memory import Memory, Unreadable
from decoders.model import Node

if TYPE_CHECKING:                      # only dump_overview takes a Dump; live sessions need no ELF reader
    from inspector.dump import Dump

# The legacy RSDP area (ACPI 6.5 §5.2.5.1: the BIOS read-only area 0xE0000-0xFFFFF, 16-byte steps).
LEGACY_RSDP = (0xE0000, 0x20000)
SPEC_ID_03 = b"Spec ID Event03\0"
# The TCG_PCR_EVENT header before the Spec ID struct: PCRIndex, EventType, Digest[20], EventSize.
TCG_PCR_EVENT_HEADER = 32
EV_NO_ACTION = 3
# Tcg2Dxe's log area is PcdTcgLogAreaMinLen = 0x10000 (SecurityPkg.dec); read that much at a log
# found by scanning, and never more than MAX_LOG_BYTES from a LAML.
SCANNED_LOG_BYTES = 0x10000
MAX_LOG_BYTES = 16 << 20
# The signature scan reads RAM in chunks through the Memory (a mapped dump file keeps RSS at one
# chunk), over at most MAX_SCAN_BYTES of RAM, keeping the first MAX_LOG_HITS candidates.
SCAN_CHUNK = 4 << 20
MAX_SCAN_BYTES = 64 << 30
MAX_LOG_HITS = 8
MODULE_HOB_GUID = uuid.UUID("f8e21975-0899-4f58-a4be-5525a9c6d77a")   # gEfiHobMemoryAllocModuleGuid
HOB_HANDOFF = 1                                                         # EFI_HOB_TYPE_HANDOFF (PiHob.h)

Ranges = list[tuple[int, int]]


def locate(memory: Memory, ram_ranges: Ranges, names: dict[uuid.UUID, str] | None = None, *,
           root: Node | None = None, logs: dict[str, int] | None = None) -> Node:
    """Decode what the system table leads to in `memory` (RAM in `ram_ranges`: (start, size)).
    `names` maps FFS file GUIDs to UI names for the loaded images. The nodes are appended to `root`
    (a new "firmware-tables" node by default), with the fields SystemTablePointer, SystemTable,
    Rsdp and Found. `logs` (event-log format -> address) is a cache for a caller that locates again
    in the same boot: logs it holds are re-read there, logs found are added to it."""
    if root is None:
        root = Node("firmware-tables", "firmware tables")
    with budget.scope():
        found = _locate(root, memory, ram_ranges, names or {}, logs)
    root.add("Found", found, display=", ".join(found) or "nothing")
    return root


def _locate(root: Node, mem: Memory, ranges: Ranges, names: dict, logs: dict[str, int] | None) -> list[str]:
    found: list[str] = []
    st = system_table(mem, ranges, root)
    by_guid = config_table_addresses(st)
    width = st.get("PointerSize", 8) if st is not None else 8
    if st is not None:
        found.append("system table")

    # -- HOB list (the relocated DXE copy: the PHIT's pointers are the PEI-time ones) ---------------
    hob = None
    if GUID_HOB_LIST in by_guid:
        hob = root.append(decode_hob_list(mem, by_guid[GUID_HOB_LIST]))
        hob.title = "HOB list (config table gEfiHobListGuid): " + hob.title
        found.append("HOB list")
        _phit_note(hob)
    else:
        root.note(None, "HOB list: no gEfiHobListGuid configuration table" +
                  ("" if st is not None else " (no system table)"))

    acpi = _acpi(root, mem, by_guid)
    if acpi is not None:
        found.append("ACPI")

    if logs:
        found += _known_logs(root, mem, logs)
    else:
        found += event_logs(root, mem, ranges, acpi, by_guid)
        if logs is not None:
            for log in root.children:
                if log.kind == "event-log" and log.get("Address") is not None:
                    logs[log.get("Format")] = log.get("Address")

    if GUID_DEBUG_IMAGE_INFO in by_guid:
        dbg = root.append(decode_debug_image_info(mem, by_guid[GUID_DEBUG_IMAGE_INFO], width))
        _name_images(dbg, hob, names)
        found.append(f"{len(dbg.children)} loaded images")
    else:
        root.note(None, "loaded images: no gEfiDebugImageInfoTableGuid configuration table")
    return found


def system_table(mem: Memory, ranges: Ranges, root: Node | None = None) -> Node | None:
    """The EFI_SYSTEM_TABLE through the first valid EFI_SYSTEM_TABLE_POINTER in `ranges`, or None.
    With `root`, the pointer and table nodes are appended there and what was skipped noted."""
    root = root if root is not None else Node("scratch", "")
    hits = scan_system_table_pointer(mem, ranges)
    if not hits:
        root.note(None, f"no EFI_SYSTEM_TABLE_POINTER ('IBI SYST' on a 4 MiB boundary) in "
                        f"{len(ranges)} RAM ranges: DxeCore has not made its tables yet, or this is not UEFI")
        return None
    for addr in hits:
        ptr = decode_system_table_pointer(mem, addr)
        if ptr.problems and addr != hits[-1]:
            root.note(addr, f"'IBI SYST' at 0x{addr:x} is not a valid EFI_SYSTEM_TABLE_POINTER "
                            f"({ptr.problems[0].message}); trying the next")
            continue
        root.append(ptr)
        root.add("SystemTablePointer", addr)
        base = ptr.get("EfiSystemTableBase")
        st = root.append(decode_system_table(mem, base))
        root.add("SystemTable", base)
        return st if st.space is not None else None
    return None


def config_table_addresses(st: Node | None) -> dict[uuid.UUID, int]:
    """VendorGuid -> VendorTable of the system table's configuration tables (the first of a GUID)."""
    by_guid: dict[uuid.UUID, int] = {}
    for g, a in config_tables(st) if st is not None else ():
        by_guid.setdefault(g, a)
    return by_guid


def _phit_note(hob: Node) -> None:
    """DxeCore copies the HOB list into pool memory (MdeModulePkg/Core/Dxe/Gcd/Gcd.c, "Relocate HOB
    List to an allocated pool buffer"); the PHIT keeps the PEI-time addresses."""
    phit = next((h for h in hob.children if h.get("HobType") == HOB_HANDOFF), None)
    end = phit.get("EfiEndOfHobList") if phit is not None else None
    start = hob.address
    if end is None or start is None:
        return
    if not start <= end <= start + hob.size:
        phit.note(phit.offset, f"EfiEndOfHobList 0x{end:x} is outside this list (0x{start:x}, {hob.size} bytes): "
                               "the PHIT still describes the PEI-time copy; DxeCore relocated the list")


def _acpi(root: Node, mem: Memory, by_guid: dict[uuid.UUID, int]) -> Node | None:
    for g in (GUID_ACPI20, GUID_ACPI10):
        if g in by_guid:
            node = root.append(decode_acpi_from_rsdp(mem, by_guid[g]))
            node.title += f" via config table {guids.name(g)}"
            root.add("Rsdp", by_guid[g])
            return node
    start, size = LEGACY_RSDP
    try:
        area = mem.read(start, size)
    except Unreadable:
        root.note(None, f"ACPI: no ACPI config table, and 0x{start:x}-0x{start + size - 1:x} is not readable")
        return None
    hits = [h for h in find_rsdp(area, 16) if h % 16 == 0]
    if not hits:
        root.note(None, f"ACPI: no ACPI config table (AcpiPlatformDxe has not installed the tables yet?) and no "
                        f"'RSD PTR ' in 0x{start:x}-0x{start + size - 1:x}")
        return None
    node = root.append(decode_acpi_from_rsdp(mem, start + hits[0]))
    node.title += " via the legacy 0xE0000-0xFFFFF scan"
    root.add("Rsdp", start + hits[0])
    return node


def _acpi_table(acpi: Node | None, *signatures: str) -> Node | None:
    if acpi is None:
        return None
    for t in acpi.children:
        if t.kind == "acpi-table" and t.bytes[:4].decode("ascii", "replace") in signatures:
            return t
    return None


def _log_label(fmt: str) -> str:
    return f"{'CC' if fmt == 'cc' else 'TPM'} event log"


def _known_logs(root: Node, mem: Memory, logs: dict[str, int]) -> list[str]:
    """The logs found earlier in this boot, re-read where they were (a log does not move)."""
    found = []
    for fmt, addr in logs.items():
        try:
            root.append(log_node(read_upto(mem, addr, SCANNED_LOG_BYTES), "auto", addr,
                                 "address found at an earlier stop"))
            found.append(_log_label(fmt))
        except Unreadable as e:
            root.problem(None, f"{fmt} event log at 0x{addr:x} not readable: {e}")
    return found


def event_logs(root: Node, mem: Memory, ranges: Ranges, acpi: Node | None,
               by_guid: dict[uuid.UUID, int]) -> list[str]:
    found = []
    tpm2 = _acpi_table(acpi, "TPM2", "TCPA")
    cc = _acpi_table(acpi, "CCEL", "TDEL")
    for table, kind in ((tpm2, "tcg"), (cc, "cc")):
        if table is None:
            continue
        sig = table.bytes[:4].decode("ascii")
        lasa, laml = table.get("Lasa"), table.get("Laml")
        if not lasa or not laml:
            root.note(None, f"{sig} table has no LASA/LAML: the log is not published there")
            continue
        try:
            data = mem.read(lasa, min(laml, MAX_LOG_BYTES))
        except Unreadable as e:
            root.note(None, f"{sig} LASA 0x{lasa:x} (LAML 0x{laml:x}) is not readable: {e}")
            continue
        if not any(data[:TCG_PCR_EVENT_HEADER + 16]):
            # Measured on OVMF under QEMU: the area QEMU's TPM2 table points at stays zero, and
            # Tcg2Dxe keeps its log in boot-services data it allocates (SecurityPkg/Tcg/Tcg2Dxe/Tcg2Dxe.c).
            root.note(None, f"{sig} LASA area at 0x{lasa:x} (0x{laml:x} bytes) is empty; scanning for the log")
            continue
        root.append(log_node(data, kind, lasa, f"{sig} LASA"))
        found.append(_log_label(kind))
    tpm_expected = tpm2 is not None or GUID_TCG2_FINAL_EVENTS in by_guid
    cc_expected = cc is not None or GUID_CC_FINAL_EVENTS in by_guid
    have = {c.get("Format") for c in root.children if c.kind == "event-log"}
    if (tpm_expected and "tcg" not in have) or (cc_expected and "cc" not in have):
        hits = scan_spec_id(mem, ranges)
        if not hits:
            root.note(None, "no 'Spec ID Event03' header in RAM although a TPM2/CCEL table or final-events "
                            "config table says there should be a log")
        for addr in hits:
            try:
                data = read_upto(mem, addr, SCANNED_LOG_BYTES)
            except Unreadable:
                continue
            log = log_node(data, "auto", addr, "'Spec ID Event03' scan")
            fmt = log.get("Format")
            if fmt in have:
                root.note(addr, f"another {fmt} event log header at 0x{addr:x} (a copy); not decoded")
                continue
            have.add(fmt)
            root.append(log)
            found.append(_log_label(fmt))
    elif not tpm_expected and not cc_expected:
        root.note(None, "event log: no TPM2/TCPA/CCEL/TDEL ACPI table and no TCG2/CC final-events config "
                        "table, so no measured boot; RAM not scanned")
    return found


def read_upto(mem: Memory, addr: int, size: int) -> bytes:
    """`size` bytes at addr, or as many as the memory holds there (halving down to 4 KiB)."""
    while True:
        try:
            return mem.read(addr, size)
        except Unreadable:
            if size <= 0x1000:
                raise
            size //= 2


def log_node(data: bytes, kind: str, address: int, source: str) -> Node:
    log = decode_event_log(data, kind=kind, space_name=f"eventlog@0x{address:x}")
    log.space.base = address
    log.add("Address", address, display=f"0x{address:x} ({source})")
    log.title = f"{log.title} at 0x{address:x} ({source})"
    return log


def scan_spec_id(mem: Memory, ranges: Ranges) -> list[int]:
    """Addresses of TCG_PCR_EVENT headers (EV_NO_ACTION, zero digest) followed by the
    "Spec ID Event03" signature, scanning RAM chunk by chunk (bounded)."""
    hits: list[int] = []
    scanned = 0
    overlap = TCG_PCR_EVENT_HEADER + len(SPEC_ID_03)
    for start, size in ranges:
        pos = start
        while pos < start + size and scanned < MAX_SCAN_BYTES and len(hits) < MAX_LOG_HITS:
            n = min(SCAN_CHUNK + overlap, start + size - pos)
            try:
                chunk = mem.read(pos, n)
            except Unreadable:
                pos += SCAN_CHUNK
                continue
            i = chunk.find(SPEC_ID_03)
            while i >= 0 and len(hits) < MAX_LOG_HITS:
                h = pos + i - TCG_PCR_EVENT_HEADER
                if i >= TCG_PCR_EVENT_HEADER and int.from_bytes(chunk[i - 28:i - 24], "little") == EV_NO_ACTION \
                        and not any(chunk[i - 24:i - 4]) and h not in hits:
                    hits.append(h)
                i = chunk.find(SPEC_ID_03, i + 1)
            pos += SCAN_CHUNK
            scanned += n
    return hits


# -- naming loaded images --------------------------------------------------------------------------
def ui_names(image_root: Node) -> dict[uuid.UUID, str]:
    """FFS file GUID -> its UI section's name, for a decoded firmware image (the first of a GUID)."""
    names: dict[uuid.UUID, str] = {}
    for f in image_root.find("ffs"):
        if f.get("UI") and f.get("Name") is not None:
            names.setdefault(f.get("Name"), f.get("UI"))
    return names


def _name_images(dbg: Node, hob: Node | None, ui: dict[uuid.UUID, str]) -> None:
    # Images without a FilePath (DxeCore in some edk2 versions: Image.c CoreInitializeImageServices
    # sets none) are matched to the MODULE memory-allocation HOB by their base (DxeLoad.c BuildModuleHob).
    modules = {}
    if hob is not None:
        for h in hob.children:
            if h.get("Name") == MODULE_HOB_GUID and h.get("ModuleName") is not None:
                modules[h.get("MemoryBaseAddress")] = h.get("ModuleName")
    for img in dbg.children:
        file_guid = img.get("FvFileName")
        source = "FvFile device path"
        if file_guid is None and img.get("ImageBase") in modules:
            file_guid, source = modules[img.get("ImageBase")], "MODULE HOB"
        if file_guid is None:
            continue
        name = ui.get(file_guid) or guids.name(file_guid)
        img.add("FileGuid", file_guid, display=guids.describe(file_guid) + f" (from the {source})")
        if name:
            img.add("Name", name, display=name + (" (FFS UI section)" if file_guid in ui else " (GUID name)"))
        base, size = img.get("ImageBase"), img.get("ImageSize")
        if base is not None and size is not None:
            img.title = f"{name or str(file_guid).upper()} at 0x{base:x} +0x{size:x}"


# -- a memory dump ---------------------------------------------------------------------------------
def dump_ram(dump: Dump) -> Ranges:
    return [(s.paddr, s.filesz) for s in dump.segments if s.filesz]


def dump_overview(dump: Dump, *, image=None) -> Node:
    """The "dump-overview" tree: the dump's own node, then what `locate` finds in it. `image` is a
    LoadedImage (inspector.image) or a path; by default the image given to open_dump, used to
    name loaded images by their FFS UI section."""
    root = Node("dump-overview", f"{dump.path.name}")
    root.append(dump.node())
    image = _dump_image(dump, image, root)
    locate(dump.memory, dump_ram(dump), ui_names(image.root) if image is not None else {}, root=root)
    found = root.get("Found") or []
    if len(dump.cpus) > 1:
        # More than the boot CPU: what MpInitLib gave the others (inspector/aps.py), from the CPU notes
        # and what was just located (loaded images name the module each AP's RIP is in; the MADT
        # Multiprocessor Wakeup mailbox of a TDX guest).
        from inspector.aps import dump_aps_node

        root.append(dump_aps_node(dump, root, image))
    root.title = f"{dump.path.name}: " + (", ".join(found) or "no firmware structures found")
    return root


def _dump_image(dump: Dump, image, root: Node):
    """The LoadedImage for naming loaded images: `image`, else the one open_dump mapped; None without."""
    if image is None:
        image = dump.image_path
    if image is None:
        return None
    if isinstance(image, (str, Path)):
        from inspector.image import ImageError, load_image
        try:
            image = load_image(image)
        except ImageError as e:
            root.warn(None, f"firmware image not decoded, loaded images keep their GUIDs: {e}")
            return None
    return image
