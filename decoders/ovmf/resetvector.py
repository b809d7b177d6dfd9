"""The OVMF reset-vector GUIDed table at the top of an image, decoded into Nodes.

Layout (edk2 `OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.nasm.inc`; QEMU `hw/i386/pc_sysfw_ovmf.c`
reads it the same way), offsets from the end E of the file, which sits at 4 GiB:

    E-0x32  UINT16 table length (counts itself and the footer GUID)
    E-0x30  footer GUID 96b582de-1fb2-45f7-baea-a366c55a082d
    E-0x20  12 bytes (zeros; the AP entry `jmp` in builds before edk2 dea6002d6e)
    E-0x14  "VTF\\0"
    E-0x10  the reset vector (a jmp)

Entries walk backwards from the footer: data… | UINT16 length (data + 2 + 16) | GUID.
The TDX, SEV and IGVM entries hold `E - offset` of their descriptors, decoded as children.
Without a footer, the td-shim legacy pointer (UINT32 at E-0x20 = offset of "TDVF") is tried.
"""
from __future__ import annotations

import struct

from decoders import guids
from decoders.errors import DecodeError
from decoders.model import Node, Space
from decoders.ovmf import structs as S
from decoders.ovmf.metadata import decode_igvm_metadata, decode_sev_metadata, decode_tdx_metadata

FOUR_GIB = 1 << 32
# The table length is a UINT16, and every entry is at least 18 bytes, so a walk can never have more
# than 0xFFFF // 18 entries; edk2 writes 5-6. The cap keeps a hostile table's node list small.
MAX_TABLE_ENTRIES = 64
# The smallest image that can hold footer, VTF signature and reset vector.
MIN_IMAGE = S.TABLE_FOOTER_AT


def decode_reset_vector_table(space: Space) -> Node | None:
    """Decode the GUIDed table of `space.data`, a whole image file whose end is 4 GiB.

    Returns None when the image has neither the OVMF footer GUID nor a td-shim TDVF pointer.
    """
    data = space.data
    if data is None or len(data) < MIN_IMAGE:
        return None
    end = len(data)
    footer_at = end - S.TABLE_FOOTER_AT
    footer = S.OVMF_TABLE_FOOTER.parse(data, footer_at, "OVMF table footer")
    if footer.FooterGuid != guids.OvmfTableFooterGuid:
        return _legacy_tdshim(space)

    node = Node("ovmf-guid-table", "OVMF reset-vector GUIDed table", space, footer_at, S.TABLE_FOOTER_AT)
    length = footer.TableLength
    node.add("TableLength", length, footer_at, 2)
    node.add("FooterGuid", footer.FooterGuid, footer_at + 2, 16, guids.describe(footer.FooterGuid))
    _add_vtf_top(node, data, end)

    body = length - S.GUIDED_ENTRY_TAIL_SIZE
    if length < S.GUIDED_ENTRY_TAIL_SIZE:
        node.problem(footer_at, f"TableLength {length} is smaller than its own 18-byte footer")
        return node
    if body > footer_at:
        node.problem(footer_at, f"TableLength 0x{length:x} reaches before the start of the image")
        return node
    node.offset = footer_at - body
    node.size = end - node.offset
    if body == 0:
        node.note(footer_at, "the table has no entries")

    pos, left = footer_at, body   # pos: the end of the next entry (exclusive)
    while left > 0:
        if len(node.children) >= MAX_TABLE_ENTRIES:
            node.problem(pos, f"more than {MAX_TABLE_ENTRIES} entries; stopped")
            break
        if left < S.GUIDED_ENTRY_TAIL_SIZE:
            node.problem(pos - left, f"{left} bytes left in the table, too few for an entry (18)")
            break
        tail_at = pos - S.GUIDED_ENTRY_TAIL_SIZE
        tail = S.GUIDED_ENTRY_TAIL.parse(data, tail_at, "GUIDed table entry")
        if tail.Length < S.GUIDED_ENTRY_TAIL_SIZE:
            # QEMU pc_system_ovmf_table_find: "wouldn't want to spin in the zero case".
            node.problem(tail_at, f"entry Length {tail.Length} < 18 (would not advance); stopped")
            break
        if tail.Length > left:
            node.problem(tail_at, f"entry Length 0x{tail.Length:x} runs past the start of the table "
                                  f"(0x{left:x} bytes left); stopped")
            break
        node.append(_decode_entry(space, pos - tail.Length, tail.Length, tail.Guid, end))
        pos -= tail.Length
        left -= tail.Length

    if left > 0:
        # The entries did not tile the table: the length itself is as suspect as the entry, and
        # QEMU (pc_system_ovmf_table_find) trusts it, so say so at the field.
        node.problem(footer_at, f"TableLength 0x{length:x} is not tiled by whole entries: {len(node.children)} "
                                f"entries cover 0x{body - left:x} of its 0x{body:x} bytes")

    present = {c.get("Guid") for c in node.children}
    if not present & {guids.TdxMetadataOffsetGuid, guids.OvmfSevMetadataOffsetGuid, guids.IgvmMetadataOffsetGuid}:
        node.note(footer_at, "no TDX, SEV or IGVM metadata entries (an IA32 reset vector or an older build)")
    node.title = f"OVMF reset-vector GUIDed table ({len(node.children)} entries)"
    return node


def _add_vtf_top(node: Node, data, end: int) -> None:
    top_at = end - S.VTF_TOP_AT
    top = S.VTF_TOP.parse(data, top_at, "VTF top")
    ap = bytes(top.ApEntryPoint)
    if not any(ap):
        ap_text = "zeros"
    else:
        ap_text = _jmp_text(ap, FOUR_GIB - S.VTF_TOP_AT, 16) or ap.hex(" ")
        ap_text += " (the AP entry of builds before edk2 dea6002d6e)"
    node.add("ApEntryPoint", ap, top_at, 12, ap_text)
    node.add("VtfSignature", bytes(top.VtfSignature), top_at + 12, 4, repr(bytes(top.VtfSignature))[1:])
    if top.VtfSignature != b"VTF\0":
        node.warn(top_at + 12, "no \"VTF\\0\" signature at E-0x14")
    rv = bytes(top.ResetVector)
    text = reset_vector_text(rv)
    node.add("ResetVector", rv, end - 0x10, 16, text or rv.hex(" "))
    if text is None:
        node.warn(end - 0x10, "the reset vector does not start with a recognised jmp")


def _jmp_text(code: bytes, address: int, bits: int) -> str | None:
    """`jmp` at the start of `code` (at linear `address`), with its target; real mode runs with
    CS base 0xFFFF0000 after reset, so a 16-bit target wraps within that 64 KiB segment."""
    if code[:1] == b"\xe9":
        if bits == 16 and len(code) >= 3:
            ip = address & 0xFFFF
            target = (ip + 3 + struct.unpack_from("<h", code, 1)[0]) & 0xFFFF
            return f"jmp 0x{(address & ~0xFFFF) + target:08x}"
        if bits == 32 and len(code) >= 5:
            return f"jmp 0x{(address + 5 + struct.unpack_from('<i', code, 1)[0]) & 0xFFFFFFFF:08x}"
    if code[:1] == b"\xeb" and len(code) >= 2:
        if bits == 16:
            ip = address & 0xFFFF
            return f"jmp 0x{(address & ~0xFFFF) + ((ip + 2 + struct.unpack_from('<b', code, 1)[0]) & 0xFFFF):08x}"
        return f"jmp 0x{(address + 2 + struct.unpack_from('<b', code, 1)[0]) & 0xFFFFFFFF:08x}"
    return None


def reset_vector_text(rv: bytes, address: int = FOUR_GIB - 0x10) -> str | None:
    """What the 16 reset-vector bytes do, for the two shapes ResetVectorVtf0.nasm.inc emits.

    ARCH_IA32: nop; nop; jmp EarlyBspInitReal16.  ARCH_X64: mov eax, cr0; test al, 1; jz .Real;
    (BITS 32) jmp Main32 — taken by a TD, which starts in 32-bit protected mode; .Real: jmp
    EarlyBspInitReal16 — taken by a normal VM starting in real mode.
    """
    if rv[:2] == b"\x90\x90":
        j = _jmp_text(rv[2:], address + 2, 16)
        return f"nop; nop; {j} (EarlyBspInitReal16)" if j else None
    if rv[:6] == b"\x0f\x20\xc0\xa8\x01\x74" and len(rv) > 7:
        real_at = 7 + rv[6]
        j32 = _jmp_text(rv[7:], address + 7, 32)
        j16 = _jmp_text(rv[real_at:], address + real_at, 16) if real_at < len(rv) else None
        if j32 and j16:
            return (f"mov eax, cr0; test al, 1; jz .Real; {j32} (32-bit, Main32: TDX entry); "
                    f".Real: {j16} (16-bit, EarlyBspInitReal16)")
        return None
    j = _jmp_text(rv, address, 16)
    return j


def _decode_entry(space: Space, at: int, length: int, guid, end: int) -> Node:
    data = space.data
    dsize = length - S.GUIDED_ENTRY_TAIL_SIZE
    name = guids.name(guid)
    node = Node("ovmf-guid-entry", name or guids.describe(guid), space, at, length)
    node.add("Guid", guid, at + dsize + 2, 16, guids.describe(guid))
    node.add("Length", length, at + dsize, 2)

    def need(struct_, what):
        if dsize < struct_.sizeof():
            node.problem(at, f"{what}: {dsize} data bytes, needs {struct_.sizeof()}")
            return None
        if dsize > struct_.sizeof():
            node.note(at + struct_.sizeof(), f"{dsize - struct_.sizeof()} more data bytes than {what} defines")
        return struct_.parse(data, at, what)

    if guid == guids.SevEsResetBlockGuid:
        v = need(S.SEV_ES_RESET_BLOCK, "SEV-ES reset block")
        if v is not None:
            raw = v.SevEsApResetIp
            ip, cs_base = raw & 0xFFFF, (raw >> 16) << 16
            node.add("SevEsApResetIp", raw, at, 4)
            node.add("IP", ip, at, 2)
            node.add("CsBase", cs_base, at + 2, 2, f"0x{cs_base:x} (high 16 bits 0x{raw >> 16:x})")
            node.title = f"SEV-ES AP reset block: CS base 0x{cs_base:x}, IP 0x{ip:x} → 0x{cs_base + ip:x}"
    elif guid in (guids.SevSecretBlockGuid, guids.SevFwHashBlockGuid):
        what = "SEV secret block" if guid == guids.SevSecretBlockGuid else "SEV hash table block"
        v = need(S.BASE_SIZE_BLOCK, what)
        if v is not None:
            node.add("Base", v.Base, at, 4)
            node.add("Size", v.Size, at + 4, 4)
            node.title = f"{what}: 0x{v.Base:x} + 0x{v.Size:x}" + (" (unused)" if not v.Size else "")
    elif guid in (guids.TdxMetadataOffsetGuid, guids.OvmfSevMetadataOffsetGuid, guids.IgvmMetadataOffsetGuid):
        what, decode = {
            guids.TdxMetadataOffsetGuid: ("TDX metadata offset", decode_tdx_metadata),
            guids.OvmfSevMetadataOffsetGuid: ("SEV metadata offset", decode_sev_metadata),
            guids.IgvmMetadataOffsetGuid: ("IGVM metadata offset", decode_igvm_metadata),
        }[guid]
        v = need(S.METADATA_OFFSET_BLOCK, what)
        if v is not None:
            target = end - v.Offset
            node.add("Offset", v.Offset, at, 4, f"E - 0x{v.Offset:x} = file offset 0x{target:x}")
            node.title = f"{what}: descriptor at 0x{target:x}"
            if v.Offset == 0 or v.Offset > end:
                node.problem(at, f"{what} 0x{v.Offset:x} points outside the 0x{end:x}-byte image")
            else:
                node.append(decode(space, target))
    elif guid == guids.SvsmInfoGuid:
        v = need(S.SVSM_INFO_BLOCK, "SVSM info")
        if v is not None:
            entry = FOUR_GIB - end + v.SvsmOffset
            node.add("SvsmOffset", v.SvsmOffset, at, 4, f"0x{v.SvsmOffset:x} from the image start "
                                                        f"(SVSM entry at 0x{entry:x})")
            node.title = f"SVSM info: entry at 0x{entry:x}"
    else:
        node.add("Data", bytes(data[at:at + dsize]), at, dsize)
        node.note(at + dsize + 2, f"unknown GUID {guids.describe(guid)}: data shown raw")
    return node


def _legacy_tdshim(space: Space) -> Node | None:
    """td-shim's older layout: UINT32 at E-0x20 = offset from the image start of the "TDVF"
    descriptor (tdshim_spec.md, "Metadata Location"). Only reported when the signature is there."""
    data = space.data
    end = len(data)
    at = end - S.TDSHIM_METADATA_PTR_AT
    try:
        ptr = S.TDSHIM_METADATA_PTR.parse(data, at, "td-shim metadata pointer").TdvfMetadataOffset
    except DecodeError:
        return None
    if ptr < 16 or ptr + S.TDVF_DESCRIPTOR_SIZE > end or bytes(data[ptr:ptr + 4]) != S.TDVF_SIGNATURE:
        return None
    node = Node("ovmf-guid-table", "td-shim TDVF metadata pointer (no OVMF GUIDed table)", space, at, 4)
    node.add("TdvfMetadataOffset", ptr, at, 4, f"file offset 0x{ptr:x}")
    node.note(at, "no OVMF table footer GUID: legacy td-shim layout, UINT32 at E-0x20 = offset of \"TDVF\"")
    node.append(decode_tdx_metadata(space, ptr))
    return node


def find_metadata(table: Node | None, kind: str) -> Node | None:
    """The first descriptor node of `kind` ("tdx-metadata", "sev-metadata", "igvm-metadata")."""
    if table is None:
        return None
    return next(table.find(kind), None)
