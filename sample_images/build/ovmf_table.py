"""The OVMF reset-vector blob: what `OvmfPkg/ResetVector` puts in the Volume Top File.

Layout from the end E of the image (`ResetVector/Ia16/ResetVectorVtf0.nasm.inc`, consumer
QEMU `hw/i386/pc_sysfw_ovmf.c`): E-0x10 reset vector, E-0x14 "VTF\\0", E-0x20 12 zero bytes,
E-0x30 footer GUID 96B582DE, E-0x32 UINT16 table length (includes itself and the footer GUID);
entries walk backwards, each `data | UINT16 length (data + 18) | GUID`.
TDX metadata (`ResetVector/X64/IntelTdxMetadata.nasm.inc`): GUID E9EAF9F3 then TDVF_DESCRIPTOR
{"TDVF", Length = 16 + 32 n, Version 1, NumberOfSectionEntry} and n TDVF_SECTIONs.
SEV metadata (`ResetVector/X64/OvmfSevMetadata.nasm.inc`): {"ASEV", Length, Version 1, n} + n
{Base, Size, Type}. Offsets and section tables copy Debian's 2 MiB X64 OVMF 2022.11.
"""
from __future__ import annotations

import struct
import uuid

FOOTER_GUID = uuid.UUID("96B582DE-1FB2-45F7-BAEA-A366C55A082D")
SEV_ES_RESET_BLOCK_GUID = uuid.UUID("00F771DE-1A7E-4FCB-890E-68C77E2FB44E")
SEV_SECRET_BLOCK_GUID = uuid.UUID("4C2EB361-7D9B-4CC3-8081-127C90D3D294")
SEV_HASH_TABLE_GUID = uuid.UUID("7255371F-3A3B-4B04-927B-1DA6EFA8D454")
SEV_METADATA_OFFSET_GUID = uuid.UUID("DC886566-984A-4798-A75E-5585A7BF67CC")
TDX_METADATA_OFFSET_GUID = uuid.UUID("E47A6535-984A-4798-865E-4685A7BF8EC2")
TDX_METADATA_GUID = uuid.UUID("E9EAF9F3-168E-44D5-A8EB-7F4D8738F6AE")

# TDVF_SECTION Type / Attributes (IntelTdxMetadata.nasm.inc)
TDX_BFV, TDX_CFV, TDX_TD_HOB, TDX_TEMP_MEM = 0, 1, 2, 3
TDX_ATTR_MR_EXTEND = 0x1
# SEV metadata section types (OvmfSevMetadata.nasm.inc)
SEV_SNP_SEC_MEM, SEV_SNP_SECRETS, SEV_CPUID = 1, 2, 3

# (DataOffset, RawDataSize, MemoryAddress, MemoryDataSize, Type, Attributes): Debian OVMF.fd 2 MiB
TDX_SECTIONS_2M = [
    (0x20000, 0x1E0000, 0xFFE20000, 0x1E0000, TDX_BFV, TDX_ATTR_MR_EXTEND),
    (0x0, 0x20000, 0xFFE00000, 0x20000, TDX_CFV, 0),
    (0, 0, 0x810000, 0x10000, TDX_TEMP_MEM, 0),  # SEC/PEI temporary RAM
    (0, 0, 0x80B000, 0x2000, TDX_TEMP_MEM, 0),  # work area + GHCB backup
    (0, 0, 0x809000, 0x2000, TDX_TD_HOB, 0),  # TD HOB at PcdOvmfSecGhcbBase
    (0, 0, 0x800000, 0x6000, TDX_TEMP_MEM, 0),  # SEC page tables
]
# (Base, Size, Type): Debian OVMF.fd 2 MiB
SEV_SECTIONS_2M = [
    (0x800000, 0x9000, SEV_SNP_SEC_MEM),
    (0x80A000, 0x3000, SEV_SNP_SEC_MEM),
    (0x80D000, 0x1000, SEV_SNP_SECRETS),
    (0x80E000, 0x1000, SEV_CPUID),
    (0x80F000, 0x11000, SEV_SNP_SEC_MEM),
]
SEV_ES_AP_RESET = 0x0080B004  # [31:16] CS base >> 16, [15:0] IP

BLOB_SIZE = 0x9B8 - 24  # the VTF file of Debian's OVMF.fd is 0x9B8 bytes with its header
TDVF_FROM_END = 0x840  # E - offset of the TDVF descriptor (Debian OVMF.fd)
ASEV_FROM_END = 0x52C  # E - offset of the ASEV descriptor (Debian OVMF.fd)


def tdvf_descriptor(sections: list[tuple[int, int, int, int, int, int]], *, count: int | None = None,
                    length: int | None = None) -> bytes:
    n = len(sections) if count is None else count
    ln = 16 + 32 * len(sections) if length is None else length
    return (b"TDVF" + struct.pack("<III", ln, 1, n)
            + b"".join(struct.pack("<IIQQII", *s) for s in sections))


def sev_descriptor(sections: list[tuple[int, int, int]]) -> bytes:
    return b"ASEV" + struct.pack("<III", 16 + 12 * len(sections), 1, len(sections)) + b"".join(
        struct.pack("<III", *s) for s in sections)


def table_entry(guid: uuid.UUID, data: bytes) -> bytes:
    return data + struct.pack("<H", len(data) + 18) + guid.bytes_le


def guided_table(entries: list[bytes], *, length: int | None = None) -> bytes:
    """The entries, UINT16 table length and footer GUID (ends at E-0x20)."""
    body = b"".join(entries)
    ln = len(body) + 18 if length is None else length
    return body + struct.pack("<H", ln) + FOOTER_GUID.bytes_le


def reset_vector_blob(tdx_sections=TDX_SECTIONS_2M, sev_sections=SEV_SECTIONS_2M, *,
                      tdvf: bytes | None = None, table_length: int | None = None) -> bytes:
    """BLOB_SIZE bytes whose end sits at the end of the image (4 GiB in the guest)."""
    blob = bytearray(b"\x90" * BLOB_SIZE)  # nop fill, as the nasm `TIMES` padding
    end = BLOB_SIZE
    # 16-bit stub at the start of the blob: cli ; hlt ; jmp $-1 (the reset vector jumps here)
    stub_at = 0
    blob[stub_at:stub_at + 4] = bytes.fromhex("faf4ebfd")
    # TDX metadata: the GUID, then the descriptor at E - TDVF_FROM_END
    td = tdvf_descriptor(tdx_sections) if tdvf is None else tdvf
    at = end - TDVF_FROM_END
    blob[at - 16:at] = TDX_METADATA_GUID.bytes_le
    blob[at:at + len(td)] = td
    sev = sev_descriptor(sev_sections)
    at = end - ASEV_FROM_END
    blob[at:at + len(sev)] = sev
    entries = [
        table_entry(TDX_METADATA_OFFSET_GUID, struct.pack("<I", TDVF_FROM_END)),
        table_entry(SEV_METADATA_OFFSET_GUID, struct.pack("<I", ASEV_FROM_END)),
        table_entry(SEV_HASH_TABLE_GUID, struct.pack("<II", 0, 0)),
        table_entry(SEV_SECRET_BLOCK_GUID, struct.pack("<II", 0, 0)),
        table_entry(SEV_ES_RESET_BLOCK_GUID, struct.pack("<I", SEV_ES_AP_RESET)),
    ]
    table = guided_table(entries, length=table_length)
    blob[end - 0x20 - len(table):end - 0x20] = table
    blob[end - 0x20:end - 0x14] = b"\x00" * 12
    blob[end - 0x14:end - 0x10] = b"VTF\0"
    # Reset vector at E-0x10 (CS:IP F000:FFF0): nop ; nop ; jmp near rel16 to the stub.
    rv = end - 0x10
    rel = (stub_at - (rv + 2 + 3)) & 0xFFFF
    blob[rv:end] = bytes([0x90, 0x90, 0xE9]) + struct.pack("<H", rel) + b"\x90" * 11
    return bytes(blob)
