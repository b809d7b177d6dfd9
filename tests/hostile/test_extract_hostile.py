"""Hostile images for `fwinspect extract`, each run as a whole process (README, "Budgets"):
exit 0/1/2, no internal error, peak RSS <= 256 MiB, nothing written outside the folder, and no
more files or bytes than extraction's budget.

Volumes, files and sections are the PI spec vol 3 layouts of tests/hostile/test_fd_hostile.py;
EFI_COMPRESSION_SECTION (PI vol 3 2.2.5.2): header, UncompressedLength:u32, CompressionType:u8
(0 = EFI_NOT_COMPRESSED: the sections follow as they are).
"""
from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from tests.hostile import test_fd_hostile as F
from tests.hostile.harness import run_fwinspect

MIB = 1 << 20


def hostile_names(path: Path, count: int = 64) -> Path:
    """USER_INTERFACE names that are paths, links, device names and very long strings."""
    names = ["../../../../tmp/fwinspect-escape", "/etc/passwd", "..", ".", "a/../../b", "C:\\windows\\x",
             "\u202e\u0000evil", "x" * 1000, "con", "-rf"]
    files = [F.ffs_file(F._name(i), F.EFI_FV_FILETYPE_FREEFORM,
                        F.section(F.EFI_SECTION_USER_INTERFACE, (names[i % len(names)] + "\0").encode("utf-16-le")))
             for i in range(count)]
    return F.image_of([F.fv(files)], path)


def nested_copies(path: Path, depth: int = 15, size: int = 56 * MIB) -> Path:
    """A 56 MiB RAW section inside `depth` not-compressed COMPRESSION sections: extracting every
    section's bytes would write the same 56 MiB once per level."""
    inner = F.section(F.EFI_SECTION_RAW, bytes(size))
    for _ in range(depth):
        inner = F.section(F.EFI_SECTION_COMPRESSION, struct.pack("<IB", len(inner), 0) + inner)
    # The file is larger than the 24-bit Size: an FFS3 large file (FFS_ATTRIB_LARGE_FILE, 0x20 header).
    return F.image_of([_fv3([_large_file(F._name(0), F.EFI_FV_FILETYPE_FREEFORM, inner)])], path)


FFS3_GUID_BYTES = bytes.fromhex("7ac07354cb3dca4dbd6f1e9689e7349a")   # 5473c07a-3dcb-4dca-bd6f-1e9689e7349a


def _large_file(name, ftype: int, body: bytes) -> bytes:
    """EFI_FFS_FILE_HEADER2: Size[3] = 0, FFS_ATTRIB_LARGE_FILE (0x01), ExtendedSize:u64 at 0x18."""
    size = 0x20 + len(body)
    hdr = bytearray(name.bytes_le + struct.pack("<BBBB", 0, 0, ftype, 0x01) + bytes(3) + b"\0"
                    + struct.pack("<Q", size))
    hdr[0x10] = -sum(hdr) & 0xFF
    hdr[0x11] = F.FFS_FIXED_CHECKSUM
    hdr[0x17] = F.STATE_VALID
    return bytes(hdr) + body


def _fv3(files: list[bytes]) -> bytes:
    fv = bytearray(F.fv(files))
    fv[0x10:0x20] = FFS3_GUID_BYTES
    struct.pack_into("<H", fv, 0x32, 0)
    struct.pack_into("<H", fv, 0x32, -sum(struct.unpack("<36H", fv[:F.FV_HEADER_LENGTH])) & 0xFFFF)
    return bytes(fv)


EXTRACT_CLASSES = {
    "extract-empty-files": F.empty_files,
    "extract-hostile-names": hostile_names,
    "extract-nested-copies": nested_copies,
    "extract-nested-bombs": F.nested_bombs,
    "extract-lzma-bombs": F.lzma_bombs,
}


def _written(folder: Path) -> tuple[int, int]:
    files = total = 0
    for d, _, fs in os.walk(folder):
        for f in fs:
            files += 1
            total += os.lstat(os.path.join(d, f)).st_size
    return files, total


@pytest.mark.parametrize("cls", sorted(EXTRACT_CLASSES))
def test_extract_hostile_image_stays_inside_and_within_budget(cls, tmp_path):
    from inspector.extract import MAX_FILES, MAX_TOTAL_BYTES

    image = F.build_in_child(EXTRACT_CLASSES[cls], tmp_path / f"{cls}.fd")
    assert image.stat().st_size <= 64 * MIB
    out_dir = tmp_path / "inside" / "out"
    out = run_fwinspect(["extract", image, out_dir], cwd=tmp_path)
    F.check_clean(out)
    everything = {Path(d) / f for d, _, fs in os.walk(tmp_path) for f in fs}
    outside = {p for p in everything if not p.is_relative_to(out_dir)} - {image}
    assert outside == set()
    files, total = _written(out_dir)
    assert files <= MAX_FILES + 1          # + manifest.json
    assert total <= MAX_TOTAL_BYTES + (16 * MIB)   # + the manifest
