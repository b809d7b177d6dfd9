"""Decode the body of the NV variable FV (OVMF_VARS): variable store, NV event-log area, FTW blocks.

Layout (`OvmfPkg/Include/Fdf/VarStore.fdf.inc`): after the FV header come the
VARIABLE_STORE_HEADER and the variables up to the store's Size, then the (empty) NV event-log
block, the FTW working block (EFI_FAULT_TOLERANT_WORKING_BLOCK_HEADER + write queue) and the
FTW spare area to the end of the FV. Walk rules follow edk2
`MdeModulePkg/Universal/Variable/RuntimeDxe/VariableParsing.c`; the working-block checks follow
`MdeModulePkg/Universal/FaultTolerantWriteDxe/UpdateWorkingBlock.c` and `FtwMisc.c`.
"""
from __future__ import annotations

import struct
import zlib

from decoders import guids
from decoders.display import flag_names
from decoders.efisig import efi_time_text
from decoders.errors import DecodeError
from decoders.model import Node, Space
from decoders.nvvars.structs import (AUTHENTICATED_VARIABLE_HEADER, EFI_FAULT_TOLERANT_WORKING_BLOCK_HEADER,
                                     EFI_FAULT_TOLERANT_WRITE_HEADER, EFI_FAULT_TOLERANT_WRITE_RECORD,
                                     HEADER_ALIGNMENT, VAR_ADDED, VAR_DELETED, VAR_HEADER_VALID_ONLY,
                                     VAR_IN_DELETED_TRANSITION, VARIABLE_ATTRIBUTES, VARIABLE_DATA,
                                     VARIABLE_HEADER, VARIABLE_STORE_FORMATTED, VARIABLE_STORE_HEADER,
                                     VARIABLE_STORE_HEALTHY, WORKING_BLOCK_STATE_BITS, WRITE_HEADER_FLAG_BITS,
                                     WRITE_RECORD_FLAG_BITS)
from decoders.uefivar import decode_variable_data

# -- bounds ----------------------------------------------------------------------------------
# A variable is at least a 32-byte header, so a 256 KiB store holds at most ~8000; this cap only
# matters for crafted input.
MAX_VARIABLES = 16384
# The write queue of a 4 KiB working block holds at most ~100 headers/records.
MAX_FTW_WRITES = 1024
MAX_FTW_RECORDS = 4096
# Where to look for the working block signature after the store (aligned candidates only).
MAX_SIGNATURE_CANDIDATES = 64
MAX_NAME_CHARS = 1024  # display bound for a variable name

# EFI_VARIABLE_* attribute names, long (UefiMultiPhase.h) and short (as UEFITool prints them).
_ATTRIBUTE_NAMES = {bit: f"EFI_VARIABLE_{name}" for bit, name, _ in VARIABLE_ATTRIBUTES}
_ATTRIBUTE_SHORT = {bit: short for bit, _, short in VARIABLE_ATTRIBUTES}


def decode_nv_body(space: Space, offset: int, size: int, *, payloads: bool = True) -> list[Node]:
    """Decode the body of an FV whose FileSystemGuid is gEfiSystemNvDataFvGuid: everything from
    the end of the FV header (`offset`) for `size` bytes (to the end of the FV). `payloads=False`
    leaves each variable's data undecoded (no signature lists, no X.509): for a caller that needs
    only names, vendors, states and bytes, such as a measurement prediction."""
    if space.data is None:  # an address space without bytes: nothing to walk
        node = Node("variable-store", "Variable store (no data)", space, offset, size)
        node.problem(offset, "the space holds no bytes to decode")
        return [node]
    data = space.data
    end = min(offset + size, len(data))
    nodes: list[Node] = []
    store, store_end = _decode_store(space, offset, end, payloads)
    if offset + size > len(data):
        store.problem(offset, f"NV body of 0x{size:x} bytes runs past the end of the {len(data)}-byte buffer")
    nodes.append(store)
    ftw = _find_working_block(data, store_end, end)
    if ftw is None:
        if store_end < end:
            rest = _erased_area(space, "nv-unknown", "Unrecognised NV area", store_end, end)
            rest.warn(store_end, "no FTW working block signature (gEdkiiWorkingBlockSignatureGuid) found "
                                 "after the variable store")
            nodes.append(rest)
        return nodes
    if ftw > store_end:
        nodes.append(_erased_area(space, "nv-event-log", "NV event-log area", store_end, ftw))
    block, block_end = _decode_working_block(space, ftw, end)
    nodes.append(block)
    if block_end < end:
        nodes.append(_erased_area(space, "ftw-spare", "FTW spare area", block_end, end))
    return nodes


# -- variable store ----------------------------------------------------------------------------

def _align(value: int) -> int:
    # VariableFormat.h HEADER_ALIGN
    return (value + HEADER_ALIGNMENT - 1) & ~(HEADER_ALIGNMENT - 1)


def _decode_store(space: Space, offset: int, end: int, payloads: bool = True) -> tuple[Node, int]:
    """The VARIABLE_STORE_HEADER and its variables; returns the node and the store's end offset."""
    data = space.data
    node = Node("variable-store", "Variable store", space, offset, max(end - offset, 0))
    try:
        hdr = VARIABLE_STORE_HEADER.parse(data, offset, "VARIABLE_STORE_HEADER")
    except DecodeError as e:
        node.problem(offset, f"truncated VARIABLE_STORE_HEADER: {e.message}")
        return node, end
    sig = hdr.Signature
    formatted = " VARIABLE_STORE_FORMATTED" if hdr.Format == VARIABLE_STORE_FORMATTED else ""
    healthy = " VARIABLE_STORE_HEALTHY" if hdr.State == VARIABLE_STORE_HEALTHY else ""
    VARIABLE_STORE_HEADER.add_fields(node, hdr, offset, displays={"Format": f"0x{hdr.Format:02x}{formatted}",
                                                                  "State": f"0x{hdr.State:02x}{healthy}"})
    header_size = VARIABLE_STORE_HEADER.size
    # VariableParsing.c GetVariableStoreStatus: all-0xFF header = EfiRaw (never formatted).
    if bytes(data[offset:offset + header_size]) == b"\xff" * header_size:
        node.warn(offset, "variable store is raw (erased, never formatted)")
        node.title = "Variable store (raw)"
        return node, end
    if sig not in (guids.gEfiAuthenticatedVariableGuid, guids.gEfiVariableGuid):
        node.problem(offset, f"Signature {str(sig).upper()} is neither gEfiAuthenticatedVariableGuid nor "
                             "gEfiVariableGuid")
    if hdr.Format != VARIABLE_STORE_FORMATTED:
        node.problem(node.field("Format").offset,
                     f"Format 0x{hdr.Format:02x}, expected 0x5A (VARIABLE_STORE_FORMATTED)")
    if hdr.State != VARIABLE_STORE_HEALTHY:
        node.warn(node.field("State").offset, f"State 0x{hdr.State:02x}, expected 0xFE (VARIABLE_STORE_HEALTHY)")
    store_end = offset + hdr.Size
    if hdr.Size < header_size:
        node.problem(node.field("Size").offset, f"Size 0x{hdr.Size:x} is smaller than the {header_size}-byte header")
        store_end = _find_working_block(data, offset + header_size, end) or end
    elif store_end > end:
        node.problem(node.field("Size").offset, f"Size 0x{hdr.Size:x} runs past the end of the FV "
                                  f"(0x{end - offset:x} bytes left)")
        store_end = _find_working_block(data, offset + header_size, end) or end
    node.size = store_end - offset
    auth = sig != guids.gEfiVariableGuid  # VariableFormat.h: the authenticated header unless gEfiVariableGuid
    _walk_variables(node, _align(offset + header_size), _align(store_end) if _align(store_end) <= end
                    else store_end, auth, payloads)
    variables = [c for c in node.children if c.kind == "variable"]
    live = sum(1 for v in variables if v.get("State") in (VAR_ADDED, VAR_ADDED & VAR_IN_DELETED_TRANSITION))
    kind = "authenticated" if auth else "plain"
    node.title = (f"Variable store ({kind}), {len(variables)} variable{'s' if len(variables) != 1 else ''}"
                  f" ({live} live, {len(variables) - live} deleted)")
    return node, store_end


def _walk_variables(store: Node, pos: int, var_end: int, auth: bool, payloads: bool = True) -> None:
    """VariableParsing.c: IsValidVariableHeader / GetNextVariablePtr until StartId != 0x55AA."""
    space, data = store.space, store.space.data
    header = AUTHENTICATED_VARIABLE_HEADER if auth else VARIABLE_HEADER
    hsize = header.size
    count = 0
    while pos + 2 <= var_end:
        if struct.unpack_from("<H", data, pos)[0] != VARIABLE_DATA:
            break
        if count >= MAX_VARIABLES:
            store.problem(pos, f"more than {MAX_VARIABLES} variables; rest not decoded")
            return
        if pos + hsize > var_end:
            store.problem(pos, f"variable header at 0x{pos:x} is cut off by the store end 0x{var_end:x} "
                               f"(needs {hsize} bytes)")
            return
        node, next_pos = _decode_variable(space, pos, var_end, header, auth, payloads)
        store.append(node)
        count += 1
        if next_pos is None:
            store.problem(pos, "variable sizes run past the store end; the walk stops here")
            return
        pos = next_pos
    if pos < var_end:
        store.append(_free_space(space, pos, var_end))


def _state_text(state: int) -> tuple[str, str, bool]:
    """(short name, full expression, live) for a variable State byte (VariableFormat.h)."""
    live = state in (VAR_ADDED, VAR_ADDED & VAR_IN_DELETED_TRANSITION)  # VariableParsing.c FindVariableEx
    steps = []
    if state & ~VAR_HEADER_VALID_ONLY & 0xFF == 0:
        steps.append("VAR_HEADER_VALID_ONLY" if state & ~VAR_ADDED & 0xFF else "VAR_ADDED")
    if state & ~VAR_IN_DELETED_TRANSITION & 0xFF == 0:
        steps.append("VAR_IN_DELETED_TRANSITION")
    if state & ~VAR_DELETED & 0xFF == 0:
        steps.append("VAR_DELETED")
    if not steps:
        return "RAW" if state == 0xFF else "UNKNOWN", f"0x{state:02x}", live
    if "VAR_DELETED" in steps:
        short = "DELETED"
    elif "VAR_IN_DELETED_TRANSITION" in steps:
        short = "IN_DELETED_TRANSITION"
    else:
        short = steps[0][4:]
    return short, " & ".join(steps), live


def _attributes_text(attrs: int) -> tuple[str, str]:
    """('NV+BS+RT+AT', 'EFI_VARIABLE_NON_VOLATILE | ...') for EFI_VARIABLE_* bits; unknown bits in hex."""
    return ("+".join(flag_names(attrs, _ATTRIBUTE_SHORT)) or "none",
            " | ".join(flag_names(attrs, _ATTRIBUTE_NAMES)) or "0")


def _decode_variable(space: Space, pos: int, var_end: int, header, auth: bool,
                     payloads: bool = True) -> tuple[Node, int | None]:
    data = space.data
    hsize = header.size
    h = header.parse(data, pos, "AUTHENTICATED_VARIABLE_HEADER" if auth else "VARIABLE_HEADER")
    node = Node("variable", "variable", space, pos, hsize)
    short, full, live = _state_text(h.State)
    attr_short, attr_long = _attributes_text(h.Attributes)
    vendor = h.VendorGuid
    displays = {"StartId": "0x55AA VARIABLE_DATA", "Attributes": f"0x{h.Attributes:x} {attr_long}",
                "State": f"0x{h.State:02x} {full} ({'live' if live else 'not live'})"}
    if auth:
        displays["TimeStamp"] = efi_time_text(h.TimeStamp)
    header.add_fields(node, h, pos, displays=displays)
    name_size, data_size = h.NameSize, h.DataSize
    # VariableParsing.c NameSizeOfVariable/DataSizeOfVariable: an all-ones State, NameSize, DataSize
    # or Attributes means the write was interrupted; edk2 then takes both sizes as 0.
    if 0xFF == h.State or 0xFFFFFFFF in (name_size, data_size, h.Attributes):
        node.warn(pos, "State, NameSize, DataSize or Attributes is all ones (interrupted write): edk2 "
                       "treats the name and data as empty and steps over the header only")
        name_size = data_size = 0
    vendor_name = guids.name(vendor) or str(vendor).upper()
    name_start = pos + hsize
    if name_start + name_size > var_end or name_start + name_size + data_size > var_end:
        which = "NameSize" if name_start + name_size > var_end else "DataSize"
        node.problem(node.field(which).offset,
                     f"{which} runs past the store end 0x{var_end:x} (NameSize 0x{name_size:x}, "
                     f"DataSize 0x{data_size:x})")
        node.size = var_end - pos
        node.title = f"? ({vendor_name}) {attr_short} 0x{h.State:02x} {short} (bad sizes)"
        return node, None
    name = _decode_name(node, name_start, name_size)
    data_start = name_start + name_size  # GET_PAD_SIZE is 0 on IA32/X64 (ALIGNMENT 1)
    raw = bytes(data[data_start:data_start + data_size])
    node.add("Data", raw, data_start, data_size)
    node.size = hsize + name_size + data_size
    if data_size and payloads:
        decode_variable_data(node, name, vendor, data_start, data_size)
    mark = "" if live else (" (incomplete)" if short == "HEADER_VALID_ONLY" else " (deleted)")
    node.title = f"{name} ({vendor_name}) {attr_short} 0x{h.State:02x} {short}{mark}"
    return node, _align(data_start + data_size)


def _decode_name(node: Node, start: int, size: int) -> str:
    raw = bytes(node.space.data[start:start + size])
    if size % 2:
        node.warn(start, f"NameSize {size} is odd; a UCS-2 name has an even size")
    text = raw[: size - size % 2].decode("utf-16-le", errors="replace")
    if "\0" in text:
        text = text[: text.index("\0")]
    elif size:
        node.warn(start, "variable name has no NUL terminator")
    if len(text) > MAX_NAME_CHARS:
        text = text[:MAX_NAME_CHARS] + "…"
    node.add("Name", text, start, size)
    return text


# -- free space, erased areas --------------------------------------------------------------------

def _first_not_erased(data, start: int, end: int) -> int | None:
    chunk = bytes(data[start:end])
    stripped = chunk.lstrip(b"\xff")
    return None if not stripped else start + len(chunk) - len(stripped)


def _free_space(space: Space, start: int, end: int) -> Node:
    node = Node("free-space", f"Free space, 0x{end - start:x} bytes", space, start, end - start)
    bad = _first_not_erased(space.data, start, end)
    if bad is not None:
        node.warn(bad, f"free space is not erased: byte 0x{space.data[bad]:02x} at 0x{bad:x} "
                       "(0xFF expected after the last variable)")
    return node


def _erased_area(space: Space, kind: str, title: str, start: int, end: int) -> Node:
    node = Node(kind, f"{title}, 0x{end - start:x} bytes", space, start, end - start)
    bad = _first_not_erased(space.data, start, end)
    if bad is None:
        node.note(start, "all 0xFF (erased)")
        node.title += " (empty)"
    else:
        node.note(bad, f"holds data: first non-0xFF byte at 0x{bad:x}")
    return node


# -- FTW working block ---------------------------------------------------------------------------

def _find_working_block(data, start: int, end: int) -> int | None:
    """First 8-byte-aligned EFI_FAULT_TOLERANT_WORKING_BLOCK_HEADER signature in [start, end).

    SystemNvDataGuid.h: the signature is gEdkiiWorkingBlockSignatureGuid; older firmware used
    gEfiSystemNvDataFvGuid, accepted as a fallback.
    """
    if start >= end:
        return None
    chunk = bytes(data[start:end])
    for sig in (guids.gEdkiiWorkingBlockSignatureGuid, guids.gEfiSystemNvDataFvGuid):
        needle = sig.bytes_le
        at = chunk.find(needle)
        for _ in range(MAX_SIGNATURE_CANDIDATES):
            if at < 0:
                break
            if (start + at) % 8 == 0:
                return start + at
            at = chunk.find(needle, at + 1)
    return None


def working_block_crc(header: bytes) -> int:
    """The Crc edk2 computes: CRC32 of the 32-byte header with Crc and the state byte as 0xFF.

    UpdateWorkingBlock.c InitializeLocalWorkSpaceHeader fills the header with FTW_ERASED_BYTE,
    sets Signature and WriteQueueSize, then CalculateCrc32 over the whole header; only then
    WorkingBlockValid/Invalid are set.
    """
    h = bytearray(header[:32])
    h[16:20] = b"\xff\xff\xff\xff"
    h[20] = 0xFF
    return zlib.crc32(bytes(h)) & 0xFFFFFFFF


def _bit_fields(byte: int, names: tuple[str, ...]) -> dict[str, int]:
    """The one-bit fields `names` of an FTW bit-field byte, from bit 0, and the bits above them as
    "Reserved" (SystemNvDataGuid.h)."""
    bits = {name: byte >> bit & 1 for bit, name in enumerate(names)}
    bits["Reserved"] = byte >> len(names)
    return bits


def _decode_working_block(space: Space, pos: int, end: int) -> tuple[Node, int]:
    data = space.data
    node = Node("ftw-working-block", "FTW working block", space, pos, end - pos)
    try:
        h = EFI_FAULT_TOLERANT_WORKING_BLOCK_HEADER.parse(data[:end], pos,
                     "EFI_FAULT_TOLERANT_WORKING_BLOCK_HEADER")
    except DecodeError as e:
        node.problem(pos, f"truncated working block header: {e.message}")
        return node, end
    hsize = EFI_FAULT_TOLERANT_WORKING_BLOCK_HEADER.size
    sig = h.Signature
    crc = working_block_crc(bytes(data[pos:pos + hsize]))
    bits = _bit_fields(h.StateBits, WORKING_BLOCK_STATE_BITS)
    valid, invalid, reserved = bits["WorkingBlockValid"], bits["WorkingBlockInvalid"], bits["Reserved"]
    node.add("Signature", sig, pos, 16, guids.describe(sig))
    node.add("Crc", h.Crc, pos + 16, 4, f"0x{h.Crc:08x} ({'valid' if crc == h.Crc else f'computed 0x{crc:08x}'})")
    # FTW_VALID_STATE is 0 and FTW_INVALID_STATE 1: bits are cleared to take effect.
    node.add("WorkingBlockValid", valid, pos + 20, 1, f"{valid} ({'FTW_VALID_STATE' if not valid else 'not set'})")
    node.add("WorkingBlockInvalid", invalid, pos + 20, 1,
             f"{invalid} ({'not set' if invalid else 'FTW_VALID_STATE: invalidated'})")
    node.add("Reserved", reserved, pos + 20, 1)
    node.add("Reserved3", bytes(h.Reserved3), pos + 21, 3)
    node.add("WriteQueueSize", h.WriteQueueSize, pos + 24, 8)
    if sig == guids.gEfiSystemNvDataFvGuid:
        node.warn(pos, "old signature gEfiSystemNvDataFvGuid: edk2 now expects gEdkiiWorkingBlockSignatureGuid "
                       "and reinitialises this work space")
    if crc != h.Crc:
        node.problem(pos + 16, f"Crc 0x{h.Crc:08x} does not match the header (computed 0x{crc:08x})")
    healthy = not valid and invalid
    if not healthy:
        node.warn(pos + 20, "working block is not in the valid state (WorkingBlockValid=0, WorkingBlockInvalid=1); "
                            "edk2 will recover it from the spare")
    if reserved != 0x3F or bytes(h.Reserved3) != b"\xff\xff\xff":
        node.warn(pos + 20, "reserved bits are not 0xFF: edk2's IsValidWorkSpace compares the whole header")
    area_end = pos + hsize + h.WriteQueueSize
    if area_end > end:
        node.problem(pos + 24, f"WriteQueueSize 0x{h.WriteQueueSize:x} runs past the end of the FV "
                               f"(0x{end - pos - hsize:x} bytes left)")
        area_end = end
    node.size = area_end - pos
    _walk_write_queue(node, pos + hsize, area_end)
    writes = sum(1 for c in node.children if c.kind == "ftw-write")
    node.title = (f"FTW working block, {'valid' if healthy and crc == h.Crc else 'INVALID'}, "
                  f"{writes} write{'s' if writes != 1 else ''} queued")
    return node, area_end


def _walk_write_queue(block: Node, pos: int, end: int) -> None:
    """FtwMisc.c FtwGetLastWriteHeader: headers follow each other while HeaderAllocated is
    FTW_VALID_STATE (0); each is followed by NumberOfWrites records of
    sizeof(EFI_FAULT_TOLERANT_WRITE_RECORD) + PrivateDataSize bytes."""
    space, data = block.space, block.space.data
    wsize = EFI_FAULT_TOLERANT_WRITE_HEADER.size
    rsize = EFI_FAULT_TOLERANT_WRITE_RECORD.size
    records = 0
    for _ in range(MAX_FTW_WRITES):
        if pos + wsize > end:
            break
        h = EFI_FAULT_TOLERANT_WRITE_HEADER.parse(data, pos, "EFI_FAULT_TOLERANT_WRITE_HEADER")
        flags = _bit_fields(h.Flags, WRITE_HEADER_FLAG_BITS)
        if flags["HeaderAllocated"]:  # still erased: the free part of the queue starts here
            break
        caller = h.CallerId
        w = Node("ftw-write", "FTW write", space, pos, wsize)
        block.append(w)
        for name in WRITE_HEADER_FLAG_BITS:
            w.add(name, flags[name], pos, 1)
        w.add("CallerId", caller, pos + 4, 16, guids.describe(caller))
        w.add("NumberOfWrites", h.NumberOfWrites, pos + 24, 8)
        w.add("PrivateDataSize", h.PrivateDataSize, pos + 32, 8)
        state = "complete" if not flags["Complete"] else "in progress"
        w.title = f"FTW write by {guids.name(caller) or str(caller).upper()}, {h.NumberOfWrites} record(s), {state}"
        pos += wsize
        one = rsize + h.PrivateDataSize
        if h.NumberOfWrites * one > end - pos:
            w.problem(pos - wsize + 24, f"NumberOfWrites {h.NumberOfWrites} x 0x{one:x} bytes runs past the "
                                        "write queue")
            w.size = end - w.offset
            return
        for i in range(h.NumberOfWrites):
            if records >= MAX_FTW_RECORDS:
                w.problem(pos, f"more than {MAX_FTW_RECORDS} write records; rest not decoded")
                return
            w.append(_decode_write_record(space, pos, one, h.PrivateDataSize, i))
            records += 1
            pos += one
        w.size = pos - w.offset
    if pos < end:
        bad = _first_not_erased(data, pos, end)
        if bad is not None:
            block.warn(bad, f"write queue space after the last write is not erased (byte at 0x{bad:x})")


def _decode_write_record(space: Space, pos: int, size: int, private: int, index: int) -> Node:
    r = EFI_FAULT_TOLERANT_WRITE_RECORD.parse(space.data, pos, "EFI_FAULT_TOLERANT_WRITE_RECORD")
    node = Node("ftw-write-record", f"FTW write record #{index}", space, pos, size)
    flags = _bit_fields(r.Flags, WRITE_RECORD_FLAG_BITS)
    for name in WRITE_RECORD_FLAG_BITS:
        node.add(name, flags[name], pos, 1)
    node.add("Lba", r.Lba, pos + 8, 8)
    node.add("Offset", r.Offset, pos + 16, 8)
    node.add("Length", r.Length, pos + 24, 8)
    node.add("RelativeOffset", r.RelativeOffset, pos + 32, 8)
    if private:
        start = pos + EFI_FAULT_TOLERANT_WRITE_RECORD.size
        node.add("PrivateData", bytes(space.data[start:start + private]), start, private)
    node.title = f"FTW write record #{index}: LBA 0x{r.Lba:x} +0x{r.Offset:x}, 0x{r.Length:x} bytes"
    return node
