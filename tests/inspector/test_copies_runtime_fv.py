"""Finding a volume that a PEI-less SEC decompressed into pages allocated at run time (TDVF Config-B),
without QEMU: where its compressed section is in the flash (from the real Config-B image), the
top-down chunked RAM scan for its header over a fake target, and the FV HOB lookup once the DXE core
has the HOB list. The live boot is tests/live/test_configb_live.py.
"""
from __future__ import annotations

import struct
import uuid

import pytest

from decoders.memory import Unreadable
from inspector.image import load_image
from inspector.live import copies
from inspector.live.copies import CopyFollower
from inspector.live.phases import BootState, Handoffs, compute_handoffs
from inspector.live.target import TargetError
from tests.realdata import firmware

FOUR_GIB = 1 << 32
MIB = 1 << 20
HEADER = bytes(range(1, copies.FV_HEADER_MATCH + 1))       # stands for a volume's first 0x38 bytes
DXEFV_GUID = uuid.UUID("7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1")
LZMA_GUID = uuid.UUID("ee4e5898-3914-4259-9d6e-dc7bd79403cf")   # gLzmaCustomDecompressGuid
# `info mtree -f` of QEMU 7.2, q35 -m 256M (the CPU's FlatView, abridged), plus RAM above 4 GiB.
MTREE = """FlatView #0
 AS "memory", root: system
 AS "cpu-memory-0", root: system
 Root memory region: system
  0000000000000000-00000000000bffff (prio 0, ram): pc.ram
  00000000000c0000-00000000000dffff (prio 1, rom): pc.rom
  0000000000100000-000000000fffffff (prio 0, ram): pc.ram @0000000000100000
  00000000ffc00000-00000000ffffffff (prio 0, rom): pc.bios
  0000000100000000-000000013fffffff (prio 0, ram): pc.ram @0000000010000000
"""


class SparseTarget:
    """Zero-filled RAM with a few byte strings placed in it; counts what was read."""

    def __init__(self, placed: dict[int, bytes], mtree: str | None = MTREE):
        self.placed = placed
        self.mtree = mtree
        self.read_bytes = 0

    def read_physical(self, address, size, timeout=1.0):
        if address >= 0xE0000000 and address < FOUR_GIB:
            raise Unreadable(address, size, "MMIO")
        self.read_bytes += size
        out = bytearray(size)
        for at, data in self.placed.items():
            lo, hi = max(at, address), min(at + len(data), address + size)
            if lo < hi:
                out[lo - address:hi - address] = data[lo - at:hi - at]
        return bytes(out)

    def monitor(self, command, timeout=1.0):
        if self.mtree is None:
            raise TargetError("no monitor")
        assert command == "info mtree -f"
        return self.mtree


def follower(target, ram=None) -> CopyFollower:
    boot = BootState(Handoffs(image_size=0x400000), ram=ram)
    return CopyFollower(target, None, boot, 1.0, None)


@pytest.fixture(scope="module")
def configb():
    return load_image(firmware("inteltdx/OVMF.fd"))


def test_dxefv_of_config_b_comes_from_the_lzma_section_in_flash(configb):
    """DXEFV sits in FVMAIN_COMPACT's LZMA GUID-defined section at file offset 0x84090, 0xc5ecd bytes
    (the image's own section header: Size 810701); the flash maps the 4 MiB file at 0xffc00000."""
    h = compute_handoffs(configb.root, len(configb.data))
    raw = bytes(configb.data[0x84090:0x84090 + 0x18])
    size, guid = int.from_bytes(raw[:3], "little"), uuid.UUID(bytes_le=raw[4:20])
    assert (size, raw[3], guid) == (0xC5ECD, 0x02, LZMA_GUID)                # EFI_SECTION_GUID_DEFINED
    assert h.dxefv.get("FvName") == DXEFV_GUID
    assert h.packed_origin(h.dxefv) == (0xFFC00000 + 0x84090, 0xC5ECD)
    sec_fv = h.modules["sec"].fv
    assert h.packed_origin(sec_fv) is None                                     # runs in place from flash


def test_scan_finds_the_highest_copy_below_4_gib_top_down():
    """Two copies below 4 GiB and one above it: the one nearest the top of low RAM, where PEI-less
    SEC allocates first, is the answer; RAM above 4 GiB is not read."""
    t = SparseTarget({0x5000004: HEADER, 0xF36B00C: HEADER, 0x100001000: HEADER})
    assert follower(t).scan_ram(HEADER, deadline=float("inf")) == 0xF36B00C
    # Top-down: stopped in the chunk holding it, after reading 0x10000000 - 0xF300000 bytes or so.
    assert t.read_bytes <= (0x10000000 - 0xF36B00C) + MIB + 2 * len(HEADER)


def test_scan_finds_a_header_straddling_two_chunks():
    at = 0xF000000 - 5          # 5 bytes in the chunk below 0xF000000, the rest in the one above
    t = SparseTarget({at: HEADER})
    assert follower(t).scan_ram(HEADER, deadline=float("inf")) == at


def test_scan_is_bounded_by_its_budget():
    """1 GiB of low RAM: a header further than RUNTIME_FV_SCAN_MAX below the top is not looked for."""
    top = 0x40000000
    t = SparseTarget({}, mtree=MTREE.replace("0000000000100000-000000000fffffff",
                                             f"0000000000100000-{top - 1:016x}"))
    f = follower(t)
    assert f.low_ram() == [(0, 0xC0000), (0x100000, top)]
    t.placed = {top - copies.RUNTIME_FV_SCAN_MAX - 2 * MIB: HEADER}
    assert f.scan_ram(HEADER, deadline=float("inf")) is None
    assert t.read_bytes <= copies.RUNTIME_FV_SCAN_MAX + MIB
    t.placed = {top - copies.RUNTIME_FV_SCAN_MAX + 2 * MIB: HEADER}
    assert f.scan_ram(HEADER, deadline=float("inf")) == top - copies.RUNTIME_FV_SCAN_MAX + 2 * MIB


def test_scan_without_a_monitor_uses_the_hobs_ram():
    t = SparseTarget({0x7F00000: HEADER}, mtree=None)
    f = follower(t, ram=[(0, 0xA0000), (0x100000, 0x7F00000), (FOUR_GIB, 1 << 30)])
    assert f.low_ram() == [(0, 0xA0000), (0x100000, 0x8000000)]
    assert f.scan_ram(HEADER, deadline=float("inf")) == 0x7F00000


def test_scan_gives_up_at_the_deadline():
    t = SparseTarget({0x1000000: HEADER})
    assert follower(t).scan_ram(HEADER, deadline=0.0) is None
    assert t.read_bytes == 0


def _fv_hob(base: int, length: int) -> bytes:
    """EFI_HOB_FIRMWARE_VOLUME (PiHob.h): header {HobType 5, HobLength 24, Reserved}, BaseAddress, Length."""
    return struct.pack("<HHIQQ", 5, 24, 0, base, length)


def _fv2_hob(base: int, length: int, fv_name: uuid.UUID, file_name: uuid.UUID) -> bytes:
    """EFI_HOB_FIRMWARE_VOLUME2 (PiHob.h): type 9, 56 bytes, then FvName and FileName (EFI byte order)."""
    return struct.pack("<HHIQQ16s16s", 9, 56, 0, base, length, fv_name.bytes_le, file_name.bytes_le)


def test_volume_from_the_fv_hobs_is_the_one_holding_its_header():
    """After the DXE core's entry: the FV HOB whose base holds the volume's header (Config-B lists
    SECFV and FVMAIN_COMPACT in flash, then the realigned DXEFV, PeilessStartup.c and FwVol.c)."""
    hob_list, secfv, compact, dxefv = 0x1000000, 0xFFFCC000, 0xFFC84000, 0xEC69000
    blob = (_fv_hob(secfv, 0x34000) + _fv_hob(compact, 0x348000)
            + _fv2_hob(dxefv, 0x700000, DXEFV_GUID, uuid.UUID(int=1))
            + struct.pack("<HHI", 0xFFFF, 8, 0))          # END_OF_HOB_LIST
    t = SparseTarget({hob_list: blob, dxefv: HEADER, 0xF36B00C: HEADER})

    class Phys:
        def read(self, address, size):
            return t.read_physical(address, size)

    f = follower(t)
    f.phys = Phys()
    assert f.fv_from_hobs(HEADER) is None            # no HOB list known before the DXE core
    f.boot.hob_list = hob_list
    assert f.fv_from_hobs(HEADER) == dxefv
    assert f.fv_from_hobs(b"\xff" * len(HEADER)) is None


def test_offline_boot_phases_say_config_b_dxefv_is_decompressed_into_allocated_pages(configb):
    """`fwinspect fd`'s "Boot phases": the DXE core of a PEI-less SEC comes from the DXEFV that
    PeilessStartup decompresses into pages allocated at run time (not a fixed MEMFD place)."""
    (bp,) = [c for c in configb.info.children if c.kind == "boot-phases"]
    where = next(c for c in bp.children if c.get("Phase") == "dxe-core").get("Where")
    assert "pages allocated at run time" in where and "FfsProcessSection" in where
