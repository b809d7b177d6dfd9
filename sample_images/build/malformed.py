"""Deliberately malformed images: each is a good structure with one thing wrong, recorded as
(file, structure, field, offset, problem) for MANIFEST.json. Header checksums are re-fixed after
a field is changed, so that the named field is the only fault (except where the checksum is it).
"""
from __future__ import annotations

import lzma
import struct
import threading
import uuid
from dataclasses import asdict, dataclass

from . import ffs, images, nvstore, ovmf_table

G = uuid.UUID
BASE_FV_NAME = G("F1C0DE00-0000-4000-8000-0000000BAD00")
FILE_A = G("F1C0DE00-0000-4000-8000-0000000BAD0A")  # FREEFORM: RAW section + UI
FILE_B = G("F1C0DE00-0000-4000-8000-0000000BAD0B")  # RAW with FFS_ATTRIB_CHECKSUM
FILE_LZMA = G("F1C0DE00-0000-4000-8000-0000000BAD1A")

BOMB_SIZE = 1 << 30  # what the LZMA bomb decompresses to (and says it does)
BOMB_CHUNK = 1 << 24  # fed to the compressor 16 MiB at a time: never the whole GiB in memory
CHAIN_DEPTH = 64
LIES_TABLE_LENGTH = 0x1000  # the reset-vector table claims 4 KiB; the VTF holds 0x9A0 bytes
TDX_COUNT_HUGE = 0xFFFFFFFF
TDX_PAST_SIZE = 0x300000  # BFV RawDataSize: DataOffset 0x20000 + this ends past the 2 MiB image
CORRUPT_AT = 24  # bytes into the LZMA stream (after the 13-byte header) that get inverted
CORRUPT_LEN = 64


@dataclass
class Fault:
    file: str
    structure: str
    field: str
    offset: int
    problem: str

    def to_json(self) -> dict:
        d = asdict(self)
        d["offset"] = f"{self.offset:#x}"
        return d


def base_fv() -> bytes:
    a = ffs.ffs_file(FILE_A, ffs.FT_FREEFORM, ffs.sections(ffs.raw(b"file A raw section\n"), ffs.ui("FileA")))
    b = ffs.ffs_file(FILE_B, ffs.FT_RAW, b"file B, data checksummed\n".ljust(32, b"\0"), checksum=True)
    return ffs.volume([a, b], fv_name=BASE_FV_NAME)


def _fix_fv_checksum(fv: bytearray, header_length: int = 0x48) -> None:
    struct.pack_into("<H", fv, 0x32, 0)
    struct.pack_into("<H", fv, 0x32, ffs.checksum16(bytes(fv[:header_length])))


def _fix_ffs_header(fv: bytearray, at: int) -> None:
    hdr = bytearray(fv[at:at + 24])
    hdr[0x10] = hdr[0x11] = hdr[0x17] = 0
    fv[at + 0x10] = ffs.checksum8(bytes(hdr))


def _file_at(data: bytes, name: uuid.UUID) -> int:
    return data.find(name.bytes_le)


def bomb_stream() -> bytes:
    """An .lzma-alone stream of BOMB_SIZE zeros (about 150 KB), compressed in chunks."""
    comp = lzma.LZMACompressor(format=lzma.FORMAT_ALONE, preset=0)
    zeros = bytes(BOMB_CHUNK)
    parts = [comp.compress(zeros) for _ in range(BOMB_SIZE // BOMB_CHUNK)]
    parts.append(comp.flush())
    out = bytearray(b"".join(parts))
    out[5:13] = struct.pack("<Q", BOMB_SIZE)  # the size it claims is the size it delivers
    return bytes(out)


class BombBuilder(threading.Thread):
    """liblzma releases the GIL, so the GiB of zeros compresses while the rest is built."""

    def __init__(self):
        super().__init__(daemon=True)
        self.result: bytes | None = None

    def run(self):
        self.result = bomb_stream()


def lzma_fv(payload: bytes) -> bytes:
    f = ffs.ffs_file(FILE_LZMA, ffs.FT_FREEFORM, ffs.sections(ffs.guid_defined(ffs.LZMA_GUID, payload)))
    return ffs.volume([f], fv_name=BASE_FV_NAME)


def build(main_fv: bytes, bomb: BombBuilder) -> tuple[dict[str, bytes], list[Fault]]:
    """All malformed images (name -> bytes) and their faults. `main_fv` is the demo's
    FVMAIN_COMPACT, reused for the demo-based variants."""
    out: dict[str, bytes] = {}
    faults: list[Fault] = []

    def add(name, data, structure, field, offset, problem):
        out[name] = bytes(data)
        faults.append(Fault(name, structure, field, offset, problem))

    base = base_fv()
    fv_len = len(base)
    a = _file_at(base, FILE_A)
    b = _file_at(base, FILE_B)

    d = bytearray(base)
    struct.pack_into("<H", d, 0x32, struct.unpack_from("<H", d, 0x32)[0] ^ 0x5555)
    add("fv-bad-checksum.fd", d, "EFI_FIRMWARE_VOLUME_HEADER", "Checksum", 0x32,
        "16-bit sum of the header is not 0")

    d = bytearray(base)
    struct.pack_into("<Q", d, 0x20, fv_len * 4)
    _fix_fv_checksum(d)
    add("fv-length-past-file.fd", d, "EFI_FIRMWARE_VOLUME_HEADER", "FvLength", 0x20,
        f"FvLength {fv_len * 4:#x} runs past the end of the {fv_len:#x}-byte file")

    d = bytearray(base)
    struct.pack_into("<Q", d, 0x20, 0)
    _fix_fv_checksum(d)
    add("fv-length-zero.fd", d, "EFI_FIRMWARE_VOLUME_HEADER", "FvLength", 0x20, "FvLength is 0")

    d = bytearray(base)
    struct.pack_into("<H", d, 0x30, 0x20)
    _fix_fv_checksum(d)
    add("fv-header-length-small.fd", d, "EFI_FIRMWARE_VOLUME_HEADER", "HeaderLength", 0x30,
        "HeaderLength 0x20 is smaller than the fixed header (0x38) plus block map; checksum is valid over 0x48")

    d = bytearray(base)
    nblocks = struct.unpack_from("<I", d, 0x38)[0]
    struct.pack_into("<I", d, 0x38, nblocks + 3)
    _fix_fv_checksum(d)
    add("fv-blockmap-mismatch.fd", d, "EFI_FV_BLOCK_MAP_ENTRY", "NumBlocks", 0x38,
        f"block map covers {(nblocks + 3) * 0x1000:#x} bytes but FvLength is {fv_len:#x}")

    d = bytearray(base)
    d[a + 0x10] ^= 0x5A
    add("ffs-header-checksum.fd", d, "EFI_FFS_FILE_HEADER", "IntegrityCheck.Header", a + 0x10,
        "8-bit header sum is not 0")

    d = bytearray(base)
    d[b + 0x11] ^= 0x5A
    add("ffs-data-checksum.fd", d, "EFI_FFS_FILE_HEADER", "IntegrityCheck.File", b + 0x11,
        "FFS_ATTRIB_CHECKSUM set but the 8-bit sum of the file data is not 0")

    d = bytearray(base)
    d[a + 0x14:a + 0x17] = b"\0\0\0"
    _fix_ffs_header(d, a)
    add("ffs-size-zero.fd", d, "EFI_FFS_FILE_HEADER", "Size", a + 0x14, "file Size is 0 (not a large file)")

    d = bytearray(base)
    d[a + 0x14:a + 0x17] = (0xFFFF00).to_bytes(3, "little")
    _fix_ffs_header(d, a)
    add("ffs-size-past-fv.fd", d, "EFI_FFS_FILE_HEADER", "Size", a + 0x14,
        f"file Size 0xffff00 runs past the end of the volume ({fv_len:#x})")

    sec = a + 24
    d = bytearray(base)
    d[sec:sec + 3] = b"\0\0\0"
    add("section-size-zero.fd", d, "EFI_COMMON_SECTION_HEADER", "Size", sec, "section Size is 0")

    d = bytearray(base)
    file_size = int.from_bytes(base[a + 0x14:a + 0x17], "little")
    d[sec:sec + 3] = (file_size - 24 + 0x100).to_bytes(3, "little")
    add("section-past-file.fd", d, "EFI_COMMON_SECTION_HEADER", "Size", sec,
        "section Size runs 0x100 bytes past the end of its file")

    good = images.lzma_alone(b"a payload that will not survive\n" * 64)
    bad = bytearray(good)
    for i in range(13 + CORRUPT_AT, min(len(bad), 13 + CORRUPT_AT + CORRUPT_LEN)):
        bad[i] ^= 0xFF
    d = lzma_fv(bytes(bad))
    sec = _file_at(d, FILE_LZMA) + 24
    add("lzma-corrupt.fd", d, "EFI_GUID_DEFINED_SECTION (LZMA)", "stream", sec + 0x18 + 13 + CORRUPT_AT,
        f"LZMA stream bytes inverted from here ({CORRUPT_LEN} bytes); section at {sec:#x}")

    bomb.join()
    d = lzma_fv(bomb.result)
    sec = _file_at(d, FILE_LZMA) + 24
    add("lzma-bomb.fd", d, "EFI_GUID_DEFINED_SECTION (LZMA)", "UncompressedSize", sec + 0x18 + 5,
        f"a {len(bomb.result):#x}-byte LZMA stream that claims and decompresses to {BOMB_SIZE:#x} bytes of zeros")

    d = images.chain_fv(CHAIN_DEPTH)
    add("fv-chain-64.fd", d, "EFI_FIRMWARE_VOLUME_HEADER", "(nesting)", 0,
        f"{CHAIN_DEPTH} volumes nested in FV_IMAGE sections, each inside the previous")

    demo = images.demo_tdvf(main=main_fv)
    cut = images.FVMAIN_OFFSET + 0x78 + 0x600
    add("truncated.fd", demo[:cut], "EFI_FFS_FILE_HEADER", "Size", images.FVMAIN_OFFSET + 0x78 + 0x14,
        f"image cut at {cut:#x}, inside the FVMAIN_COMPACT FV_IMAGE file and far short of FvLength")

    e = images.FD_SIZE
    d = images.demo_tdvf(main=main_fv, table_length=LIES_TABLE_LENGTH)
    add("rvtable-length-lies.fd", d, "OVMF reset-vector GUIDed table", "Length", e - 0x32,
        f"table length {LIES_TABLE_LENGTH:#x} reaches before the start of the VTF file")

    tdvf_at = e - ovmf_table.TDVF_FROM_END
    td = ovmf_table.tdvf_descriptor(ovmf_table.TDX_SECTIONS_2M, count=TDX_COUNT_HUGE)
    d = images.demo_tdvf(main=main_fv, tdvf=td)
    add("tdx-count-huge.fd", d, "TDVF_DESCRIPTOR", "NumberOfSectionEntry", tdvf_at + 12,
        "NumberOfSectionEntry 0xFFFFFFFF (Length says 6 sections)")

    secs = list(ovmf_table.TDX_SECTIONS_2M)
    do, _, ma, _, t, at = secs[0]
    secs[0] = (do, TDX_PAST_SIZE, ma, TDX_PAST_SIZE, t, at)
    d = images.demo_tdvf(main=main_fv, tdvf=ovmf_table.tdvf_descriptor(secs))
    add("tdx-section-past-image.fd", d, "TDVF_SECTION", "RawDataSize", tdvf_at + 16 + 4,
        f"BFV DataOffset 0x20000 + RawDataSize {TDX_PAST_SIZE:#x} ends past the {e:#x}-byte image")

    cert = nvstore.demo_certificate()
    recs = [rec for _, rec in nvstore.demo_variables(cert)]
    gv = nvstore.GLOBAL_VARIABLE_GUID
    recs.insert(1, nvstore.variable("Broken", gv, b"\x01", nvstore.NV | nvstore.BS, name_size=0xFFFFFFFF))
    d = nvstore.nv_volume(recs)
    var_at = 0x48 + 28 + len(recs[0])
    add("var-namesize-huge.fd", d, "AUTHENTICATED_VARIABLE_HEADER", "NameSize", var_at + 36,
        "NameSize 0xFFFFFFFF runs far past the variable store")
    return out, faults
