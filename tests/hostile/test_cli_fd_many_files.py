"""Volumes full of empty files: 12 firmware volumes of 4,000 header-only FFS files each (1.2 MB,
48,000 file nodes) printed as text and as JSON by whole processes, streamed within the memory
budget.

Layouts: PI spec vol. 3, 3.2.1 EFI_FIRMWARE_VOLUME_HEADER (ZeroVector[16], FileSystemGuid,
FvLength u64, Signature "_FVH", Attributes u32, HeaderLength u16, Checksum u16, ExtHeaderOffset
u16, Reserved u8, Revision u8, then the block map ending in {0, 0}; the header's UINT16 sum is 0)
and 3.2.3 EFI_FFS_FILE_HEADER (Name GUID, IntegrityCheck {Header u8, File u8}, Type u8,
Attributes u8, Size[3], State u8); a file without FFS_ATTRIB_CHECKSUM has File = 0xAA.
"""
from __future__ import annotations

import json
import struct
import uuid

import pytest

from tests.hostile.harness import run_fwinspect

FFS2 = uuid.UUID("8c8ce578-8a3d-4f1c-9935-896185c32dd3")  # EFI_FIRMWARE_FILE_SYSTEM2_GUID
RAW, STATE_VALID = 0x01, 0xF8  # EFI_FV_FILETYPE_RAW; EFI_FILE_DATA_VALID with erase polarity 1
FILES_PER_VOLUME, VOLUMES = 4000, 12


def empty_file(i: int) -> bytes:
    hdr = bytearray(struct.pack("<IHH8sBBBB3sB", i, 0x1234, 0x5678, b"emptyfil", 0, 0xAA, RAW, 0,
                                (24).to_bytes(3, "little"), STATE_VALID))
    # IntegrityCheck.Header: the header's bytes sum to 0, State and IntegrityCheck.File excluded.
    hdr[16] = (-(sum(hdr) - hdr[17] - hdr[23])) & 0xFF
    return bytes(hdr)


def volume(files: int) -> bytes:
    body = b"".join(empty_file(i) for i in range(files))
    length = (0x48 + len(body) + 0xFFF) & ~0xFFF
    body += b"\xff" * (length - 0x48 - len(body))
    h = bytearray(bytes(16) + FFS2.bytes_le + struct.pack("<Q4sIHHHBB", length, b"_FVH", 0x0004FEFF, 0x48, 0, 0, 0, 2)
                  + struct.pack("<IIII", length // 0x1000, 0x1000, 0, 0))
    struct.pack_into("<H", h, 0x32, -sum(struct.unpack("<36H", h)) & 0xFFFF)
    return bytes(h) + body


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp("fd") / "empty-files.fd"
    path.write_bytes(volume(FILES_PER_VOLUME) * VOLUMES)
    return path


def test_text_and_json_of_48000_empty_files_list_the_same_files(image, tmp_path):
    """Every volume is listed; the files the decoder's budgets let through are printed one line each
    in text and one node each in JSON (what the budgets leave out is the decoder's located problem)."""
    text = run_fwinspect(["fd", image], stdout_to=tmp_path / "out.txt")
    text.check()
    lines = (tmp_path / "out.txt").read_text().splitlines()
    js = run_fwinspect(["fd", image, "--json"], stdout_to=tmp_path / "out.json")
    js.check()
    assert js.returncode == text.returncode
    tree = json.loads((tmp_path / "out.json").read_text())
    volumes = [n for n in tree["children"] if n["kind"] == "fv"]
    assert len(volumes) == VOLUMES
    assert sum(1 for line in lines if "  [fv @0x" in line) == VOLUMES
    files = sum(1 for v in volumes for c in v["children"] if c["kind"] == "ffs")
    assert 0 < files <= FILES_PER_VOLUME * VOLUMES
    assert sum(1 for line in lines if "  [ffs @0x" in line) == files
