"""Hostile TDVF metadata, each run as a whole `fwinspect mrtd` process (README, "Budgets").

The image is the OVMF reset-vector GUIDed table at the top of a small file (edk2
OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.nasm.inc; QEMU hw/i386/pc_sysfw_ovmf.c reads it), whose
TDX entry points at a TDVF descriptor (OvmfPkg/ResetVector/X64/IntelTdxMetadata.nasm.inc):

    from the end E:  E-0x32 UINT16 table length | E-0x30 footer GUID | E-0x20 12 zero bytes |
                     E-0x14 "VTF\\0" | E-0x10 reset vector; entries walk backwards from the
                     length, each `data | UINT16 length (data + 18) | GUID`
    TdxMetadataGuid, then TDVF_DESCRIPTOR {"TDVF", Length = 16 + 32 n, Version 1, n} and n
    TDVF_SECTION {DataOffset:u32 RawDataSize:u32 MemoryAddress:u64 MemoryDataSize:u64 Type:u32
    Attributes:u32}
"""
from __future__ import annotations

import struct
import uuid
from pathlib import Path

import pytest

from tests.hostile.harness import run_fwinspect
from tests.hostile.test_fd_hostile import build_in_child, check_clean

FOOTER_GUID = uuid.UUID("96b582de-1fb2-45f7-baea-a366c55a082d")
TDX_METADATA_OFFSET_GUID = uuid.UUID("e47a6535-984a-4798-865e-4685a7bf8ec2")
TDX_METADATA_GUID = uuid.UUID("e9eaf9f3-168e-44d5-a8eb-7f4d8738f6ae")
BFV, CFV, TD_HOB, TEMP_MEM = 0, 1, 2, 3
MR_EXTEND, PAGE_AUG = 0x1, 0x2
IMAGE_SIZE = 0x10000
DESCRIPTOR_AT = 0x1000
GIB = 1 << 30


def tdvf_image(path: Path, secs: list[tuple[int, int, int, int, int, int]]) -> Path:
    """A 64 KiB image holding `secs` (DataOffset, RawDataSize, MemoryAddress, MemoryDataSize, Type,
    Attributes) in a TDVF descriptor that the reset-vector table points at."""
    img = bytearray(b"\xff" * IMAGE_SIZE)
    desc = TDX_METADATA_GUID.bytes_le + b"TDVF" + struct.pack("<III", 16 + 32 * len(secs), 1, len(secs)) \
        + b"".join(struct.pack("<IIQQII", *s) for s in secs)
    img[DESCRIPTOR_AT - 16:DESCRIPTOR_AT - 16 + len(desc)] = desc
    entry = struct.pack("<I", IMAGE_SIZE - DESCRIPTOR_AT) + struct.pack("<H", 4 + 18) \
        + TDX_METADATA_OFFSET_GUID.bytes_le
    table = entry + struct.pack("<H", len(entry) + 18) + FOOTER_GUID.bytes_le
    top = table + bytes(12) + b"VTF\0" + b"\x90" * 16
    img[IMAGE_SIZE - len(top):] = top
    path.write_bytes(bytes(img))
    return path


# The image's first 0x8000 bytes play the BFV: measured data that is in the file.
_BFV = (0, 0x8000, 0xFFFF0000, 0x8000, BFV, MR_EXTEND)


def refused(path: Path) -> Path:
    """Metadata the MRTD refuses (a MemoryAddress not page aligned): nothing to hash."""
    return tdvf_image(path, [_BFV, (0, 0, 0x800123, 0x1000, TEMP_MEM, 0)])


def gpa_overflow(path: Path) -> Path:
    """A section whose MemoryAddress + MemoryDataSize passes 2^64."""
    return tdvf_image(path, [_BFV, (0, 0, 0xFFFF_FFFF_FFFF_F000, 0x4000, TEMP_MEM, 0)])


def huge_page_add(path: Path) -> Path:
    """48 GiB of TempMem pages to PAGE.ADD: 12 Mi records."""
    return tdvf_image(path, [_BFV, (0, 0, 0x1_0000_0000, 48 * GIB, TEMP_MEM, 0)])


def huge_extend(path: Path) -> Path:
    """A BFV of 32 KiB in the file measured (MR.EXTEND) over 16 GiB of zero-padded memory."""
    return tdvf_image(path, [(0, 0x8000, 0x1_0000_0000, 16 * GIB, BFV, MR_EXTEND)])


def many_sections(path: Path) -> Path:
    """The most sections a descriptor can hold in the image, each 1 GiB of TempMem."""
    n = (IMAGE_SIZE - DESCRIPTOR_AT - 0x100) // 32
    return tdvf_image(path, [_BFV] + [(0, 0, (i + 1) * GIB, GIB, TEMP_MEM, 0) for i in range(n)])


MRTD_CLASSES = {
    "mrtd-refused": refused,
    "mrtd-gpa-overflow": gpa_overflow,
    "mrtd-huge-page-add": huge_page_add,
    "mrtd-huge-extend": huge_extend,
    "mrtd-many-sections": many_sections,
}


@pytest.mark.parametrize("json_out", [False, True], ids=["text", "json"])
@pytest.mark.parametrize("cls", sorted(MRTD_CLASSES))
def test_mrtd_hostile_metadata_stays_within_budget(cls, json_out, tmp_path):
    image = build_in_child(MRTD_CLASSES[cls], tmp_path / f"{cls}.fd")
    out = run_fwinspect(["mrtd", "--order", "both", *(["--json"] if json_out else []), image])
    check_clean(out)
    assert out.returncode == 1, out.describe()   # every class here is refused or over the budget


def test_mrtd_refused_text_names_the_reason(tmp_path):
    out = run_fwinspect(["mrtd", "--order", "both", refused(tmp_path / "r.fd")])
    check_clean(out)
    lines = out.stdout.decode().splitlines()
    assert [ln.split()[:2] for ln in lines] == [["not", "computed"], ["not", "computed"]]
    assert b"MemoryAddress/MemoryDataSize not 4 KiB aligned" in out.stderr


@pytest.mark.parametrize("name", ["tdx-count-huge.fd", "tdx-section-past-image.fd"])
def test_mrtd_malformed_samples_both_orders(name):
    from sample_images import OUT
    path = OUT / "malformed" / name
    if not path.exists():
        pytest.skip(f"{path} not generated (make samples)")
    out = run_fwinspect(["mrtd", "--order", "both", path])
    check_clean(out)
    assert out.returncode == 1
