"""Walk and decode a PI HOB list (PI spec vol. 3 ch. 5; edk2 MdePkg/Include/Pi/PiHob.h).

The walk reads through a decoders.memory Memory (dumps, live targets); a file or blob is wrapped as
BytesMemory. It is bounded (MAX_HOBS, `limit` bytes), needs the END HOB, and stops with a located
problem on a HobLength that is 0, shorter than its type's struct, or runs past readable memory.
"""
from __future__ import annotations

import struct as _struct

from decoders import budget, guids
from decoders.hob import structs as s
from decoders.display import enum_name, flag_names
from decoders.hob.guid_payloads import decode_guid_data, size_text
from decoders.layout import Layout
from decoders.memory import BytesMemory, Memory, Unreadable
from decoders.model import Node, Space

# A real OVMF DXE HOB list has ~100-200 HOBs in ~13 KiB (Debian OVMF at DXE core entry); a PEI list with pool HOBs a few
# hundred KiB. These caps stop a hostile or corrupt chain long before it costs memory or time.
MAX_HOBS = 16384
MAX_HOB_LIST_BYTES = 4 << 20
HEADER_SIZE = s.EFI_HOB_GENERIC_HEADER.size
HOB_ALIGNMENT = 8  # MdeModulePkg/Core/Pei/Hob/Hob.c rounds HobLength up to 8

END_OF_HOB_LIST = 0xFFFF
HANDOFF, MEMORY_ALLOCATION, RESOURCE_DESCRIPTOR, GUID_EXTENSION = 1, 2, 3, 4
FV, CPU, MEMORY_POOL, FV2, LOAD_PEIM_UNUSED, UEFI_CAPSULE, FV3, UNUSED = 5, 6, 7, 9, 0xA, 0xB, 0xC, 0xFFFE

# HobType -> (struct name, struct) whose size is the minimum HobLength of that type.
TYPE_STRUCTS: dict[int, tuple[str, Layout]] = {
    HANDOFF: ("EFI_HOB_HANDOFF_INFO_TABLE", s.EFI_HOB_HANDOFF_INFO_TABLE),
    MEMORY_ALLOCATION: ("EFI_HOB_MEMORY_ALLOCATION", s.EFI_HOB_MEMORY_ALLOCATION),
    RESOURCE_DESCRIPTOR: ("EFI_HOB_RESOURCE_DESCRIPTOR", s.EFI_HOB_RESOURCE_DESCRIPTOR),
    GUID_EXTENSION: ("EFI_HOB_GUID_TYPE", s.EFI_HOB_GUID_TYPE),
    FV: ("EFI_HOB_FIRMWARE_VOLUME", s.EFI_HOB_FIRMWARE_VOLUME),
    CPU: ("EFI_HOB_CPU", s.EFI_HOB_CPU),
    MEMORY_POOL: ("EFI_HOB_MEMORY_POOL", s.EFI_HOB_MEMORY_POOL),
    FV2: ("EFI_HOB_FIRMWARE_VOLUME2", s.EFI_HOB_FIRMWARE_VOLUME2),
    UEFI_CAPSULE: ("EFI_HOB_UEFI_CAPSULE", s.EFI_HOB_UEFI_CAPSULE),
    FV3: ("EFI_HOB_FIRMWARE_VOLUME3", s.EFI_HOB_FIRMWARE_VOLUME3),
    LOAD_PEIM_UNUSED: ("EFI_HOB_GENERIC_HEADER", s.EFI_HOB_GENERIC_HEADER),
    UNUSED: ("EFI_HOB_GENERIC_HEADER", s.EFI_HOB_GENERIC_HEADER),
    END_OF_HOB_LIST: ("EFI_HOB_GENERIC_HEADER", s.EFI_HOB_GENERIC_HEADER),
}

ALLOCATION_NAMES = {
    s.ZERO_GUID: "generic",
    s.gEfiHobMemoryAllocStackGuid: "STACK",
    s.gEfiHobMemoryAllocBspStoreGuid: "BSP_STORE",
    s.gEfiHobMemoryAllocModuleGuid: "MODULE",
}


def hob_type_name(value: int) -> str | None:
    return enum_name(s.EFI_HOB_TYPE, value)


def resource_type_name(value: int) -> str:
    return enum_name(s.EFI_RESOURCE_TYPE, value) or f"0x{value:x}"


def memory_type_name(value: int) -> str:
    return enum_name(s.EFI_MEMORY_TYPE, value) or f"0x{value:x}"


def attribute_names(value: int) -> list[str]:
    """ResourceAttribute bits by name (PiHob.h EFI_RESOURCE_ATTRIBUTE_*), unknown bits as hex."""
    return flag_names(value, s.EFI_RESOURCE_ATTRIBUTE)


def range_text(start: int, length: int) -> str:
    if length <= 0:
        return f"0x{start:x} (0 bytes)"
    return f"0x{start:x}-0x{start + length - 1:x} ({size_text(length)})"


# ---- the walk ------------------------------------------------------------------------------------

def decode_hob_list(source: Memory | Space | bytes | bytearray | memoryview, address: int = 0, *,
                    limit: int = MAX_HOB_LIST_BYTES, max_hobs: int = MAX_HOBS) -> Node:
    """Decode the HOB list starting at `address`.

    `source` is a Memory (address = physical address), a Space (address = offset when the space
    has no base, else base + offset) or raw bytes (address = offset). Returns a "hob-list" Node
    whose children are "hob" Nodes; problems are located in the returned nodes' space.
    """
    with budget.scope():
        return _decode_list(source, address, limit, max_hobs)


def _decode_list(source, address: int, limit: int, max_hobs: int) -> Node:
    memory, base, space = as_memory(source, address)
    chunks, ended, walk_problems = walk(memory, address, limit, max_hobs)
    if space is None:
        # Read through a Memory: the nodes live in a space holding exactly the bytes read.
        space = Space(f"hob-list@0x{address:x}", b"".join(raw for _, raw, _ in chunks), base=address)

    total = sum(len(raw) for _, raw, _ in chunks)
    root = Node("hob-list", "", space, address - base, total)
    root.add("Address", address, None, None, f"0x{address:x}")
    b = budget.current()
    for n, (addr, raw, why) in enumerate(chunks):
        if not b.take_node():
            b.left_out(root, addr - base, len(chunks) - n, "HOBs", "nodes")
            break
        root.append(_decode_hob(space, addr - base, raw, why))
    root.add("HobCount", len(chunks))
    root.add("ListSize", total, None, None, f"0x{total:x}")
    for addr, message in walk_problems:
        root.problem(addr - base, message)
    if not ended:
        end = chunks[-1][0] - base if chunks else address - base
        root.problem(end, "the walk stopped without an END_OF_HOB_LIST HOB (type 0xFFFF)")
    root.title = f"HOB list at 0x{address:x}: {len(chunks)} HOBs, {total} bytes" + ("" if ended else ", no END")
    return root


def as_memory(source, address: int) -> tuple[Memory, int, Space | None]:
    """(memory to read, base that node offsets count from, space the nodes live in or None)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = Space("hob-list", source)
    if isinstance(source, Space):
        if source.data is None:
            raise TypeError("a Space without data: pass the Memory it stands for")
        base = source.base or 0
        return BytesMemory(source.data, base), base, source
    return source, address, None


def walk(memory: Memory, address: int, limit: int = MAX_HOB_LIST_BYTES, max_hobs: int = MAX_HOBS):
    """The raw HOBs: [(address, bytes, stop reason or None)], ended, [(address, problem)]."""
    chunks: list[tuple[int, bytes, str | None]] = []
    problems: list[tuple[int, str]] = []
    addr, total = address, 0
    for _ in range(max_hobs):
        try:
            header = memory.read(addr, HEADER_SIZE)
        except Unreadable as e:
            problems.append((addr, f"HOB header unreadable at 0x{addr:x}: {e}"))
            return chunks, False, problems
        if len(header) != HEADER_SIZE:  # a Memory must raise Unreadable, but do not trust it to
            problems.append((addr, f"short read of the HOB header at 0x{addr:x}"))
            return chunks, False, problems
        htype, hlen, _reserved = _struct.unpack("<HHI", header)
        stop = None
        if hlen == 0:
            stop = "HobLength is 0: the list is corrupt here, walk stopped"
        elif hlen < HEADER_SIZE:
            stop = f"HobLength {hlen} is shorter than the 8-byte EFI_HOB_GENERIC_HEADER, walk stopped"
        elif htype in TYPE_STRUCTS and hlen < TYPE_STRUCTS[htype][1].size:
            name, st = TYPE_STRUCTS[htype]
            stop = f"HobLength {hlen} is shorter than {name} ({st.size} bytes), walk stopped"
        elif total + hlen > limit:
            stop = f"HOB of {hlen} bytes would take the list past the {limit}-byte limit, walk stopped"
        if stop is not None:
            chunks.append((addr, header, stop))
            return chunks, False, problems
        try:
            raw = memory.read(addr, hlen)
        except Unreadable as e:
            chunks.append((addr, header, f"HobLength 0x{hlen:x} runs past the end of the buffer or "
                                         f"readable memory ({e}), walk stopped"))
            return chunks, False, problems
        if len(raw) != hlen:
            chunks.append((addr, header, f"short read of {len(raw)} of {hlen} bytes, walk stopped"))
            return chunks, False, problems
        chunks.append((addr, raw, None))
        total += hlen
        if htype == END_OF_HOB_LIST:
            return chunks, True, problems
        addr += hlen
    problems.append((addr, f"more than {max_hobs} HOBs without an END HOB, walk stopped"))
    return chunks, False, problems


# ---- one HOB ---------------------------------------------------------------------------------------

def _decode_hob(space: Space, off: int, raw: bytes, stop: str | None) -> Node:
    htype, hlen, reserved = _struct.unpack_from("<HHI", raw)
    tname = hob_type_name(htype)
    node = Node("hob", tname or f"unknown HOB type 0x{htype:04x}", space, off, len(raw))
    node.add("HobType", htype, off, 2, tname or f"0x{htype:04x} (unknown)")
    node.add("HobLength", hlen, off + 2, 2)
    node.add("Reserved", reserved, off + 4, 4)
    if stop is not None:
        node.problem(off + 2, stop)
        node.title += f" (HobLength {hlen})"
        return node
    if hlen % HOB_ALIGNMENT:
        node.warn(off + 2, f"HobLength {hlen} is not a multiple of 8 (edk2 aligns HOBs to 8, "
                           "MdeModulePkg/Core/Pei/Hob/Hob.c)")
    if tname is None:
        node.note(off, f"unknown HobType 0x{htype:04x}: shown raw, walk continues")
        _raw_data(node, raw, HEADER_SIZE)
        return node
    decode = _DECODERS.get(htype)
    if decode is not None:
        decode(node, raw)
    elif hlen > HEADER_SIZE:
        _raw_data(node, raw, HEADER_SIZE)
        node.title = f"{tname} ({hlen - HEADER_SIZE} bytes)"
    return node


def _raw_data(node: Node, raw: bytes, start: int) -> None:
    if len(raw) > start:
        node.add("Data", raw[start:], node.offset + start, len(raw) - start)


def _fields(node: Node, struct: Layout, raw: bytes, **kw):
    """The HOB's members after its generic header (the walk added those) as fields; the walk checked
    HobLength >= the record's size."""
    parsed = struct.parse(raw)
    struct.add_fields(node, parsed, node.offset, skip=s.HEADER_NAMES, **kw)
    return parsed


def _handoff(node: Node, raw: bytes) -> None:
    p = _fields(node, s.EFI_HOB_HANDOFF_INFO_TABLE, raw)
    if p.Version != 9:
        node.warn(node.offset + 8, f"Version {p.Version}, EFI_HOB_HANDOFF_TABLE_VERSION is 9")
    node.title = f"HANDOFF (PHIT) v{p.Version} {s.EFI_BOOT_MODE.get(p.BootMode, p.BootMode)}"


def _memory_allocation(node: Node, raw: bytes) -> None:
    name = guids.from_bytes(raw[8:24])
    module = name == s.gEfiHobMemoryAllocModuleGuid
    struct = s.EFI_HOB_MEMORY_ALLOCATION_MODULE if module else s.EFI_HOB_MEMORY_ALLOCATION
    if module and len(raw) < struct.size:
        node.problem(node.offset + 2, f"MODULE allocation HOB of {len(raw)} bytes is shorter than "
                                      f"EFI_HOB_MEMORY_ALLOCATION_MODULE ({struct.size} bytes)")
        struct, module = s.EFI_HOB_MEMORY_ALLOCATION, False
    kind = ALLOCATION_NAMES.get(name)
    p = _fields(node, struct, raw,
                displays={"Name": lambda g: f"{kind} ({guids.describe(g)})" if kind else guids.describe(g)})
    label = kind if kind and kind != "generic" else (None if kind else guids.describe(name))
    parts = ["MEMORY_ALLOCATION"] + ([label] if label else []) + [memory_type_name(p.MemoryType),
                                                                  range_text(p.MemoryBaseAddress, p.MemoryLength)]
    node.title = " ".join(parts)
    if module:
        node.title += f" entry 0x{p.EntryPoint:x}"
    if len(raw) > struct.size:
        _raw_data(node, raw, struct.size)


def _resource(node: Node, raw: bytes) -> None:
    p = _fields(node, s.EFI_HOB_RESOURCE_DESCRIPTOR, raw,
                displays={"ResourceAttribute": lambda v: "|".join(attribute_names(v)) or "0"})
    rtype = resource_type_name(p.ResourceType)
    rng = range_text(p.PhysicalStart, p.ResourceLength)
    node.add("Range", (p.PhysicalStart, p.PhysicalStart + p.ResourceLength), None, None, rng)
    node.title = f"RESOURCE_DESCRIPTOR {rtype} {rng}"
    if p.PhysicalStart + p.ResourceLength > 1 << 64:
        node.problem(node.offset + 32, "PhysicalStart + ResourceLength wraps past 2^64")


def _guid(node: Node, raw: bytes) -> None:
    p = _fields(node, s.EFI_HOB_GUID_TYPE, raw)
    size = s.EFI_HOB_GUID_TYPE.size
    data = raw[size:]
    label = guids.name(p.Name) or str(p.Name).upper()
    node.title = f"GUID_EXTENSION {label} ({len(data)} bytes)"
    if not decode_guid_data(node, p.Name, data, node.offset + size):
        _raw_data(node, raw, size)


def _volume(struct: Layout, label: str):
    def decode(node: Node, raw: bytes) -> None:
        p = _fields(node, struct, raw)
        node.title = f"{label} {range_text(p.BaseAddress, p.Length)}"
        if hasattr(p, "FvName"):
            node.title += f" {guids.name(p.FvName) or str(p.FvName).upper()}"
        if len(raw) > struct.size:
            _raw_data(node, raw, struct.size)
    return decode


def _cpu(node: Node, raw: bytes) -> None:
    p = _fields(node, s.EFI_HOB_CPU, raw)
    node.title = f"CPU memory space {p.SizeOfMemorySpace} bits, I/O space {p.SizeOfIoSpace} bits"


def _pool(node: Node, raw: bytes) -> None:
    node.title = f"MEMORY_POOL ({len(raw) - HEADER_SIZE} bytes)"
    _raw_data(node, raw, HEADER_SIZE)


def _end(node: Node, raw: bytes) -> None:
    node.title = "END_OF_HOB_LIST"


_DECODERS = {
    HANDOFF: _handoff,
    MEMORY_ALLOCATION: _memory_allocation,
    RESOURCE_DESCRIPTOR: _resource,
    GUID_EXTENSION: _guid,
    FV: _volume(s.EFI_HOB_FIRMWARE_VOLUME, "FV"),
    FV2: _volume(s.EFI_HOB_FIRMWARE_VOLUME2, "FV2"),
    FV3: _volume(s.EFI_HOB_FIRMWARE_VOLUME3, "FV3"),
    UEFI_CAPSULE: _volume(s.EFI_HOB_UEFI_CAPSULE, "UEFI_CAPSULE"),
    CPU: _cpu,
    MEMORY_POOL: _pool,
    END_OF_HOB_LIST: _end,
}
