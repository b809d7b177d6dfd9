"""The app's tree of a dump (inspector.sources.dump_tree) has one page-table tree and one virtual-memory
view per distinct CR3, titled with the CPUs that use it, within the dump node's walk budget. The cores
are ELF64 ET_CORE files built with struct.pack from the ELF gABI and QEMU target/i386/arch_dump.c
(x86_64_elf_prstatus, QEMUCPUState) by tests/decoders/test_elfcore_cpus.py's helpers; the page tables
are 4-level with 4 KiB pages (Intel SDM vol. 3A 4.5: P|RW = 3 in every entry)."""
from __future__ import annotations

import struct

import pytest

from inspector.sources import dump_tree
from tests.decoders.test_elfcore_cpus import core, note, prstatus, qemu_state

PAGING = 0x80010033          # CR0: PG, WP, NE, ET, MP, PE (as OVMF's BSP has it)
CR4 = 0x668


def ram() -> bytes:
    """64 KiB of RAM with two address spaces that swap two pages:
    CR3 0x1000: PML4 0x1000 -> PDPT 0x2000 -> PD 0x3000 -> PT 0x4000: VA 0x0 -> PA 0x8000, VA 0x1000 -> PA 0x9000;
    CR3 0x5000: PML4 0x5000 -> PDPT 0x6000 -> PD 0x7000 -> PT 0xB000: VA 0x0 -> PA 0x9000, VA 0x1000 -> PA 0x8000."""
    m = bytearray(0x10000)
    for pml4, pdpt, pd, pt, pages in ((0x1000, 0x2000, 0x3000, 0x4000, (0x8000, 0x9000)),
                                      (0x5000, 0x6000, 0x7000, 0xB000, (0x9000, 0x8000))):
        struct.pack_into("<Q", m, pml4, pdpt | 3)
        struct.pack_into("<Q", m, pdpt, pd | 3)
        struct.pack_into("<Q", m, pd, pt | 3)
        struct.pack_into("<QQ", m, pt, pages[0] | 3, pages[1] | 3)
    m[0x8000:0x8008] = b"PAGE8000"
    m[0x9000:0x9008] = b"PAGE9000"
    return bytes(m)


def dump_file(tmp_path, cr3s: list[int], cr0s: list[int] | None = None):
    cr0s = cr0s or [PAGING] * len(cr3s)
    notes = b"".join(note(b"CORE", 1, prstatus(0x8000 + i, i + 1)) for i in range(len(cr3s)))
    notes += b"".join(note(b"QEMU", 0, qemu_state(0x8000 + i, cr0, cr3, CR4)) for i, (cr0, cr3) in
                      enumerate(zip(cr0s, cr3s)))
    p = tmp_path / "cpus.elf"
    p.write_bytes(core(notes, [(0, ram())]))
    return p


def views(root):
    pages = [n for n in root.children if n.kind == "page-tables"]
    virt = [n for n in root.children if n.kind == "memory" and "Virtual" in n.title]
    return pages, virt


def ranges(pages) -> list[tuple[int, int, int, int]]:
    return [(r.get("VirtualAddress"), r.get("Size"), r.get("PhysicalAddress"), r.get("Leaves"))
            for r in pages.children if r.kind == "page-range"]


def test_two_cpus_with_different_cr3s_get_a_tree_and_a_virtual_view_each(tmp_path):
    root = dump_tree(dump_file(tmp_path, [0x1000, 0x5000]))
    pages, virt = views(root)
    assert [p.get("CR3") for p in pages] == [0x1000, 0x5000]
    assert [p.get("Cpus") for p in pages] == [[0], [1]] == [v.get("Cpus") for v in virt]
    assert [p.title.split(":")[0] for p in pages] == ["CPU 0", "CPU 1"] == [v.title.split(":")[0] for v in virt]
    assert "CR3 0x1000" in virt[0].title and "CR3 0x5000" in virt[1].title
    # each walk's own leaves: one range of VA 0x0-0x1fff (same rights; merge() joins by VA), whose first
    # leaf is PA 0x8000 for CPU 0 and PA 0x9000 for CPU 1
    assert ranges(pages[0]) == [(0x0, 0x2000, 0x8000, 2)]
    assert ranges(pages[1]) == [(0x0, 0x2000, 0x9000, 2)]
    assert [p.get("Leaves") for p in pages] == [2, 2] and [p.get("TablesRead") for p in pages] == [4, 4]
    # the table tree first under each, from that CR3
    trees = [p.children[0] for p in pages]
    assert [t.kind for t in trees] == ["page-table-tree"] * 2
    assert "CR3 0x1000" in trees[0].title and "CR3 0x5000" in trees[1].title
    # the same VA reads different bytes through each CPU's CR3
    assert virt[0].space.data[0:8] == b"PAGE8000" and virt[0].space.data[0x1000:0x1008] == b"PAGE9000"
    assert virt[1].space.data[0:8] == b"PAGE9000" and virt[1].space.data[0x1000:0x1008] == b"PAGE8000"
    assert virt[0].space.data[0x2000:0x2008] == b""          # unmapped: blank
    # then physical memory, once
    assert [n.title.split(" ")[0] for n in root.children if n.kind == "memory"] == ["CPU", "CPU", "Physical"]


def test_cpus_sharing_a_cr3_are_named_together_and_cpus_with_paging_off_get_none(tmp_path):
    # CPU 3 has a CR3 but CR0.PG clear (an AP after INIT): no walk of its CR3 (inspector.dump.distinct_cr3s)
    root = dump_tree(dump_file(tmp_path, [0x1000, 0x5000, 0x1000, 0x5000], [PAGING, PAGING, PAGING, 0x10]))
    pages, virt = views(root)
    assert [(p.get("CR3"), p.get("Cpus")) for p in pages] == [(0x1000, [0, 2]), (0x5000, [1])]
    assert [p.title.split(":")[0] for p in pages] == ["CPUs 0, 2", "CPU 1"]
    assert [v.title.split(":")[0] for v in virt] == ["CPUs 0, 2", "CPU 1"]


def test_one_cr3_for_every_cpu_is_one_tree(tmp_path):
    root = dump_tree(dump_file(tmp_path, [0x5000, 0x5000]))
    pages, virt = views(root)
    assert [(p.get("CR3"), p.get("Cpus")) for p in pages] == [(0x5000, [0, 1])]
    assert len(virt) == 1 and virt[0].title.startswith("CPUs 0, 1: Virtual memory through CR3 0x5000")
    assert ranges(pages[0]) == [(0x0, 0x2000, 0x9000, 2)]


@pytest.mark.parametrize("budget", ["walks", "tables"])
def test_past_the_walk_budget_the_rest_are_named_not_walked(tmp_path, monkeypatch, budget):
    import decoders.paging
    import inspector.dump

    if budget == "walks":
        monkeypatch.setattr(inspector.dump, "MAX_CR3_WALKS", 1)
    else:
        monkeypatch.setattr(decoders.paging, "MAX_TABLE_VISITS", 4)   # the first walk reads 4 tables
    root = dump_tree(dump_file(tmp_path, [0x1000, 0x5000, 0x5000]))
    pages, virt = views(root)
    assert [p.get("CR3") for p in pages] == [0x1000] and len(virt) == 1
    warned = [p.message for p in pages[0].problems if "not shown" in p.message]
    assert len(warned) == 1 and warned[0].startswith("1 more distinct CR3 values (2 CPUs) not shown: ")
    assert ("budget is 1 walks" if budget == "walks" else "read 4 tables and 2 leaves") in warned[0]


def test_a_dump_without_paging_has_no_virtual_view(tmp_path):
    root = dump_tree(dump_file(tmp_path, [0x1000, 0x5000], [0x10, 0x10]))
    assert views(root) == ([], [])
    assert [n.title.split(" ")[0] for n in root.children if n.kind == "memory"] == ["Physical"]
