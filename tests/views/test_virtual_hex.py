"""The hex view over a virtual address space (decoders/paging_translate.py VirtualSpace): both
canonical halves, reached with `g`, over page tables built here with struct from the Intel SDM
vol. 3A 4.5 entry layouts. Expected bytes are the ones put in the crafted physical pages; expected
addresses follow from the table indexes (VA bits 56:48 index the PML5, 47:39 the PML4, ...)."""
from __future__ import annotations

import struct

import pytest

from decoders.memory import RegionMemory
from decoders.paging import PagingConfig
from decoders.paging_translate import virtual_memory_node
from views.app import FwInspectApp
from views.widgets.hex_view import HexView

SIZE = (140, 30)
P, RW, PS = 1, 2, 0x80
TABLES = 0x100000


def tables(la57: bool) -> tuple[int, RegionMemory]:
    """(CR3, physical memory). Three 4 KiB pages mapped through 4 KiB PTEs:
    - VA 0x3000 -> page 0x7000 ("LOWER...");
    - the first upper-half page, 0xFF00000000000000 (PML5E[256], 5-level) or 0xFFFF800000000000
      (PML4E[256], 4-level) -> page 0x8000 ("UPPER...");
    - 5-level: 0xFFFE018140E09000 (PML5E[510] PML4E[3] PDPTE[5] PDE[7] PTE[9]) -> page 0x9000;
      4-level: 0xFFFFFF8140E09000 (PML4E[511] PDPTE[5] PDE[7] PTE[9]) -> page 0x9000."""
    buf = bytearray(0x1000 * 16)
    used = [0]

    def new() -> int:
        used[0] += 1
        return TABLES + 0x1000 * used[0]

    root = TABLES

    def chain(indexes, leaf):
        table = root
        for index in indexes[:-1]:
            off = table - TABLES + index * 8
            entry = struct.unpack_from("<Q", buf, off)[0]
            if not entry & P:
                entry = new() | P | RW
                struct.pack_into("<Q", buf, off, entry)
            table = entry & ~0xFFF
        struct.pack_into("<Q", buf, table - TABLES + indexes[-1] * 8, leaf | P | RW)

    top = (0,) if la57 else ()
    chain(top + (0, 0, 0, 3), 0x7000)
    chain(((256, 0) if la57 else (256,)) + (0, 0, 0), 0x8000)
    chain(((510, 3) if la57 else (511,)) + (5, 7, 9), 0x9000)
    pages = [(0x7000, b"LOWER-HALF-PAGE!" * 256), (0x8000, b"UPPER-HALF-PAGE!" * 256),
             (0x9000, bytes(range(256)) * 16)]
    return root, RegionMemory([(TABLES, bytes(buf)), *pages])


def screen_lines(hv: HexView) -> list[str]:
    return [hv.render_line(y).text for y in range(hv.scrollable_content_region.height)]


@pytest.mark.asyncio
@pytest.mark.parametrize("la57, far, bits", [(True, 0xFFFE018140E09000, 57), (False, 0xFFFFFF8140E09000, 48)])
async def test_g_reaches_the_upper_canonical_half(la57, far, bits):
    cr3, phys = tables(la57)
    root = virtual_memory_node(phys, cr3, PagingConfig(la57=la57))
    upper = (1 << 64) - (1 << (bits - 1))          # 0xFF00000000000000 or 0xFFFF800000000000
    app = FwInspectApp(root, "virtual")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        hv = app.screen.query_one(HexView)
        # Rows for both halves, 2^57 or 2^48 bytes, counted, not allocated
        assert hv.virtual_size.height == 1 << (bits - 4)
        for va, expect in ((upper, b"UPPER-HALF-PAGE!"), (far + 0x40, bytes(range(0x40, 0x50))),
                           (0x3000, b"LOWER-HALF-PAGE!")):
            await pilot.press("g")
            await pilot.pause()
            await pilot.press(*f"{va:x}", "enter")
            await pilot.pause()
            offset = va & ((1 << bits) - 1)
            assert hv.cursor == offset
            # One address column (the offsets are only how the halves are laid end to end)
            row = next((s for s in screen_lines(hv) if s.startswith(f"{va:016x}  ")), None)
            assert row is not None, screen_lines(hv)
            assert expect[:8].hex(" ") + "  " + expect[8:].hex(" ") in row
        # The row just below the upper half: the lower half's last page is not mapped, so blank.
        last_lower = (1 << (bits - 1)) - 16
        assert hv.row_text(last_lower // 16) == f"{last_lower:016x}" + " " * (hv.row_width() - 16)
        # The whole row fits a 140-column screen: address, 16 bytes and their ASCII
        assert hv.row_width() == 16 + 1 + 1 + 16 * 3 + 1 + 1 + 16


@pytest.mark.asyncio
@pytest.mark.parametrize("la57, va", [(True, 0x0100000000000000), (False, 0x0000800000000000)])
async def test_g_refuses_a_non_canonical_address(la57, va):
    cr3, phys = tables(la57)
    app = FwInspectApp(virtual_memory_node(phys, cr3, PagingConfig(la57=la57)), "virtual")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.screen.goto(f"0x{va:x}") is None
        await pilot.pause()
        hv = app.screen.query_one(HexView)
        assert hv.cursor is None
        assert [n.message for n in app._notifications] == [f"0x{va:x} is not a canonical address of {hv.space.name}"]
