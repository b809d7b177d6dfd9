"""Wire forms the decoder tests pack by hand with struct, independent of the project's declarations."""
from __future__ import annotations

import hashlib
import struct
import uuid


def efi_guid(g: uuid.UUID | str) -> bytes:
    """EFI_GUID field by field (UEFI 2.10 Appendix A; MdePkg/Include/Uefi/UefiBaseType.h): UINT32
    Data1, UINT16 Data2, UINT16 Data3, little-endian, then UINT8 Data4[8] as in the text form."""
    g = uuid.UUID(str(g))
    return struct.pack("<IHH", g.time_low, g.time_mid, g.time_hi_version) + g.bytes[8:]


# -- the TDVF descriptor and the MRTD, straight from the specs --------------------------------------
# OVMF GUIDed table (edk2 OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.asm; QEMU hw/i386/pc_sysfw_ovmf.c)
OVMF_TABLE_FOOTER_GUID = uuid.UUID("96b582de-1fb2-45f7-baea-a366c55a082d")
TDX_METADATA_OFFSET_GUID = uuid.UUID("e47a6535-984a-4798-865e-4685a7bf8ec2")
MR_EXTEND, PAGE_AUG = 0x1, 0x2          # TDVF_SECTION Attributes (td-shim doc/tdshim_spec.md)


def tdvf_sections(image: bytes) -> list[tuple[int, int, int, int, int, int]]:
    """(DataOffset, RawDataSize, MemoryAddress, MemoryDataSize, Type, Attributes) of each
    TDVF_SECTION, found by walking the OVMF GUIDed table back from its footer at the image's end."""
    end = len(image)
    assert uuid.UUID(bytes_le=bytes(image[end - 0x30:end - 0x20])) == OVMF_TABLE_FOOTER_GUID
    table_len, = struct.unpack_from("<H", image, end - 0x32)
    start, pos = end - 0x20 - table_len, end - 0x32
    while pos > start:
        guid = uuid.UUID(bytes_le=bytes(image[pos - 16:pos]))
        length, = struct.unpack_from("<H", image, pos - 18)
        if guid == TDX_METADATA_OFFSET_GUID:
            desc = end - struct.unpack_from("<I", image, pos - length)[0]
            sig, _length, version, n = struct.unpack_from("<4sIII", image, desc)
            assert (sig, version) == (b"TDVF", 1)
            return [struct.unpack_from("<IIQQII", image, desc + 16 + 32 * i) for i in range(n)]
        pos -= length
    raise AssertionError("no TDX metadata offset entry in the GUIDed table")


def reference_mrtd(image: bytes, order: str = "per-page", rebase: int = 0) -> str:
    """MRTD as the TDX module builds it (Intel TDX Module ABI TDH.MEM.PAGE.ADD / TDH.MR.EXTEND;
    128-byte records as td-shim doc/tdshim_spec.md quotes them): per page a PAGE.ADD record
    ("MEM.PAGE.ADD", GPA at byte 16) unless PAGE.AUG, and with MR.EXTEND 16 records ("MR.EXTEND",
    the chunk's GPA) each followed by its 256 bytes; "two-pass" puts a section's PAGE.ADDs first.
    `rebase`: subtracted from DataOffset (a CODE-only file whose table is the unified image's)."""
    h = hashlib.sha384()
    for off, raw, gpa, size, _typ, attrs in tdvf_sections(image):
        data = bytes(image[off - rebase:off - rebase + raw]).ljust(size, b"\0") if raw else bytes(size)
        add, extend = not attrs & PAGE_AUG, attrs & MR_EXTEND
        pages = size // 0x1000
        if order == "two-pass" and add:
            for p in range(pages):
                h.update(b"MEM.PAGE.ADD".ljust(16, b"\0") + struct.pack("<Q", gpa + p * 0x1000) + bytes(104))
        for p in range(pages):
            if order == "per-page" and add:
                h.update(b"MEM.PAGE.ADD".ljust(16, b"\0") + struct.pack("<Q", gpa + p * 0x1000) + bytes(104))
            if extend:
                for c in range(16):
                    at = p * 0x1000 + c * 256
                    h.update(b"MR.EXTEND".ljust(16, b"\0") + struct.pack("<Q", gpa + at) + bytes(104))
                    h.update(data[at:at + 256])
    return h.hexdigest()
