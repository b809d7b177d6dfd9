"""The well-formed sample images: the TDVF-style demo and what Debian's images lack.

Each builder returns the image bytes; GUIDs of what they hold are module constants so the
tests (and README) can name them.
"""
from __future__ import annotations

import lzma
import struct
import uuid

import brotli
from uefi_firmware import efi_compressor

from . import bcj, ffs, nvstore, ovmf_table, pe

G = uuid.UUID

# OVMF names (OvmfPkgX64.fdf, module .inf files)
SECFV_NAME = G("763BED0D-DE9F-48F5-81F1-3E90E1B1A015")
FVMAIN_COMPACT_NAME = G("48DB5E17-707C-472D-91CD-1613E7EF51B0")
FVMAIN_FILE = G("9E21FD93-9C72-4C15-8C4B-E77F1DB2D792")
PEIFV_NAME = G("6938079B-B503-4E3D-9D24-B28337A25806")
DXEFV_NAME = G("7CB8BDC9-F8EB-4F34-AAEA-3EE4AF6516A1")
SEC_CORE = G("DF1CCEF6-F301-4A63-9661-FC6030DCC880")  # SecMain
PEI_CORE = G("52C05B14-0B98-496C-BC3B-04B50211D680")  # PeiCore
PCD_PEIM = G("9B3ADA4F-AE56-4C24-8DEA-F03B7558AE50")  # PcdPeim
PLATFORM_PEI = G("222C386D-5ABC-4FB4-B124-FBB82488ACF4")  # PlatformPei
DXE_CORE = G("D6A2CB7F-6A18-4E2F-B43B-9920A733700A")  # DxeCore
PCD_DXE = G("80CF7257-87AB-47F9-A3FE-D50B76D89541")  # PcdDxe
DEMO_DRIVER = G("F1C0DE00-0000-4000-8000-0000000000D1")  # ours
DEMO_RAW = G("F1C0DE00-0000-4000-8000-0000000000A1")  # ours: a RAW file
# DEPEX operands
PEI_PCD_PPI = G("06E81C58-4AD7-44BC-8390-F10265F72480")  # gPcdPpiGuid
PEI_MEMORY_DISCOVERED_PPI = G("F894643D-C449-42D1-8EA8-85BDD8C65BDE")
PCD_PROTOCOL = G("11B34006-D85B-4D0A-A290-D5A571310EF7")  # gPcdProtocolGuid
VARIABLE_ARCH_PROTOCOL = G("1E5668E2-8481-11D4-BCF1-0080C73C8881")

# Flash layout of the 2 MiB X64 OVMF (edk2-stable202211 OvmfPkg/Include/Fdf/OvmfPkgDefines.fdf.inc,
# OvmfPkg/OvmfPkgX64.fdf)
FD_SIZE = 0x200000
FD_BASE = 0xFFE00000
FVMAIN_OFFSET, FVMAIN_SIZE = 0x20000, 0x1AC000
SECFV_OFFSET, SECFV_SIZE = 0x1CC000, 0x34000
PEIFV_BASE, PEIFV_SIZE = 0x820000, 0xE0000  # where SEC decompresses them (MEMFD)
DXEFV_BASE, DXEFV_SIZE = 0x900000, 0xC00000

VTF_ATTRIBUTES = 0x08
LZMA_PRESET = 6  # edk2's LzmaCompress default level; deterministic for the same input


def lzma_alone(data: bytes) -> bytes:
    """edk2 LZMA section payload: .lzma-alone (5 B props, UINT64 size, stream).

    Python's encoder writes "size unknown" (all FF) and an end marker; edk2's LzmaCompress writes
    the real size, and edk2's LzmaDecompress.c sizes its output buffer from that field, so it is
    patched in. The end marker stays: the LZMA SDK accepts one right at the known size."""
    out = bytearray(lzma.compress(data, format=lzma.FORMAT_ALONE, preset=LZMA_PRESET))
    out[5:13] = struct.pack("<Q", len(data))
    return bytes(out)


def lzma_section(data: bytes) -> bytes:
    return ffs.guid_defined(ffs.LZMA_GUID, lzma_alone(data))


def lzmaf86_section(data: bytes) -> bytes:
    return ffs.guid_defined(ffs.LZMAF86_GUID, lzma_alone(bcj.encode(data)))


# BaseTools/Source/C/BrotliCompress/BrotliCompress.c: quality 9, the smallest window (>= 10 bits)
# whose (1 << lgwin) - 16 covers the input; the scratch size it stores is what the decoder allocated
# plus GAP_MEM_BLOCK (0x1000) plus 2 x 512 KiB file buffers. edk2's decompressor uses the scratch
# buffer as its only heap, so we store a generous bound instead of measuring allocations.
BROTLI_QUALITY = 9
BROTLI_GAP_MEM_BLOCK = 0x1000
BROTLI_FILE_BUFFERS = 2 * (1 << 19)
BROTLI_DECODER_TABLES = 0x10000  # decoder state + Huffman tables, generous


def brotli_section(data: bytes) -> bytes:
    """BrotliDecompressLibInternal.h: UINT64 decoded size @0, UINT64 scratch size @8, stream @0x10."""
    lgwin = 10
    while (1 << lgwin) - 16 < len(data) and lgwin < 24:
        lgwin += 1
    scratch = (1 << lgwin) + BROTLI_DECODER_TABLES + BROTLI_GAP_MEM_BLOCK + BROTLI_FILE_BUFFERS
    return ffs.guid_defined(ffs.BROTLI_GUID, struct.pack("<QQ", len(data), scratch)
                            + brotli.compress(data, quality=BROTLI_QUALITY, lgwin=lgwin))


def tiano_section(data: bytes) -> bytes:
    return ffs.guid_defined(ffs.TIANO_GUID, bytes(efi_compressor.TianoCompress(data, len(data))))


def efi_compression_section(data: bytes) -> bytes:
    return ffs.compression(bytes(efi_compressor.EfiCompress(data, len(data))), len(data), 1)


def module(name: uuid.UUID, ftype: int, ui: str, code: bytes, *, base: int, depex: bytes | None = None,
           subsystem: int = pe.SUBSYSTEM_EFI_BOOT_SERVICE_DRIVER) -> bytes:
    """An FFS file like edk2 builds for a module: [DEPEX] PE32 UI VERSION."""
    image = pe.pe32plus(code, f"{ui} data\0".encode(), image_base=base,
                        pdb_path=f"/build/OvmfX64/RELEASE_GCC5/X64/{ui}/{ui}/DEBUG/{ui}.dll",
                        pdb_guid=uuid.UUID(int=name.int ^ 0x5A5A), subsystem=subsystem)
    secs = ([depex] if depex else []) + [ffs.section(ffs.ST_PE32, image), ffs.ui(ui), ffs.version("1.0")]
    return ffs.ffs_file(name, ftype, ffs.sections(*secs))


def peifv() -> bytes:
    def build(bases):
        files = [
            module(PEI_CORE, ffs.FT_PEI_CORE, "PeiCore", pe.CODE_RETURN_SUCCESS, base=bases.get("PeiCore", 0)),
            module(PCD_PEIM, ffs.FT_PEIM, "PcdPeim", pe.CODE_RETURN_SUCCESS, base=bases.get("PcdPeim", 0),
                   depex=ffs.pei_depex()),
            module(PLATFORM_PEI, ffs.FT_PEIM, "PlatformPei", pe.CODE_RETURN_SUCCESS,
                   base=bases.get("PlatformPei", 0), depex=ffs.pei_depex(PEI_PCD_PPI, PEI_MEMORY_DISCOVERED_PPI)),
        ]
        return ffs.volume(files, size=PEIFV_SIZE, fv_name=PEIFV_NAME)
    build.markers = {k: f"{k}/DEBUG".encode() for k in ("PeiCore", "PcdPeim", "PlatformPei")}
    return _rebase(build, PEIFV_BASE)


def dxefv() -> bytes:
    def build(bases):
        files = [
            module(DXE_CORE, ffs.FT_DXE_CORE, "DxeCore", pe.CODE_RETURN_SUCCESS, base=bases.get("DxeCore", 0)),
            module(PCD_DXE, ffs.FT_DRIVER, "PcdDxe", pe.CODE_RETURN_SUCCESS, base=bases.get("PcdDxe", 0),
                   depex=ffs.dxe_depex()),
            module(DEMO_DRIVER, ffs.FT_DRIVER, "DemoDxe", pe.CODE_RETURN_SUCCESS, base=bases.get("DemoDxe", 0),
                   depex=ffs.dxe_depex(PCD_PROTOCOL, VARIABLE_ARCH_PROTOCOL)),
            ffs.pad_file(0x40),
            ffs.ffs_file(DEMO_RAW, ffs.FT_RAW, b"fwinspect demo RAW file\n".ljust(64, b"\0")),
        ]
        return ffs.volume(files, size=DXEFV_SIZE, fv_name=DXEFV_NAME)
    build.markers = {k: f"{k}/DEBUG".encode() for k in ("DxeCore", "PcdDxe", "DemoDxe")}
    return _rebase(build, DXEFV_BASE)


def _rebase(build, base: int) -> bytes:
    """Find each PE's header in a first build, then rebuild with ImageBase = where it will lie."""
    first = build({})
    bases = {}
    for key, marker in build.markers.items():
        path_at = first.find(marker)
        mz = first.rfind(b"MZ\0\0", 0, path_at)
        bases[key] = base + mz
    return build(bases)


def fvmain_compact() -> bytes:
    inner = ffs.fv_sections(peifv(), dxefv())
    f = ffs.ffs_file(FVMAIN_FILE, ffs.FT_FV_IMAGE, lzma_section(inner))
    return ffs.volume([f], size=FVMAIN_SIZE, fv_name=FVMAIN_COMPACT_NAME)


def secfv(**blob_args) -> bytes:
    def build(bases):
        sec = module(SEC_CORE, ffs.FT_SEC_CORE, "SecMain", pe.CODE_HALT_LOOP, base=bases.get("SecMain", 0))
        # Attributes 0x08: FFS_ATTRIB_DATA_ALIGNMENT 1 (16 bytes), as in Debian's OVMF.fd VTF
        vtf = ffs.ffs_file(ffs.VTF_GUID, ffs.FT_RAW, ovmf_table.reset_vector_blob(**blob_args),
                           attributes=VTF_ATTRIBUTES)
        return ffs.volume([sec], size=SECFV_SIZE, fv_name=SECFV_NAME, vtf=vtf)
    build.markers = {"SecMain": b"SecMain/DEBUG"}
    return _rebase(build, FD_BASE + SECFV_OFFSET)


def demo_tdvf(*, main: bytes | None = None, **blob_args) -> bytes:
    """The 2 MiB TDVF-style unified image: NV store, FVMAIN_COMPACT, SECFV.

Layout as OvmfPkg/Include/Fdf/OvmfPkgDefines.fdf.inc; the reset-vector GUIDed table as
OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.nasm.inc; TDX and SEV metadata as
OvmfPkg/ResetVector/X64/IntelTdxMetadata.nasm.inc and OvmfSevMetadata.nasm.inc."""
    cert = nvstore.demo_certificate()
    nv = nvstore.nv_volume([rec for _, rec in nvstore.demo_variables(cert)])
    img = nv + (main if main is not None else fvmain_compact()) + secfv(**blob_args)
    assert len(img) == FD_SIZE
    return img


# ------------------------------------------------------------------ FFSv3 large file

FFS3_FV_NAME = G("F1C0DE00-0000-4000-8000-0000000000F3")
LARGE_FILE = G("F1C0DE00-0000-4000-8000-00000000016E")
SMALL_FILE = G("F1C0DE00-0000-4000-8000-000000000005")
LARGE_PAYLOAD_SIZE = 0x1000000 + 0x1000  # 16 MiB + 4 KiB: needs FFS_ATTRIB_LARGE_FILE
LARGE_MARKER = b"fwinspect: start of a 16 MiB + 4 KiB RAW section\n"


def large_payload() -> bytes:
    return LARGE_MARKER + bytes(LARGE_PAYLOAD_SIZE - len(LARGE_MARKER))


def ffsv3_large() -> bytes:
    small = ffs.ffs_file(SMALL_FILE, ffs.FT_FREEFORM, ffs.sections(ffs.raw(b"small file before a large one\n"),
                                                                    ffs.ui("Small")))
    large = ffs.ffs_file(LARGE_FILE, ffs.FT_FREEFORM,
                         ffs.sections(ffs.section_ext(ffs.ST_RAW, large_payload()), ffs.ui("Large")),
                         large=True)
    return ffs.volume([small, large], fv_name=FFS3_FV_NAME, fs_guid=ffs.FFS3_GUID, block_size=0x10000)


# ------------------------------------------------------------------ compressed sections

COMPRESSED_FV_NAME = G("F1C0DE00-0000-4000-8000-0000000000C0")
# kind -> (file GUID, section builder)
COMPRESSED_FILES = {
    "Brotli": G("F1C0DE00-0000-4000-8000-000000000B01"),
    "LzmaF86": G("F1C0DE00-0000-4000-8000-000000000F86"),
    "Lzma": G("F1C0DE00-0000-4000-8000-0000000001A0"),
    "EfiCompress": G("F1C0DE00-0000-4000-8000-000000000E01"),
    "Tiano": G("F1C0DE00-0000-4000-8000-000000000A31"),
    "NotCompressed": G("F1C0DE00-0000-4000-8000-000000000E00"),
    "Crc32": G("F1C0DE00-0000-4000-8000-000000000C32"),
    "Crc32Bad": G("F1C0DE00-0000-4000-8000-000000000BAD"),
}
CRC32_WRONG_XOR = 0xDEADBEEF

# x86-64 with near CALLs and JMPs so the BCJ filter has something to convert
CODE_WITH_CALLS = bytes.fromhex("4883ec28" "e810000000" "e80b000000" "e9f0ffffff" "4883c428" "c3") * 8


def inner_payload(kind: str) -> bytes:
    """The sections inside each compressed section: a RAW naming the kind, a PE32 (calls for
    BCJ), a UI. Deterministic and distinct per kind."""
    image = pe.pe32plus(CODE_WITH_CALLS, f"{kind}\0".encode(), image_base=0x10000,
                        pdb_path=f"/build/{kind}.dll", pdb_guid=COMPRESSED_FILES[kind])
    return ffs.sections(ffs.raw(f"payload of the {kind} section\n".encode()),
                        ffs.section(ffs.ST_PE32, image), ffs.ui(f"Inner{kind}"))


def compressed_section(kind: str, data: bytes) -> bytes:
    if kind == "Brotli":
        return brotli_section(data)
    if kind == "LzmaF86":
        return lzmaf86_section(data)
    if kind == "Lzma":
        return lzma_section(data)
    if kind == "EfiCompress":
        return efi_compression_section(data)
    if kind == "Tiano":
        return tiano_section(data)
    if kind == "NotCompressed":
        return ffs.compression(data, len(data), 0)
    if kind == "Crc32":
        return ffs.crc32_section(data)
    if kind == "Crc32Bad":
        import zlib
        return ffs.crc32_section(data, crc=zlib.crc32(data) ^ CRC32_WRONG_XOR)
    raise KeyError(kind)


def compressed_sections() -> bytes:
    files = [ffs.ffs_file(g, ffs.FT_FREEFORM, ffs.sections(compressed_section(k, inner_payload(k)), ffs.ui(k)))
             for k, g in COMPRESSED_FILES.items()]
    return ffs.volume(files, fv_name=COMPRESSED_FV_NAME)


# ------------------------------------------------------------------ nested volumes

NESTED_FV_NAMES = [G(f"F1C0DE00-0000-4000-8000-00000000AE{i:02X}") for i in range(4)]
NESTED_FILES = [G(f"F1C0DE00-0000-4000-8000-00000000AF{i:02X}") for i in range(4)]
NESTED_LZMA_LEVEL = 1  # the FV at this depth sits inside an LZMA section


def nested_fv() -> bytes:
    """FV0 > FV_IMAGE file > FV section > FV1 > file > LZMA > FV section > FV2 > file > FV3 > RAW."""
    fv = ffs.volume([ffs.ffs_file(NESTED_FILES[3], ffs.FT_RAW, b"deepest RAW file\n".ljust(32, b"\0"))],
                    fv_name=NESTED_FV_NAMES[3])
    for level in (2, 1, 0):
        sec = ffs.fv_sections(fv)
        if level == NESTED_LZMA_LEVEL:
            sec = lzma_section(sec)
        f = ffs.ffs_file(NESTED_FILES[level], ffs.FT_FV_IMAGE, ffs.sections(sec, ffs.ui(f"Level{level + 1}")))
        fv = ffs.volume([f], fv_name=NESTED_FV_NAMES[level])
    return fv


def chain_fv(depth: int) -> bytes:
    """`depth` FVs, each the only file (FV_IMAGE) of the one around it."""
    fv = ffs.volume([ffs.ffs_file(NESTED_FILES[3], ffs.FT_RAW, b"bottom\0\0")], block_size=8)
    for i in range(depth - 1):
        f = ffs.ffs_file(uuid.UUID(int=NESTED_FILES[0].int + i + 1), ffs.FT_FV_IMAGE, ffs.fv_sections(fv))
        fv = ffs.volume([f], block_size=8)
    return fv


# ------------------------------------------------------------------ erase polarity 0

EP0_FV_NAME = G("F1C0DE00-0000-4000-8000-0000000000E0")
EP0_FILES = [G("F1C0DE00-0000-4000-8000-0000000000E1"), G("F1C0DE00-0000-4000-8000-0000000000E2")]


def erase_polarity_0() -> bytes:
    attrs = ffs.FVB2_OVMF & ~ffs.FVB2_ERASE_POLARITY
    files = [
        ffs.ffs_file(EP0_FILES[0], ffs.FT_FREEFORM, ffs.sections(ffs.raw(b"erase polarity 0\n"), ffs.ui("Ep0")),
                     erase_polarity=False),
        ffs.pad_file(0x30, erase_polarity=False),
        ffs.ffs_file(EP0_FILES[1], ffs.FT_RAW, b"raw file, state 0x07 stored as is\n".ljust(40, b"\0"),
                     erase_polarity=False, checksum=True),
    ]
    return ffs.volume(files, fv_name=EP0_FV_NAME, attributes=attrs)
