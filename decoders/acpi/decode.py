"""Decode ACPI tables into Nodes (ACPI 6.5 ch. 5; edk2 MdePkg/Include/IndustryStandard/Acpi65.h).

Every table: its header and checksum (FACS has none), then a decoded body for the tables listed in
BODY_DECODERS; anything else is shown raw, never fatal. `decode_acpi_from_rsdp` follows the
RSDP through the XSDT (else RSDT) and the FADT to DSDT and FACS, reading through a Memory.
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Callable, Iterator

from decoders import budget
from decoders.acpi import names
from decoders.acpi import structs as S
from decoders.acpi.mpwakeup import follow_mp_wakeup
from decoders.display import flags_text
from decoders.layout import Layout
from decoders.memory import Memory, Unreadable
from decoders.model import Node, Space

# Bounds: a hostile Length or entry count must not make us read or loop without end.
MAX_TABLE_SIZE = 16 << 20     # the largest real DSDTs are a few hundred KiB
MAX_TABLES = 256              # entries followed from one XSDT/RSDT
MAX_SUBTABLES = 4096          # MADT/SRAT/DMAR structures in one table
# Structures (MADT/SRAT/DMAR subtables, MCFG entries, DMAR device scopes) decoded in one decode,
# across all its tables: each is a Node of a few fields, about 2 KB of Python objects. A real
# machine has a few hundred (a 256-CPU MADT is 512 entries); an XSDT of 256 MADTs of 4,096
# entries each would be a million, past the memory budget. Each also takes a Node from the
# decode's node budget (decoders/budget.py).
MAX_STRUCTURES = 16384
MAX_SLIT_LOCALITIES = 256     # a 256x256 matrix is 64 KiB; more is not a real machine


_STRUCTURES_LEFT: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("acpi_structures",
                                                                                   default=None)


@contextlib.contextmanager
def decode_scope() -> Iterator[None]:
    """One ACPI decode (a table, an RSDP walk, a folder or an acpidump file): the decode's budget
    and the MAX_STRUCTURES count; reentrant, so a walk shares them with the tables it decodes."""
    with budget.scope():
        if _STRUCTURES_LEFT.get() is not None:
            yield
            return
        token = _STRUCTURES_LEFT.set([MAX_STRUCTURES])
        try:
            yield
        finally:
            _STRUCTURES_LEFT.reset(token)


def _take_structure() -> str | None:
    """None when one more structure may be decoded, else the budget that refuses it."""
    left = _STRUCTURES_LEFT.get()
    if left is not None and left[0] <= 0:
        return f"the budget is {MAX_STRUCTURES:,} structures in one decode"
    b = budget.current()
    if not b.take_node():
        return b.describe("nodes")
    if left is not None:
        left[0] -= 1
    return None


def _left_out(node: Node, o: int, rest: int, label: str, why: str) -> None:
    node.warn(o, f"{rest:,} more {label} structures not shown; {why}")


def _count_structures(data, o: int, end: int, header_size: int, wide: bool) -> int:
    """How many {Type, Length} structures are left from `o` (headers only, nothing decoded)."""
    count = 0
    while o + header_size <= end:
        length = int.from_bytes(data[o + 2:o + 4], "little") if wide else data[o + 1]
        if length < header_size:
            return count + 1
        o += length
        count += 1
    return count


def _ascii(raw: bytes) -> str:
    return bytes(raw).decode("ascii", errors="replace").rstrip("\x00")


def _gas_text(g: dict) -> str:
    space = names.ADDRESS_SPACES.get(g["AddressSpaceId"], f"space 0x{g['AddressSpaceId']:x}")
    return (f"{space} 0x{g['Address']:x} (width {g['RegisterBitWidth']}, offset {g['RegisterBitOffset']}, "
            f"access {names.ACCESS_SIZES.get(g['AccessSize'], g['AccessSize'])})")


def add_struct_fields(node: Node, struct: Layout, data, offset: int, end: int,
                      display: dict[str, Callable] | None = None) -> int:
    """Add the fields of `struct` at data[offset:] that end at or before `end` (a table's Length).

    Fields past `end` are left out (an older revision of the table), which is how one declaration
    serves every revision. Returns the offset after the last field added."""
    display = display or {}
    fit = [m for m in struct.members if offset + m[1] + m[2] <= end]
    if not fit:
        return offset
    # The record is unpacked in one call; bytes past `end` are read as zeros, and their members
    # are not added.
    raw = bytes(data[offset:min(end, offset + struct.size)])
    values = struct.values(raw.ljust(struct.size, b"\0"))
    for (name, rel, size, _), value in zip(fit, values):
        if name in struct.nested:  # a Generic Address Structure
            node.add(name, value, offset + rel, size, _gas_text(value))
        else:
            if isinstance(value, bytes) and name.startswith(("Signature", "Oem", "Creator")):
                value = _ascii(value)
            fmt = display.get(name)
            node.add(name, value, offset + rel, size, fmt(value) if fmt else None)
    _, rel, size, _ = fit[-1]
    return offset + rel + size


def checksum_ok(data, offset: int, length: int) -> bool:
    return sum(data[offset:offset + length]) & 0xFF == 0


# -- RSDP ---------------------------------------------------------------------------------------
def decode_rsdp(data, offset: int = 0, space: Space | None = None) -> Node:
    space = space or Space("rsdp", data, None)
    node = Node("acpi-rsdp", "RSDP", space, offset, S.RSDP_V1_SIZE)
    if len(data) - offset < S.RSDP_V1_SIZE:
        node.problem(offset, f"RSDP needs 20 bytes, {len(data) - offset} available")
        return node
    rev = data[offset + 15]
    size = S.RSDP_V2_SIZE if rev >= 2 else S.RSDP_V1_SIZE
    end = min(len(data), offset + size)
    add_struct_fields(node, S.RSDP, data, offset, end)
    node.size = end - offset
    if bytes(data[offset:offset + 8]) != b"RSD PTR ":
        node.problem(offset, "Signature is not 'RSD PTR '")
    if not checksum_ok(data, offset, S.RSDP_V1_SIZE):
        node.problem(offset + 8, "Checksum over the first 20 bytes is not zero")
    if rev >= 2:
        if end - offset < S.RSDP_V2_SIZE:
            node.problem(offset + 20, f"Revision {rev} RSDP needs 36 bytes, {end - offset} available")
        else:
            length = node.get("Length")
            if length != S.RSDP_V2_SIZE:
                node.warn(offset + 20, f"Length {length} (expected 36)")
            if not checksum_ok(data, offset, S.RSDP_V2_SIZE):
                node.problem(offset + 32, "ExtendedChecksum over 36 bytes is not zero")
    oem = node.get("OemId", "")
    node.title = f"RSDP rev {rev} ({'ACPI 2.0+' if rev >= 2 else 'ACPI 1.0'}) {oem}"
    return node


def find_rsdp(data, limit: int = 1 << 16) -> list[int]:
    """Offsets of 'RSD PTR ' whose first 20 bytes sum to zero, at any alignment: on UEFI systems the
    RSDP is found through the configuration table, and ACPI 6.5 §5.2.5.1's 16-byte alignment is for
    the legacy BIOS search areas. At most `limit` hits are returned."""
    hits, start = [], 0
    mv = bytes(data)
    while len(hits) < limit:
        i = mv.find(b"RSD PTR ", start)
        if i < 0:
            break
        if checksum_ok(mv, i, S.RSDP_V1_SIZE) and len(mv) - i >= S.RSDP_V1_SIZE:
            hits.append(i)
        start = i + 1
    return hits


# -- tables --------------------------------------------------------------------------------------
def decode_table(data, offset: int = 0, space: Space | None = None, name: str | None = None) -> Node:
    """One ACPI table at data[offset:]: header, checksum, decoded body."""
    with decode_scope():
        return _decode_table(data, offset, space, name)


def _decode_table(data, offset: int, space: Space | None, name: str | None) -> Node:
    space = space or Space(name or "acpi", data, None)
    avail = len(data) - offset
    node = Node("acpi-table", "ACPI table", space, offset, max(0, avail))
    if avail < 8:
        node.problem(offset, f"table header needs at least 8 bytes (Signature, Length), {avail} available")
        return node
    sig = _ascii(bytes(data[offset:offset + 4]))
    length = int.from_bytes(data[offset + 4:offset + 8], "little")
    if sig == "FACS":
        return _decode_facs(node, data, offset, length, avail)
    end = offset + min(length, avail)
    if length < S.HEADER_SIZE:
        node.problem(offset + 4, f"Length {length} is shorter than the 36-byte header")
        end = offset + min(avail, S.HEADER_SIZE)
    elif length > avail:
        node.problem(offset + 4, f"Length {length} runs past the end of the data ({avail} bytes available)")
    elif length > MAX_TABLE_SIZE:
        node.problem(offset + 4, f"Length {length} is larger than any real table ({MAX_TABLE_SIZE})")
        end = offset + MAX_TABLE_SIZE
    node.size = end - offset
    add_struct_fields(node, S.HEADER, data, offset, end)
    node.title = f"{sig} {names.SIGNATURES.get(sig, '')}".rstrip() + \
        f"  {node.get('OemId', '')}/{node.get('OemTableId', '')} rev {node.get('Revision', '?')}"
    if S.HEADER_SIZE <= length <= avail and not checksum_ok(data, offset, length):
        node.problem(offset + 9, f"Checksum: bytes sum to 0x{sum(data[offset:offset + length]) & 0xFF:02x}, not 0")
    if end - offset <= S.HEADER_SIZE:
        return node
    body = BODY_DECODERS.get(sig)
    if body is not None:
        body(node, data, offset + S.HEADER_SIZE, end)
    elif sig in ("DSDT", "SSDT"):
        node.add("DefinitionBlock", bytes(data[offset + S.HEADER_SIZE:end]), offset + S.HEADER_SIZE,
                 end - offset - S.HEADER_SIZE, f"{end - offset - S.HEADER_SIZE} bytes of AML")
    else:
        node.add("Body", bytes(data[offset + S.HEADER_SIZE:end]), offset + S.HEADER_SIZE,
                 end - offset - S.HEADER_SIZE)
        node.note(offset, f"{sig}: body not decoded, shown raw")
    return node


def _decode_facs(node: Node, data, offset: int, length: int, avail: int) -> Node:
    # FACS has no checksum field (ACPI 6.5 §5.2.10); Length is 64 or more.
    end = offset + min(max(length, 0), avail)
    if length < 64:
        node.problem(offset + 4, f"FACS Length {length} is shorter than 64")
    if length > avail:
        node.problem(offset + 4, f"FACS Length {length} runs past the end of the data ({avail} available)")
    add_struct_fields(node, S.FACS, data, offset, end,
                      {"Flags": lambda v: flags_text(v, names.FACS_FLAGS)})
    node.size = end - offset
    node.title = f"FACS Firmware ACPI Control Structure  version {node.get('Version', '?')}"
    return node


def _pointer_fields(node: Node, data, start: int, end: int, width: int) -> None:
    count = (end - start) // width
    if (end - start) % width:
        node.warn(start, f"{(end - start) % width} trailing bytes after {count} entries")
    for i in range(min(count, MAX_TABLES)):
        o = start + i * width
        node.add(f"Entry[{i}]", int.from_bytes(data[o:o + width], "little"), o, width)
    if count > MAX_TABLES:
        node.problem(start, f"{count} entries; only the first {MAX_TABLES} are shown")


def _rsdt(node, data, start, end):
    _pointer_fields(node, data, start, end, 4)


def _xsdt(node, data, start, end):
    _pointer_fields(node, data, start, end, 8)


def _fadt(node, data, start, end):
    add_struct_fields(node, S.FADT, data, start, end, {
        "PreferredPmProfile": lambda v: names.PM_PROFILES.get(v, f"reserved ({v})"),
        "Flags": lambda v: flags_text(v, names.FADT_FLAGS),
        "IaPcBootArch": lambda v: flags_text(v, names.IAPC_BOOT_ARCH),
    })
    x_facs, facs = node.get("XFirmwareCtrl"), node.get("FirmwareCtrl")
    if x_facs and facs and x_facs != facs:
        node.warn(node.field("XFirmwareCtrl").offset, "FirmwareCtrl and XFirmwareCtrl differ (X_ wins)")
    x_dsdt, dsdt = node.get("XDsdt"), node.get("Dsdt")
    if x_dsdt and dsdt and x_dsdt != dsdt:
        node.warn(node.field("XDsdt").offset, "Dsdt and XDsdt differ (X_ wins)")


def _subtables(node: Node, data, start: int, end: int, table: dict, other: dict, label: str,
               header_size: int = 2, wide: bool = False) -> None:
    """Walk {Type, Length} structures (u8/u8, or u16/u16 when `wide`) from `start` to `end`."""
    o, count = start, 0
    while o + header_size <= end:
        why = f"the budget is {MAX_SUBTABLES:,} structures in one table" if count >= MAX_SUBTABLES \
            else _take_structure()
        if why is not None:
            _left_out(node, o, _count_structures(data, o, end, header_size, wide), label, why)
            return
        if wide:
            typ, length = int.from_bytes(data[o:o + 2], "little"), int.from_bytes(data[o + 2:o + 4], "little")
        else:
            typ, length = data[o], data[o + 1]
        struct = table.get(typ)
        name = struct.name if struct is not None else \
            other.get(typ, f"{'OEM' if typ >= 0x80 and not wide else 'Reserved'} type 0x{typ:x}")
        sub = node.append(Node(f"acpi-{label}", f"{name}", node.space, o, max(length, header_size)))
        sub.add("Type", typ, o, 2 if wide else 1, name)
        sub.add("Length", length, o + (2 if wide else 1), 2 if wide else 1)
        if length < header_size:
            sub.problem(o + 1, f"Length {length} is shorter than the {header_size}-byte header; walk stops")
            return
        if o + length > end:
            sub.problem(o + 1, f"Length {length} runs past the end of the table at 0x{end:x}; walk stops")
            return
        if struct is not None:
            after = add_struct_fields(sub, struct, data, o + header_size, o + length, SUBTABLE_DISPLAY)
            _subtable_extras(sub, typ, label, data, after, o + length)
        else:
            sub.add("Data", bytes(data[o + header_size:o + length]), o + header_size, length - header_size)
            if typ < 0x80 or wide:
                sub.note(o, f"{label} structure type 0x{typ:x} not decoded, shown raw")
        sub.title = _subtable_title(sub, name)
        o += length
        count += 1
    if o != end:
        node.warn(o, f"{end - o} bytes after the last {label} structure")


SUBTABLE_DISPLAY = {
    "Flags": lambda v: f"0x{v:x}",
}


def _subtable_title(sub: Node, name: str) -> str:
    for key in ("ApicId", "X2ApicId", "IoApicId", "AcpiProcessorUid"):
        if sub.field(key) is not None:
            return f"{name} {key}={sub.get(key)}"
    if sub.get("MailBoxAddress") is not None:
        return f"{name} v{sub.get('MailBoxVersion')} mailbox 0x{sub.get('MailBoxAddress'):x}"
    if sub.get("RegisterBaseAddress") is not None:
        return f"{name} 0x{sub.get('RegisterBaseAddress'):x}"
    return name


def _subtable_extras(sub: Node, typ: int, label: str, data, after: int, end: int) -> None:
    if label == "madt" and typ == 0x10:
        length = sub.get("Length")
        version = sub.get("MailBoxVersion")
        if length not in (16, 24):
            sub.warn(sub.offset + 1, f"Multiprocessor Wakeup Length {length}: ACPI 6.4/6.5 use 16, 6.6 uses 24")
        elif (length == 16) != (version == 0):
            sub.warn(sub.offset + 2, f"MailBoxVersion {version} with Length {length} "
                                     "(6.5: version 0 / 16 bytes; 6.6: version 1 / 24 bytes)")
    if label == "madt" and typ in (0x00, 0x09):
        flags = sub.get("Flags")
        if flags is not None:
            sub.field("Flags").display = flags_text(flags, names.LOCAL_APIC_FLAGS)
    if label == "srat" and typ == 1 and sub.get("LengthLow") is not None and sub.get("LengthHigh") is not None:
        base = sub.get("AddressBaseLow") | sub.get("AddressBaseHigh", 0) << 32
        size = sub.get("LengthLow") | sub.get("LengthHigh") << 32
        sub.add("Range", (base, size), None, None, f"0x{base:x}-0x{base + size - 1:x} ({size >> 20} MiB)")
        sub.field("Flags").display = flags_text(sub.get("Flags"), names.SRAT_MEMORY_FLAGS)
    if label == "dmar" and typ in (0, 1, 2, 5, 6):
        _dmar_scopes(sub, data, after, end)
    if label == "dmar" and typ == 4 and after < end:
        sub.add("ObjectName", _ascii(bytes(data[after:end])), after, end - after)
    if after < end and label != "dmar" and sub.get("Type") not in (0x07,):
        sub.add("Trailing", bytes(data[after:end]), after, end - after)


def _dmar_scopes(sub: Node, data, o: int, end: int) -> None:
    while o + 6 <= end:
        why = _take_structure()
        if why is not None:
            _left_out(sub, o, _count_structures(data, o, end, 6, False), "device scope", why)
            return
        typ, length = data[o], data[o + 1]
        scope = sub.append(Node("acpi-dmar-scope", f"Device scope {names.DMAR_SCOPE_TYPES.get(typ, typ)}",
                                sub.space, o, length))
        if length < 6 or o + length > end:
            scope.problem(o + 1, f"device scope Length {length} is invalid (needs 6..{end - o})")
            return
        add_struct_fields(scope, S.DMAR_DEVICE_SCOPE, data, o, o + 6)
        path = [(data[p], data[p + 1]) for p in range(o + 6, o + length - 1, 2)]
        scope.add("Path", path, o + 6, length - 6, "/".join(f"{d:02x}.{f:x}" for d, f in path))
        scope.title += f" bus 0x{scope.get('StartBusNumber'):x} " + scope.field("Path").text
        o += length


def _madt(node, data, start, end):
    after = add_struct_fields(node, S.MADT, data, start, end,
                              {"Flags": lambda v: flags_text(v, names.MADT_FLAGS)})
    _subtables(node, data, after, end, S.MADT_SUBTABLES, S.MADT_OTHER_NAMES, "madt")


def _mcfg(node, data, start, end):
    o = add_struct_fields(node, S.MCFG, data, start, end)
    while o + 16 <= end:
        why = _take_structure()
        if why is not None:
            _left_out(node, o, (end - o) // 16, "MCFG allocation", why)
            return
        e = node.append(Node("acpi-mcfg-entry", "", node.space, o, 16))
        add_struct_fields(e, S.MCFG_ENTRY, data, o, o + 16)
        e.title = (f"ECAM 0x{e.get('BaseAddress'):x} segment {e.get('PciSegmentGroupNumber')} "
                   f"buses {e.get('StartBusNumber'):#x}-{e.get('EndBusNumber'):#x}")
        o += 16
    if o != end:
        node.warn(o, f"{end - o} trailing bytes (MCFG entries are 16 bytes)")


def _hpet(node, data, start, end):
    add_struct_fields(node, S.HPET, data, start, end)


def _tpm2(node, data, start, end):
    struct = S.TPM2 if (node.get("Revision") or 0) >= 4 else S.TPM2_REV3
    o = add_struct_fields(node, struct, data, start, end,
                          {"StartMethod": lambda v: names.TPM2_START_METHODS.get(v, f"reserved ({v})"),
                           "PlatformClass": lambda v: {0: "client", 1: "server"}.get(v, str(v))})
    rest = end - o
    # Start-method parameters, then the optional LAML u32 + LASA u64 (12 bytes) at the very end.
    params = rest - 12 if rest >= 12 + 12 else rest
    if params > 0:
        node.add("StartMethodSpecificParameters", bytes(data[o:o + params]), o, params)
        o += params
    if end - o >= 12:
        node.add("Laml", int.from_bytes(data[o:o + 4], "little"), o, 4, f"{int.from_bytes(data[o:o + 4], 'little')} bytes")
        node.add("Lasa", int.from_bytes(data[o + 4:o + 12], "little"), o + 4, 8)


def _tcpa(node, data, start, end):
    add_struct_fields(node, S.TCPA_CLIENT, data, start, end,
                      {"PlatformClass": lambda v: {0: "client", 1: "server"}.get(v, str(v))})
    if node.get("PlatformClass") == 1:
        node.note(start, "server TCPA layout differs after PlatformClass; fields shown as the client layout")


def _ccel(node, data, start, end):
    add_struct_fields(node, S.CCEL, data, start, end,
                      {"CcType": lambda v: names.CC_TYPES.get(v, f"reserved ({v})")})


def _tdel(node, data, start, end):
    add_struct_fields(node, S.TDEL, data, start, end)


def _bgrt(node, data, start, end):
    add_struct_fields(node, S.BGRT, data, start, end,
                      {"ImageType": lambda v: names.BGRT_IMAGE_TYPES.get(v, f"reserved ({v})"),
                       "Status": lambda v: f"0x{v:x} ({'displayed' if v & 1 else 'not displayed'})"})


def _waet(node, data, start, end):
    add_struct_fields(node, S.WAET, data, start, end,
                      {"EmulatedDeviceFlags": lambda v: flags_text(v, names.WAET_FLAGS)})


def _srat(node, data, start, end):
    after = add_struct_fields(node, S.SRAT, data, start, end)
    _subtables(node, data, after, end, S.SRAT_SUBTABLES, {}, "srat")


def _slit(node, data, start, end):
    o = add_struct_fields(node, S.SLIT, data, start, end)
    n = node.get("NumberOfSystemLocalities")
    if n is None:
        return
    if n > MAX_SLIT_LOCALITIES or n * n > end - o:
        node.problem(start, f"NumberOfSystemLocalities {n} needs {n * n} matrix bytes, {end - o} available")
        n = min(MAX_SLIT_LOCALITIES, int((end - o) ** 0.5))
    for i in range(n):
        row = list(data[o + i * n:o + (i + 1) * n])
        node.add(f"Entry[{i}]", row, o + i * n, n, " ".join(str(v) for v in row))


def _dmar(node, data, start, end):
    after = add_struct_fields(node, S.DMAR, data, start, end,
                              {"Flags": lambda v: flags_text(v, names.DMAR_FLAGS),
                               "HostAddressWidth": lambda v: f"{v} ({v + 1}-bit DMA addresses)"})
    _subtables(node, data, after, end, S.DMAR_SUBTABLES, {}, "dmar", header_size=4, wide=True)


def _spcr(node, data, start, end):
    add_struct_fields(node, S.SPCR, data, start, end,
                      {"InterfaceType": lambda v: names.SPCR_INTERFACES.get(v, f"0x{v:x}"),
                       "BaudRate": lambda v: {0: "as is", 3: "9600", 4: "19200", 6: "57600",
                                              7: "115200"}.get(v, f"reserved ({v})")})


BODY_DECODERS: dict[str, Callable] = {
    "RSDT": _rsdt, "XSDT": _xsdt, "FACP": _fadt, "APIC": _madt, "MCFG": _mcfg, "HPET": _hpet,
    "TPM2": _tpm2, "TCPA": _tcpa, "CCEL": _ccel, "TDEL": _tdel, "BGRT": _bgrt, "WAET": _waet,
    "SRAT": _srat, "SLIT": _slit, "DMAR": _dmar, "SPCR": _spcr,
}


# -- following pointers through memory -----------------------------------------------------------
def _read_table(mem: Memory, address: int, parent: Node) -> Node | None:
    try:
        head = mem.read(address, 8)
    except Unreadable as e:
        parent.problem(None, f"table at 0x{address:x} is not readable: {e}")
        return None
    length = int.from_bytes(head[4:8], "little")
    size = min(max(length, S.HEADER_SIZE), MAX_TABLE_SIZE)
    try:
        raw = mem.read(address, size)
    except Unreadable:
        raw = head
        try:
            raw = mem.read(address, S.HEADER_SIZE)
        except Unreadable:
            pass
    sig = _ascii(head[:4]) or "????"
    space = Space(f"{sig}@0x{address:x}", raw, address)
    return decode_table(raw, 0, space)


def decode_acpi_from_rsdp(mem: Memory, rsdp_address: int) -> Node:
    """The whole ACPI set: RSDP → XSDT (else RSDT) → tables; FADT → DSDT and FACS."""
    with decode_scope():
        return _from_rsdp(mem, rsdp_address)


def _from_rsdp(mem: Memory, rsdp_address: int) -> Node:
    root = Node("acpi", f"ACPI tables (RSDP at 0x{rsdp_address:x})")
    try:
        raw = mem.read(rsdp_address, S.RSDP_V2_SIZE)
    except Unreadable:
        try:
            raw = mem.read(rsdp_address, S.RSDP_V1_SIZE)
        except Unreadable as e:
            root.problem(None, f"RSDP not readable: {e}")
            return root
    rsdp = root.append(decode_rsdp(raw, 0, Space(f"RSDP@0x{rsdp_address:x}", raw, rsdp_address)))
    pointers: list[int] = []
    seen: set[int] = set()
    root_table = None
    if rsdp.get("Revision", 0) >= 2 and rsdp.get("XsdtAddress"):
        root_table = _read_table(mem, rsdp.get("XsdtAddress"), root)
    if (root_table is None or root_table.problems) and rsdp.get("RsdtAddress"):
        rsdt = _read_table(mem, rsdp.get("RsdtAddress"), root)
        if root_table is None:
            root_table = rsdt
        elif rsdt is not None:
            root.append(rsdt)
            seen.add(rsdp.get("RsdtAddress"))
    if root_table is None:
        root.problem(None, "neither an XSDT nor an RSDT could be read")
        return root
    root.append(root_table)
    seen.add(root_table.address)
    pointers = [f.value for f in root_table.fields if f.name.startswith("Entry[")]
    queue = list(pointers)
    while queue and len(root.children) < MAX_TABLES:
        address = queue.pop(0)
        if address in seen or not address:
            continue
        seen.add(address)
        table = _read_table(mem, address, root)
        if table is None:
            continue
        root.append(table)
        if table.title.startswith("APIC"):
            # ACPI 6.4 §5.2.12.19: the Multiprocessor Wakeup entry points at a mailbox in memory.
            follow_mp_wakeup(table, mem)
        if table.title.startswith("FACP"):
            for name in ("XDsdt", "Dsdt", "XFirmwareCtrl", "FirmwareCtrl"):
                v = table.get(name)
                if v and (name.startswith("X") or table.get("X" + name) in (None, 0)):
                    queue.append(v)
    return root
