"""Hostile flash images, each run as a whole `fwinspect fd` process (README, "Budgets": exit
0/1/2, no internal error, peak RSS <= 256 MiB; the time is measured in benchmarks/hostile.py).

Volumes, files and sections are written with struct.pack from the PI spec 1.8 vol 3 layouts
(edk2 MdePkg/Include/Pi/PiFirmwareVolume.h, PiFirmwareFile.h):

    EFI_FIRMWARE_VOLUME_HEADER  ZeroVector[16] FileSystemGuid FvLength:u64 Signature "_FVH"
                                Attributes:u32 HeaderLength:u16 Checksum:u16 ExtHeaderOffset:u16
                                Reserved:u8 Revision:u8 BlockMap[] {NumBlocks:u32 Length:u32} {0,0}
    EFI_FFS_FILE_HEADER         Name IntegrityCheck{Header:u8 File:u8} Type:u8 Attributes:u8
                                Size[3] State:u8 (+ ExtendedSize:u64 with FFS_ATTRIB_LARGE_FILE)
    EFI_COMMON_SECTION_HEADER   Size[3] Type:u8 (Size 0xFFFFFF: ExtendedSize:u32 follows)
    EFI_GUID_DEFINED_SECTION    SectionDefinitionGuid DataOffset:u16 Attributes:u16

GUIDed payloads as edk2 writes them: LZMA (MdeModulePkg/Library/LzmaCustomDecompressLib: 5 property
bytes, UINT64 size, LZMA1 data), LZMA + x86 BCJ (LzmaArchCustomDecompressLib, the same after the x86
branch converter), Brotli (BrotliCustomDecompressLib: UINT64 size, UINT64 scratch size, stream).
"""
from __future__ import annotations

import lzma
import struct
import uuid
from pathlib import Path

import pytest

from tests.hostile.harness import run_fwinspect

FFS2_GUID = uuid.UUID("8c8ce578-8a3d-4f1c-9935-896185c32dd3")
LZMA_GUID = uuid.UUID("ee4e5898-3914-4259-9d6e-dc7bd79403cf")
LZMAF86_GUID = uuid.UUID("d42ae6bd-1352-4bfb-909a-ca72a6eae889")
BROTLI_GUID = uuid.UUID("3d532050-5cda-4fd0-879e-0f7f630d5afb")
EFI_FVB2_ERASE_POLARITY = 0x800
FV_HEADER_LENGTH = 0x48            # 0x38 + one block map entry + the {0,0} terminator
EFI_FV_FILETYPE_RAW, EFI_FV_FILETYPE_FREEFORM = 0x01, 0x02
EFI_SECTION_COMPRESSION, EFI_SECTION_GUID_DEFINED, EFI_SECTION_USER_INTERFACE = 0x01, 0x02, 0x15
EFI_SECTION_FIRMWARE_VOLUME_IMAGE, EFI_SECTION_RAW = 0x17, 0x19
EFI_GUIDED_SECTION_PROCESSING_REQUIRED = 0x01
FFS_FIXED_CHECKSUM = 0xAA
# EFI_FILE_HEADER_CONSTRUCTION | EFI_FILE_HEADER_VALID | EFI_FILE_DATA_VALID, stored inverted when
# the volume's erase polarity is 1 (PI vol 3 2.1.4.1).
STATE_VALID = ~0x07 & 0xFF
MIB = 1 << 20


def _pad8(n: int) -> int:
    return (n + 7) & ~7


def section(stype: int, body: bytes) -> bytes:
    size = 4 + len(body)
    if size < 0xFFFFFF:
        return size.to_bytes(3, "little") + bytes([stype]) + body
    return b"\xff\xff\xff" + bytes([stype]) + struct.pack("<I", 8 + len(body)) + body


def sections(*secs: bytes) -> bytes:
    """A section stream: each section starts 4-byte aligned (PI vol 3 2.2.4)."""
    out = b""
    for s in secs:
        out += bytes(-len(out) % 4) + s
    return out


def guided(guid: uuid.UUID, payload: bytes) -> bytes:
    return section(EFI_SECTION_GUID_DEFINED,
                   guid.bytes_le + struct.pack("<HH", 4 + 20, EFI_GUIDED_SECTION_PROCESSING_REQUIRED) + payload)


def lzma_payload(data: bytes, filters_before: tuple = ()) -> bytes:
    """edk2's LZMA layout: props byte (lc=3 lp=0 pb=2 -> 0x5D), UINT32 dictionary size, UINT64 size."""
    dict_size = 1 << 23
    raw = lzma.compress(data, format=lzma.FORMAT_RAW,
                        filters=[*filters_before, {"id": lzma.FILTER_LZMA1, "dict_size": dict_size}])
    return struct.pack("<BIQ", 0x5D, dict_size, len(data)) + raw


def brotli_payload(data: bytes) -> bytes:
    import brotli
    return struct.pack("<QQ", len(data), 0) + brotli.compress(data, quality=5)


def ffs_file(name: uuid.UUID, ftype: int, body: bytes) -> bytes:
    size = 24 + len(body)
    assert size < 1 << 24, "large files are not needed here"
    hdr = bytearray(name.bytes_le + struct.pack("<BBBB", 0, 0, ftype, 0) + size.to_bytes(3, "little") + b"\0")
    hdr[0x10] = -sum(hdr) & 0xFF       # header checksum with State and IntegrityCheck.File as 0
    hdr[0x11] = FFS_FIXED_CHECKSUM
    hdr[0x17] = STATE_VALID
    return bytes(hdr) + body


def fv(files: list[bytes], size: int | None = None) -> bytes:
    body = b""
    for f in files:
        body += b"\xff" * (_pad8(FV_HEADER_LENGTH + len(body)) - FV_HEADER_LENGTH - len(body)) + f
    total = size or _pad8(FV_HEADER_LENGTH + len(body) + 8)
    assert total >= FV_HEADER_LENGTH + len(body)
    hdr = bytearray(bytes(16) + FFS2_GUID.bytes_le + struct.pack("<Q4sIHHHBB", total, b"_FVH",
                    0x0004FEFF | EFI_FVB2_ERASE_POLARITY, FV_HEADER_LENGTH, 0, 0, 0, 2)
                    + struct.pack("<IIII", total // 8, 8, 0, 0))
    assert len(hdr) == FV_HEADER_LENGTH
    struct.pack_into("<H", hdr, 0x32, -sum(struct.unpack("<36H", hdr)) & 0xFFFF)
    return bytes(hdr) + body + b"\xff" * (total - len(hdr) - len(body))


def _name(i: int) -> uuid.UUID:
    return uuid.UUID(int=(0x5EC0_0000 << 96) | i)


def image_of(fvs: list[bytes], path: Path) -> Path:
    data = b"".join(fvs)
    path.write_bytes(data + b"\xff" * (-len(data) % 0x1000))
    return path


# -- one generator per hostile class -----------------------------------------------------------

def lzma_bombs(path: Path, count: int = 12, each: int = 64 * MIB) -> Path:
    """`count` files, each a few KiB of LZMA that expands to 64 MiB of zeros."""
    payload = lzma_payload(bytes(each))
    files = [ffs_file(_name(i), EFI_FV_FILETYPE_FREEFORM, guided(LZMA_GUID, payload)) for i in range(count)]
    return image_of([fv(files)], path)


def big_image_bombs(path: Path, count: int = 12) -> Path:
    """The bombs of lzma_bombs in a 63 MiB volume: the image itself is as large as inputs get."""
    payload = lzma_payload(bytes(64 * MIB))
    files = [ffs_file(_name(i), EFI_FV_FILETYPE_FREEFORM, guided(LZMA_GUID, payload)) for i in range(count)]
    return image_of([fv(files, size=63 * MIB)], path)


def brotli_bombs(path: Path, count: int = 12, each: int = 64 * MIB) -> Path:
    payload = brotli_payload(bytes(each))
    files = [ffs_file(_name(i), EFI_FV_FILETYPE_FREEFORM, guided(BROTLI_GUID, payload)) for i in range(count)]
    return image_of([fv(files)], path)


def nested_bombs(path: Path, depth: int = 10, each: int = 48 * MIB) -> Path:
    """LZMA in LZMA: each level's blob is a RAW section of `each` zero bytes and the next level's
    LZMA section, so decoding the innermost blob needs every outer one at once."""
    inner = section(EFI_SECTION_RAW, b"innermost")
    for _ in range(depth):
        inner = guided(LZMA_GUID, lzma_payload(sections(inner, section(EFI_SECTION_RAW, bytes(each)))))
    return image_of([fv([ffs_file(_name(0), EFI_FV_FILETYPE_FREEFORM, inner)])], path)


def bcj_code(path: Path, size: int = 16 * MIB) -> Path:
    """An LZMA+x86 BCJ section of E8 (CALL) opcodes: the branch converter visits every byte."""
    code = (b"\xe8\x00\x10\x00\x00" + b"\xe8" * 11) * (size // 16)
    payload = lzma_payload(code, ({"id": lzma.FILTER_X86},))
    return image_of([fv([ffs_file(_name(0), EFI_FV_FILETYPE_FREEFORM, guided(LZMAF86_GUID, payload))])], path)


def empty_files(path: Path, volumes: int = 12, per_volume: int = 4096) -> Path:
    """Volumes full of 24-byte files with no data: a node per 24 bytes of image."""
    fvs = [fv([ffs_file(_name(v * per_volume + i), EFI_FV_FILETYPE_RAW, b"") for i in range(per_volume)])
           for v in range(volumes)]
    return image_of(fvs, path)


def deep_volumes(path: Path, depth: int = 200) -> Path:
    """Volumes in FV_IMAGE sections in volumes, far deeper than edk2's 3 levels."""
    inner = fv([ffs_file(_name(0), EFI_FV_FILETYPE_RAW, b"leaf")])
    for i in range(depth):
        inner = fv([ffs_file(_name(i + 1), 0x0B, section(EFI_SECTION_FIRMWARE_VOLUME_IMAGE, bytes(4) + inner))])
    return image_of([inner], path)


def many_sections(path: Path, files: int = 200, per_file: int = 2000) -> Path:
    """Files of thousands of empty sections each (4-byte RAW sections)."""
    body = section(EFI_SECTION_RAW, b"") * per_file
    return image_of([fv([ffs_file(_name(i), EFI_FV_FILETYPE_FREEFORM, body) for i in range(files)])], path)


def bad_checksums(path: Path, volumes: int = 12, per_volume: int = 4096) -> Path:
    """Every file's header checksum wrong: a problem per 24 bytes."""
    def bad(i):
        f = bytearray(ffs_file(_name(i), EFI_FV_FILETYPE_RAW, b""))
        f[0x10] ^= 0x55
        return bytes(f)
    return image_of([fv([bad(v * per_volume + i) for i in range(per_volume)]) for v in range(volumes)], path)


FD_CLASSES = {
    "fd-lzma-bombs": lzma_bombs,
    "fd-big-image-bombs": big_image_bombs,
    "fd-brotli-bombs": brotli_bombs,
    "fd-nested-bombs": nested_bombs,
    "fd-bcj-code": bcj_code,
    "fd-empty-files": empty_files,
    "fd-deep-volumes": deep_volumes,
    "fd-many-sections": many_sections,
    "fd-bad-checksums": bad_checksums,
}


def build_in_child(gen, path: Path) -> Path:
    """Run generator `gen` in a child process: the kernel charges a child the parent's peak RSS at
    the time it was spawned (exec keeps the larger of the two), so building 64 MiB buffers here
    would be counted against every fwinspect run started afterwards."""
    import subprocess
    import sys
    code = f"import sys; from pathlib import Path; from {gen.__module__} import {gen.__name__} as g; g(Path(sys.argv[1]))"
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, cwd=Path(__file__).resolve().parents[2])
    return path


def check_clean(outcome) -> None:
    outcome.check()
    assert b"internal error" not in outcome.stderr, outcome.describe()


# Every command that decodes a flash image (extract: tests/hostile/test_extract_hostile.py).
IMAGE_COMMANDS = {"fd": ["fd"], "fd-json": ["fd", "--json"], "mrtd": ["mrtd", "--order", "both"],
                  # each class's problems are an image-decode warning of the review (exit 1 too)
                  "review": ["review"], "review-json-tdx": ["review", "--json", "--profile", "tdx"]}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Each class's input, built once for all commands."""
    folder = tmp_path_factory.mktemp("fd-hostile")
    return {cls: build_in_child(gen, folder / f"{cls}.fd") for cls, gen in FD_CLASSES.items()}


@pytest.mark.parametrize("command", sorted(IMAGE_COMMANDS))
@pytest.mark.parametrize("cls", sorted(FD_CLASSES))
def test_fd_hostile_image_stays_within_budget(cls, command, images, tmp_path):
    image = images[cls]
    assert image.stat().st_size <= 64 * MIB
    out = run_fwinspect([*IMAGE_COMMANDS[command], image], stdout_to=tmp_path / "out")
    check_clean(out)
    assert out.returncode == 1, out.describe()     # each class has problems to report
