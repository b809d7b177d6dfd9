"""Every vCPU of a QEMU ELF core: the NT_PRSTATUS and "QEMU" notes of N CPUs, paired in order, each
CPU's mode, RIP and control registers, one page-table walk per distinct CR3, and located problems for
notes that disagree in count or are cut short. The cores are built here with struct.pack from the
layouts in QEMU target/i386/arch_dump.c (x86_64_elf_prstatus, QEMUCPUState) and the ELF gABI note
format, not with the project's declarations in decoders/elfcore.py."""
from __future__ import annotations

import json
import struct

from inspector.dump import distinct_cr3s, dump_pages, open_dump

EM_X86_64 = 62
PT_LOAD, PT_NOTE = 1, 4
SEGMENTS = ("cs", "ds", "es", "fs", "gs", "ss", "ldt", "tr", "gdt", "idt")
# QEMU SegmentCache.flags is the descriptor's high dword: 0xAF9A00 = a 64-bit code segment (L=1,
# P, DPL 0, type 0xA); 0x9B00 = the real-mode CS after INIT (P, S, type 0xB; Intel SDM vol. 3A 9.1.1).
CS64, CS_RESET, CS32 = 0xAF9A00, 0x9B00, 0xCF9A00


def note(name: bytes, ntype: int, desc: bytes) -> bytes:
    n = name + b"\0"
    pad = lambda b: b + b"\0" * (-len(b) % 4)  # noqa: E731
    return struct.pack("<III", len(n), len(desc), ntype) + pad(n) + pad(desc)


def qemu_state(rip: int, cr0: int, cr3: int, cr4: int, cs_sel: int = 0x38, cs_base: int = 0,
               cs_flags: int = CS64, rflags: int = 0x46) -> bytes:
    """QEMUCPUState v1 (arch_dump.c): version, size, rax..r15, rip, rflags, 10 x {selector, limit, flags,
    pad, base}, cr[5]; 440 bytes with QEMU 7.x's kernel_gs_base."""
    gp = [0x1000 + i for i in range(16)] + [rip, rflags]
    segs = b""
    for name in SEGMENTS:
        if name == "cs":
            segs += struct.pack("<IIIIQ", cs_sel, 0xFFFF if cs_flags == CS_RESET else 0xFFFFFFFF, cs_flags, 0,
                                cs_base)
        else:
            segs += struct.pack("<IIIIQ", 0x30, 0xFFFFFFFF, 0xCF9300, 0, 0)
    return (struct.pack("<II", 1, 440) + struct.pack("<18Q", *gp) + segs
            + struct.pack("<5Q", cr0, 0, 0, cr3, cr4) + struct.pack("<Q", 0))


def prstatus(rip: int, pid: int) -> bytes:
    # x86_64_elf_prstatus: pad1[32], pid, pad2[76], 27 x u64 user_regs (rip the 17th), pad3[8]
    regs = [0] * 27
    regs[16] = rip
    return b"\0" * 32 + struct.pack("<I", pid) + b"\0" * 76 + struct.pack("<27Q", *regs) + b"\0" * 8


def core(notes: bytes, loads: list[tuple[int, bytes]], note_size: int | None = None) -> bytes:
    """ELF64 ET_CORE: header, PT_NOTE then PT_LOADs, the note bytes, the segments' bytes."""
    phs = 1 + len(loads)
    off = 64 + 56 * phs
    ph = struct.pack("<IIQQQQQQ", PT_NOTE, 0, off, 0, 0, note_size or len(notes), note_size or len(notes), 0)
    blobs = [notes]
    at = off + len(notes)
    for paddr, data in loads:
        ph += struct.pack("<IIQQQQQQ", PT_LOAD, 0, at, paddr, paddr, len(data), len(data), 0)
        blobs.append(data)
        at += len(data)
    ident = b"\x7fELF" + bytes([2, 1, 1]) + b"\0" * 9
    hdr = ident + struct.pack("<HHIQQQIHHHHHH", 4, EM_X86_64, 1, 0, 64, 0, 0, 64, 56, phs, 0, 0, 0)
    return hdr + ph + b"".join(blobs)


def page_tables() -> bytes:
    """Low 32 KiB of RAM: PML4 at 0x1000 -> PDPT 0x2000 with one 1 GiB page; PML4 at 0x5000 -> PDPT
    0x6000 with two (Intel SDM vol. 3A 4.5: P|RW = 3, PS = 0x80 in a PDPTE)."""
    ram = bytearray(0x8000)
    struct.pack_into("<Q", ram, 0x1000, 0x2000 | 3)
    struct.pack_into("<Q", ram, 0x2000, 0x0 | 0x83)
    struct.pack_into("<Q", ram, 0x5000, 0x6000 | 3)
    struct.pack_into("<QQ", ram, 0x6000, 0x0 | 0x83, 0x40000000 | 0x83)
    return bytes(ram)


# Four vCPUs as OVMF leaves them: BSP and AP 1 on one CR3, AP 2 on another, AP 3 in wait-for-SIPI.
CPUS = [
    dict(rip=0xF02FDC1, cr0=0x80010033, cr3=0x1000, cr4=0x668),
    dict(rip=0xECC0F91, cr0=0x80010033, cr3=0x1000, cr4=0x660),
    dict(rip=0x7FFF1234, cr0=0x80010033, cr3=0x5000, cr4=0x660),
    dict(rip=0xFFF0, cr0=0x60000010, cr3=0, cr4=0, cs_sel=0xF000, cs_base=0xFFFF0000, cs_flags=CS_RESET,
         rflags=0x2),
]


def four_cpu_notes() -> bytes:
    out = b"".join(note(b"CORE", 1, prstatus(c["rip"], i + 1)) for i, c in enumerate(CPUS))
    return out + b"".join(note(b"QEMU", 0, qemu_state(**c)) for c in CPUS)


def test_every_cpu_is_read_with_its_mode_rip_and_control_registers(tmp_path):
    p = tmp_path / "four.elf"
    p.write_bytes(core(four_cpu_notes(), [(0, page_tables())]))
    with open_dump(p) as d:
        assert not d.problems
        got = [(c.index, c.pid, c.mode, c.rip, c.cr0, c.cr3, c.cr4) for c in d.cpus]
        assert got == [(0, 1, "long64", 0xF02FDC1, 0x80010033, 0x1000, 0x668),
                       (1, 2, "long64", 0xECC0F91, 0x80010033, 0x1000, 0x660),
                       (2, 3, "long64", 0x7FFF1234, 0x80010033, 0x5000, 0x660),
                       (3, 4, "real", 0xFFF0, 0x60000010, 0, 0)]
        # real mode: the linear RIP is CS base + IP, the reset vector (Intel SDM vol. 3A 9.1.4)
        assert d.cpus[3].linear_rip == 0xFFFFFFF0 and d.cpus[0].linear_rip == 0xF02FDC1
        assert all(c.prstatus["rip"] == c.rip for c in d.cpus)


def test_json_cpu_nodes_have_the_index_mode_rip_and_crs(tmp_path):
    p = tmp_path / "four.elf"
    p.write_bytes(core(four_cpu_notes(), [(0, page_tables())]))
    with open_dump(p) as d:
        tree = json.loads(json.dumps(d.node().to_json()))
    cpus = [c for c in tree["children"] if c["kind"] == "cpu"]
    fields = [{f["name"]: f["value"] for f in c["fields"]} for c in cpus]
    assert [(f["Index"], f["Mode"], f["Rip"], f["Cr0"], f["Cr3"], f["Cr4"]) for f in fields] == [
        (0, "long64", 0xF02FDC1, 0x80010033, 0x1000, 0x668), (1, "long64", 0xECC0F91, 0x80010033, 0x1000, 0x660),
        (2, "long64", 0x7FFF1234, 0x80010033, 0x5000, 0x660), (3, "real", 0xFFF0, 0x60000010, 0, 0)]
    assert fields[3]["LinearRip"] == 0xFFFFFFF0 and "LinearRip" not in fields[0]


def test_page_tables_are_walked_once_per_distinct_cr3(tmp_path):
    p = tmp_path / "four.elf"
    p.write_bytes(core(four_cpu_notes(), [(0, page_tables())]))
    with open_dump(p) as d:
        assert [(cr3, [c.index for c in cpus]) for cr3, cpus in distinct_cr3s(d)] == [(0x1000, [0, 1]),
                                                                                       (0x5000, [2])]
        walks = [n for n in d.node().children if n.kind == "cpu-page-tables"]
        assert [(n.get("CR3"), n.get("Cpus"), n.get("Leaves")) for n in walks] == [(0x1000, [0, 1], 1),
                                                                                   (0x5000, [2], 2)]
        assert any("CPU 3: paging off" in x.message for x in walks[-1].problems)
        # dump_pages on one CPU: its CR3 and its CR4
        r = dump_pages(d, cpu=2)
        assert r.cr3 == 0x5000 and [(m.va, m.pa) for m in r.mappings] == [(0, 0), (1 << 30, 1 << 30)]
        assert dump_pages(d, cpu=9).problems[0].message.startswith("no CPU 9 in the dump")


def test_more_prstatus_than_qemu_notes_is_a_located_problem(tmp_path):
    notes = b"".join(note(b"CORE", 1, prstatus(c["rip"], i + 1)) for i, c in enumerate(CPUS))
    first_qemu = len(notes)
    notes += b"".join(note(b"QEMU", 0, qemu_state(**c)) for c in CPUS[:2])
    p = tmp_path / "short.elf"
    p.write_bytes(core(notes, [(0, page_tables())]))
    note_at = 64 + 56 * 2
    prstatus_size = 12 + 8 + 336     # header, "CORE\0" padded, x86_64_elf_prstatus
    with open_dump(p) as d:
        assert len(d.cpus) == 4
        bad = [x for x in d.problems if "4 NT_PRSTATUS notes but 2 QEMU notes" in x.message]
        # located at the descriptor of the third PRSTATUS note, the first without a partner
        assert len(bad) == 1 and bad[0].offset == note_at + 2 * prstatus_size + 20
        assert "CPUs 2-3 lack CR0-CR4" in bad[0].message
        assert d.cpus[2].cr3 is None and d.cpus[2].rip == CPUS[2]["rip"] and d.cpus[2].mode == "unknown"
        assert first_qemu == 4 * prstatus_size


def test_more_qemu_than_prstatus_notes_is_a_located_problem(tmp_path):
    notes = note(b"CORE", 1, prstatus(CPUS[0]["rip"], 1))
    qemu_at = len(notes)
    notes += b"".join(note(b"QEMU", 0, qemu_state(**c)) for c in CPUS[:3])
    p = tmp_path / "fewer.elf"
    p.write_bytes(core(notes, [(0, page_tables())]))
    note_at = 64 + 56 * 2
    qemu_size = 12 + 8 + 440
    with open_dump(p) as d:
        bad = [x for x in d.problems if "1 NT_PRSTATUS notes but 3 QEMU notes" in x.message]
        assert len(bad) == 1 and bad[0].offset == note_at + qemu_at + qemu_size + 20
        assert [c.cr3 for c in d.cpus] == [0x1000, 0x1000, 0x5000] and d.cpus[1].prstatus is None


def test_truncated_note_segment_keeps_the_whole_cpus_and_locates_the_cut(tmp_path):
    notes = four_cpu_notes()
    cut = len(notes) - 100          # the last QEMU note loses its last 100 bytes
    p = tmp_path / "cut.elf"
    data = core(notes, [])
    p.write_bytes(data[:64 + 56 + cut])
    note_at = 64 + 56
    last_qemu = note_at + len(notes) - (12 + 8 + 440)
    with open_dump(p) as d:
        past = [x for x in d.problems if "runs past the end of its PT_NOTE" in x.message]
        assert len(past) == 1 and past[0].offset == last_qemu
        assert any("runs past the end of the file" in x.message and x.offset == note_at for x in d.problems)
        assert any("4 NT_PRSTATUS notes but 3 QEMU notes" in x.message for x in d.problems)
        assert [c.cr3 for c in d.cpus] == [0x1000, 0x1000, 0x5000, None]


def test_short_qemu_descriptor_is_located_and_the_prstatus_registers_stay(tmp_path):
    short = qemu_state(**CPUS[1])[:200]
    notes = (note(b"CORE", 1, prstatus(CPUS[0]["rip"], 1)) + note(b"CORE", 1, prstatus(CPUS[1]["rip"], 2))
             + note(b"QEMU", 0, qemu_state(**CPUS[0])) + note(b"QEMU", 0, short))
    p = tmp_path / "shortdesc.elf"
    p.write_bytes(core(notes, []))
    with open_dump(p) as d:
        desc = 64 + 56 + 2 * (12 + 8 + 336) + (12 + 8 + 440) + 20
        bad = [x for x in d.problems if x.message.startswith("CPU 1 QEMU note")]
        assert len(bad) == 1 and bad[0].offset == desc and "200 bytes" in bad[0].message
        assert d.cpus[1].rip == CPUS[1]["rip"] and d.cpus[1].cr3 is None and d.cpus[1].mode == "unknown"
        node = [n for n in d.node().children if n.kind == "cpu"][1]
        assert node.get("Mode") == "unknown" and node.get("Rip") == CPUS[1]["rip"]


def test_protected_mode_cs_reads_prot32_and_paging_off_is_named(tmp_path):
    notes = (note(b"CORE", 1, prstatus(0xFFFFF000, 1))
             + note(b"QEMU", 0, qemu_state(0xFFFFF000, 0x40000023, 0, 0, cs_sel=0x10, cs_flags=CS32)))
    p = tmp_path / "pm.elf"
    p.write_bytes(core(notes, []))
    with open_dump(p) as d:
        assert d.cpus[0].mode == "prot32" and distinct_cr3s(d) == []
