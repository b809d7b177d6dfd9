"""Firmware volumes, FFS files and sections, written the way edk2's GenFv/GenFfs/GenSec write them.

Layouts: PI spec vol 3 / `MdePkg/Include/Pi/PiFirmwareVolume.h`, `PiFirmwareFile.h`.
Behaviour copied from BaseTools: `GenFv/GenFvInternalLib.c` (ext header inside a leading pad
file, VTF at the top of the volume, pad files), `GenFfs/GenFfs.c` (0xAA file checksum, 8-byte
file alignment), `GenSec/GenSec.c` (4-byte section alignment, GUID-defined headers, CRC32).
"""
from __future__ import annotations

import struct
import uuid
import zlib

# PiFirmwareFile.h / PiFirmwareVolume.h constants
FFS2_GUID = uuid.UUID("8C8CE578-8A3D-4F1C-9935-896185C32DD3")
FFS3_GUID = uuid.UUID("5473C07A-3DCB-4DCA-BD6F-1E9689E7349A")
NVDATA_GUID = uuid.UUID("FFF12B8D-7696-4C8B-A985-2747075B4F50")
VTF_GUID = uuid.UUID("1BA0062E-C779-4582-8566-336AE8F78F09")
PAD_NAME = uuid.UUID(bytes=b"\xff" * 16)

LZMA_GUID = uuid.UUID("EE4E5898-3914-4259-9D6E-DC7BD79403CF")
LZMAF86_GUID = uuid.UUID("D42AE6BD-1352-4BFB-909A-CA72A6EAE889")
BROTLI_GUID = uuid.UUID("3D532050-5CDA-4FD0-879E-0F7F630D5AFB")
TIANO_GUID = uuid.UUID("A31280AD-481E-41B6-95E8-127F4C984779")
CRC32_GUID = uuid.UUID("FC1BCDB0-7D31-49AA-936A-A4600D9DD083")

# EFI_FV_FILETYPE_*
FT_RAW, FT_FREEFORM, FT_SEC_CORE, FT_PEI_CORE, FT_DXE_CORE, FT_PEIM, FT_DRIVER = 1, 2, 3, 4, 5, 6, 7
FT_APPLICATION, FT_FV_IMAGE, FT_PAD = 9, 0x0B, 0xF0
# EFI_SECTION_*
ST_COMPRESSION, ST_GUID_DEFINED, ST_PE32, ST_TE = 0x01, 0x02, 0x10, 0x12
ST_DXE_DEPEX, ST_VERSION, ST_USER_INTERFACE, ST_FV_IMAGE = 0x13, 0x14, 0x15, 0x17
ST_RAW, ST_PEI_DEPEX = 0x19, 0x1B
# FFS_ATTRIB_*
FFS_ATTRIB_LARGE_FILE, FFS_ATTRIB_CHECKSUM = 0x01, 0x40
# EFI_FILE_HEADER_CONSTRUCTION | EFI_FILE_HEADER_VALID | EFI_FILE_DATA_VALID
STATE_VALID = 0x07
FFS_FIXED_CHECKSUM = 0xAA  # GenFfs.c: IntegrityCheck.Checksum.File when no FFS_ATTRIB_CHECKSUM
MAX_FFS_SIZE = 0xFFFFFF  # 24-bit Size; larger needs FFS_ATTRIB_LARGE_FILE (FFS3 only)
# EFI_GUIDED_SECTION_*
GUIDED_PROCESSING_REQUIRED, GUIDED_AUTH_STATUS_VALID = 0x01, 0x02
# Attributes as in OVMF's FVs (0x0004FEFF: all read/write/lock caps, ERASE_POLARITY, 16-byte align)
FVB2_OVMF = 0x0004FEFF
FVB2_ERASE_POLARITY = 0x00000800

FV_HEADER_FMT = "<16s16sQ4sIHHHBB"  # EFI_FIRMWARE_VOLUME_HEADER up to BlockMap
FV_HEADER_SIZE = struct.calcsize(FV_HEADER_FMT)  # 0x38


def align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def sum8(data: bytes) -> int:
    return sum(data) & 0xFF


def checksum8(data: bytes) -> int:
    """Value that makes the 8-bit sum of data + value zero."""
    return (0x100 - sum8(data)) & 0xFF


def checksum16(data: bytes) -> int:
    words = struct.unpack(f"<{len(data) // 2}H", data)
    return (0x10000 - (sum(words) & 0xFFFF)) & 0xFFFF


# ---------------------------------------------------------------- sections

def section(stype: int, body: bytes) -> bytes:
    """EFI_COMMON_SECTION_HEADER (4 B) or, when too big, EFI_COMMON_SECTION_HEADER2 (8 B)."""
    size = 4 + len(body)
    if size < MAX_FFS_SIZE:
        return size.to_bytes(3, "little") + bytes([stype]) + body
    return b"\xff\xff\xff" + bytes([stype]) + struct.pack("<I", 8 + len(body)) + body


def section_ext(stype: int, body: bytes) -> bytes:
    """Always the extended (Size 0xFFFFFF + ExtendedSize) header, as GenSec writes for >= 16 MiB."""
    return b"\xff\xff\xff" + bytes([stype]) + struct.pack("<I", 8 + len(body)) + body


def sections(*secs: bytes) -> bytes:
    """Concatenate sections, each 4-byte aligned from the start of the file data (GenSec pads 0)."""
    out = bytearray()
    for s in secs:
        out += b"\x00" * (align(len(out), 4) - len(out))
        out += s
    return bytes(out)


def ui(name: str) -> bytes:
    return section(ST_USER_INTERFACE, (name + "\0").encode("utf-16-le"))


def version(text: str, build: int = 0) -> bytes:
    return section(ST_VERSION, struct.pack("<H", build) + (text + "\0").encode("utf-16-le"))


def raw(data: bytes) -> bytes:
    return section(ST_RAW, data)


def fv_image(fv: bytes) -> bytes:
    return section(ST_FV_IMAGE, fv)


# DEPEX opcodes (PI vol 2, dependency expressions)
DEPEX_PUSH, DEPEX_AND, DEPEX_TRUE, DEPEX_END = 0x02, 0x03, 0x06, 0x08


def depex_body(*guids: uuid.UUID) -> bytes:
    """PUSH g1 PUSH g2 AND ... END, or TRUE END with no GUIDs."""
    if not guids:
        return bytes([DEPEX_TRUE, DEPEX_END])
    out = bytearray()
    for i, g in enumerate(guids):
        out += bytes([DEPEX_PUSH]) + g.bytes_le
        if i:
            out.append(DEPEX_AND)
    out.append(DEPEX_END)
    return bytes(out)


def pei_depex(*guids: uuid.UUID) -> bytes:
    return section(ST_PEI_DEPEX, depex_body(*guids))


def dxe_depex(*guids: uuid.UUID) -> bytes:
    return section(ST_DXE_DEPEX, depex_body(*guids))


def guid_defined(guid: uuid.UUID, payload: bytes, attributes: int = GUIDED_PROCESSING_REQUIRED,
                 extra: bytes = b"") -> bytes:
    """EFI_GUID_DEFINED_SECTION: GUID, DataOffset (from section start), Attributes, extra header."""
    data_offset = 4 + 20 + len(extra)
    if data_offset + len(payload) >= MAX_FFS_SIZE:
        data_offset += 4
        return section_ext(ST_GUID_DEFINED, guid.bytes_le + struct.pack("<HH", data_offset, attributes)
                           + extra + payload)
    return section(ST_GUID_DEFINED, guid.bytes_le + struct.pack("<HH", data_offset, attributes) + extra + payload)


def crc32_section(payload: bytes, crc: int | None = None) -> bytes:
    """CRC32_SECTION_HEADER (GenSec.c, DxeCrc32GuidedSectionExtractLib.c): UINT32 CRC32 of the data
    after the header; Attributes = AUTH_STATUS_VALID (no processing needed to read the data)."""
    value = zlib.crc32(payload) if crc is None else crc
    return guid_defined(CRC32_GUID, payload, GUIDED_AUTH_STATUS_VALID, struct.pack("<I", value))


def compression(payload_compressed: bytes, uncompressed_length: int, ctype: int = 1) -> bytes:
    """EFI_COMPRESSION_SECTION: UINT32 UncompressedLength, UINT8 CompressionType (1 = EFI standard)."""
    return section(ST_COMPRESSION, struct.pack("<IB", uncompressed_length, ctype) + payload_compressed)


# ---------------------------------------------------------------- FFS files

def ffs_file(name: uuid.UUID, ftype: int, data: bytes, *, attributes: int = 0, erase_polarity: bool = True,
             large: bool = False, checksum: bool = False, state: int = STATE_VALID) -> bytes:
    """EFI_FFS_FILE_HEADER (24 B) or EFI_FFS_FILE_HEADER2 (32 B, FFS_ATTRIB_LARGE_FILE)."""
    if checksum:
        attributes |= FFS_ATTRIB_CHECKSUM
    if large or 24 + len(data) > MAX_FFS_SIZE:
        attributes |= FFS_ATTRIB_LARGE_FILE
        size = 32 + len(data)
        tail = struct.pack("<Q", size)
        size3 = b"\x00\x00\x00"
    else:
        size = 24 + len(data)
        tail = b""
        size3 = size.to_bytes(3, "little")
    file_sum = checksum8(data) if attributes & FFS_ATTRIB_CHECKSUM else FFS_FIXED_CHECKSUM
    # Header checksum: 8-bit sum of the header with State and IntegrityCheck.File taken as 0.
    hdr = name.bytes_le + b"\x00\x00" + bytes([ftype, attributes]) + size3 + b"\x00" + tail
    hsum = checksum8(hdr)
    stored_state = (~state & 0xFF) if erase_polarity else state
    return (name.bytes_le + bytes([hsum, file_sum, ftype, attributes]) + size3 + bytes([stored_state])
            + tail + data)


def pad_file(size: int, erase_polarity: bool = True, content: bytes | None = None) -> bytes:
    """An EFI_FV_FILETYPE_FFS_PAD file of exactly `size` bytes (all-FF name, like GenFv)."""
    if content is None:
        content = (b"\xff" if erase_polarity else b"\x00") * (size - 24)
    return ffs_file(PAD_NAME, FT_PAD, content, erase_polarity=erase_polarity)


# ---------------------------------------------------------------- volumes

def fv_header(fs_guid: uuid.UUID, fv_length: int, attributes: int, block_map: list[tuple[int, int]],
              ext_header_offset: int = 0, checksum: int | None = None) -> bytes:
    bm = b"".join(struct.pack("<II", n, l) for n, l in block_map) + b"\x00" * 8
    header_length = FV_HEADER_SIZE + len(bm)
    hdr = struct.pack(FV_HEADER_FMT, b"\x00" * 16, fs_guid.bytes_le, fv_length, b"_FVH", attributes,
                      header_length, 0, ext_header_offset, 0, 2) + bm
    value = checksum16(hdr) if checksum is None else checksum
    return hdr[:0x32] + struct.pack("<H", value) + hdr[0x34:]


def fv_ext_header(fv_name: uuid.UUID, entries: bytes = b"") -> bytes:
    """EFI_FIRMWARE_VOLUME_EXT_HEADER {FvName, ExtHeaderSize} + entries."""
    return fv_name.bytes_le + struct.pack("<I", 20 + len(entries)) + entries


def volume(files: list[bytes], *, size: int | None = None, fv_name: uuid.UUID | None = None,
           fs_guid: uuid.UUID = FFS2_GUID, attributes: int = FVB2_OVMF, block_size: int = 0x1000,
           vtf: bytes | None = None) -> bytes:
    """A firmware volume holding `files` (each already an FFS file), 8-byte aligned from the FV start.

    With `fv_name`, the ext header goes in a leading pad file (GenFvInternalLib.c). With `vtf`
    (a complete FFS file), it is placed so that it ends at the end of the volume, after a pad file.
    `size` None = smallest multiple of `block_size`.
    """
    erase = bool(attributes & FVB2_ERASE_POLARITY)
    free = b"\xff" if erase else b"\x00"
    header_len = FV_HEADER_SIZE + 16  # one block-map entry + terminator
    body = bytearray()
    ext_off = 0
    if fv_name is not None:
        ext = fv_ext_header(fv_name)
        body += ffs_file(PAD_NAME, FT_PAD, ext, erase_polarity=erase)
        ext_off = header_len + 24
    for f in files:
        pos = header_len + len(body)
        body += free * (align(pos, 8) - pos)
        body += f
    used = header_len + len(body)
    if size is None:
        need = align(used, 8) + (len(vtf) + 24 if vtf else 0)
        size = align(need, block_size)
    if vtf is not None:
        start = size - len(vtf)
        if start % 8:
            raise ValueError("VTF size must keep the file 8-byte aligned")
        gap_at = align(used, 8)
        body += free * (gap_at - used)
        gap = start - gap_at
        if gap:
            if gap < 24:
                raise ValueError("no room for the pad file before the VTF")
            body += pad_file(gap, erase)
        body += vtf
    else:
        body += free * (size - header_len - len(body))
    if header_len + len(body) != size:
        raise ValueError(f"files ({header_len + len(body):#x}) do not fit the volume ({size:#x})")
    hdr = fv_header(fs_guid, size, attributes, [(size // block_size, block_size)], ext_off)
    return hdr + bytes(body)


def fv_alignment(fv: bytes) -> int:
    """EFI_FVB2_ALIGNMENT (bits 16-20 of Attributes): the FV must start 2^n aligned."""
    attributes = struct.unpack_from("<I", fv, 0x2C)[0]
    return 1 << ((attributes >> 16) & 0x1F)


def fv_sections(*fvs: bytes, start: int = 0) -> bytes:
    """FV_IMAGE sections for `fvs`, each preceded when needed by a RAW pad section so the volume
    starts at its EFI_FVB2_ALIGNMENT relative to the section area (which the caller places at
    `start` mod that alignment). GenSec does the same: the RAW section before PEIFV in OVMF."""
    out = bytearray()
    for fv in fvs:
        a = max(fv_alignment(fv), 4)
        pos = align(start + len(out), 4)
        out += b"\x00" * (pos - start - len(out))
        if (pos + 4) % a:
            k = (-(pos + 4)) % a
            k = k if k >= 4 else k + a  # a RAW section is at least its 4-byte header
            out += section(ST_RAW, b"\x00" * (k - 4))
        out += fv_image(fv)
    return bytes(out)
