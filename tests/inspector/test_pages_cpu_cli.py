"""`fwinspect pages DUMP --cpu N` and `translate DUMP VA --cpu N` walk with CPU N's CR3 and CR4 (LA57)
from the dump's QEMU note; --cr3 with --cpu replaces the root only; a CPU the dump does not have is a
usage error (exit 2) naming the ones it has. The core is an ELF64 ET_CORE built with struct.pack from
the ELF gABI and QEMU target/i386/arch_dump.c (tests/decoders/test_elfcore_cpus.py's helpers); the
tables are Intel SDM vol. 3A 4.5 entries (P|RW = 3, 4 KiB pages)."""
from __future__ import annotations

import json
import struct

import pytest

from inspector.cli import main
from tests.decoders.test_elfcore_cpus import core, note, prstatus, qemu_state

PAGING = 0x80010033
CR4_4LEVEL = 0x668                       # PAE, MCE, PGE, OSFXSR, OSXMMEXCPT (no LA57)
CR4_5LEVEL = CR4_4LEVEL | 1 << 12        # CR4.LA57 (SDM vol. 3A 2.5)
UPPER_5LEVEL = 0xFF00000000000123        # PML5E 256: canonical with 5-level paging only (SDM vol. 1 3.3.7.1)


def ram() -> bytes:
    """CPU 0, CR3 0x1000, 4-level: PML4 0x1000 -> PDPT 0x2000 -> PD 0x3000 -> PT 0x4000:
    VA 0x0 -> PA 0x8000, VA 0x1000 -> PA 0x9000.
    CPU 1, CR3 0x5000, 5-level: PML5 0x5000 (entries 0 and 256) -> PML4 0x6000 -> PDPT 0x7000 -> PD 0xA000
    -> PT 0xB000: VA 0x0 -> PA 0xC000, VA 0x1000 -> PA 0x8000.
    The page at 0x8000 starts with the entry 0xD000|3, so CR3 0x1000 walked 5-level (PML5 0x1000 -> ...
    -> PD 0x4000 -> PT 0x8000) maps VA 0x0 to PA 0xD000."""
    m = bytearray(0x10000)
    q = lambda at, *v: struct.pack_into(f"<{len(v)}Q", m, at, *v)  # noqa: E731
    q(0x1000, 0x2000 | 3)
    q(0x2000, 0x3000 | 3)
    q(0x3000, 0x4000 | 3)
    q(0x4000, 0x8000 | 3, 0x9000 | 3)
    q(0x5000, 0x6000 | 3)
    q(0x5000 + 256 * 8, 0x6000 | 3)
    q(0x6000, 0x7000 | 3)
    q(0x7000, 0xA000 | 3)
    q(0xA000, 0xB000 | 3)
    q(0xB000, 0xC000 | 3, 0x8000 | 3)
    q(0x8000, 0xD000 | 3)
    return bytes(m)


@pytest.fixture(scope="module")
def elf(tmp_path_factory):
    cpus = [(0x1000, CR4_4LEVEL), (0x5000, CR4_5LEVEL)]
    notes = b"".join(note(b"CORE", 1, prstatus(0x8000, i + 1)) for i in range(len(cpus)))
    notes += b"".join(note(b"QEMU", 0, qemu_state(0x8000, PAGING, cr3, cr4)) for cr3, cr4 in cpus)
    p = tmp_path_factory.mktemp("cpus") / "two.elf"
    p.write_bytes(core(notes, [(0, ram())]))
    return str(p)


def translate(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["translate", *args])
    out = capsys.readouterr()
    return code, out.out.strip().splitlines()[-1] if out.out.strip() else "", out.err


@pytest.mark.parametrize("args, line", [
    ((), "0x123 -> 0x8123"),                                   # the first CPU by default
    (("--cpu", "0"), "0x123 -> 0x8123"),
    (("--cpu", "1"), "0x123 -> 0xc123"),                       # CPU 1's CR3, 5-level
    (("--cpu", "1", "--cr3", "0x1000"), "0x123 -> 0xd123"),     # CPU 0's root walked with CPU 1's LA57
    (("--cr3", "0x1000"), "0x123 -> 0x8123"),
    # CPU 1's CR3 read 4-level: PML4 0x5000 -> PDPT 0x6000 -> PD 0x7000 -> PT 0xA000, whose entry 0 is 0xB000|3
    (("--cpu", "1", "--no-la57"), "0x123 -> 0xb123"),
])
def test_translate_walks_with_the_cpus_cr3_and_cr4(elf, capsys, args, line):
    assert translate(capsys, elf, "0x123", *args)[:2] == (0, line)


def test_translate_an_upper_half_va_that_only_5_level_paging_maps(elf, capsys):
    assert translate(capsys, elf, hex(UPPER_5LEVEL), "--cpu", "1")[:2] == (0, "0xff00000000000123 -> 0xc123")
    code, line, _err = translate(capsys, elf, hex(UPPER_5LEVEL), "--cpu", "0")
    assert code == 1 and line.startswith("0xff00000000000123 is not canonical for 4-level paging")


def test_translate_the_pml5_walk_is_shown_level_by_level(elf, capsys):
    assert main(["translate", elf, "0x1123", "--cpu", "1"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "PML5E[0] at 0x5000 = 0x0000000000006003", "PML4E[0] at 0x6000 = 0x0000000000007003",
        "PDPTE[0] at 0x7000 = 0x000000000000a003", "PDE[0] at 0xa000 = 0x000000000000b003",
        "PTE[1] at 0xb008 = 0x0000000000008003", "0x1123 -> 0x8123"]


@pytest.mark.parametrize("command", [["translate", "{elf}", "0x123"], ["pages", "{elf}"]])
def test_a_cpu_the_dump_does_not_have_is_a_usage_error_naming_its_cpus(elf, capsys, command):
    argv = [a.format(elf=elf) for a in command]
    assert main(argv + ["--cpu", "2"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "fwinspect: --cpu 2: the dump has no CPU 2 (its CPUs: 0, 1)"


def test_cpu_of_a_raw_file_without_cpu_notes_is_a_usage_error(tmp_path, capsys):
    raw = tmp_path / "ram.bin"
    raw.write_bytes(ram())
    assert main(["pages", str(raw), "--base", "0", "--cpu", "0"]) == 2
    assert capsys.readouterr().err.strip() == "fwinspect: --cpu 0: the dump has no CPU 0 (it has no CPU notes)"
    assert main(["translate", str(raw), "0x123", "--base", "0", "--cr3", "0x1000"]) == 0   # --cr3 alone still works
    assert capsys.readouterr().out.strip().endswith("0x123 -> 0x8123")


def pages(capsys, *args: str) -> tuple[int, dict]:
    code = main(["pages", *args, "--json", "--merged"])
    tree = json.loads(capsys.readouterr().out)
    return code, tree


def summary(tree: dict) -> tuple:
    f = {x["name"]: x["value"] for x in tree["fields"]}
    ranges = [{x["name"]: x["value"] for x in c["fields"]} for c in tree["children"]]
    return (f["CR3"], f["Levels"], f["Leaves"], f["TablesRead"],
            [(r["VirtualAddress"], r["Size"], r["PhysicalAddress"], r["Leaves"]) for r in ranges])


def test_pages_walks_cpu_1s_five_level_tables(elf, capsys):
    code, tree = pages(capsys, elf, "--cpu", "1")
    assert code == 0
    # PML5E 0 and 256 reach the same PML4: the same two leaves at the bottom and at 0xff00000000000000
    assert summary(tree) == (0x5000, 5, 4, 5, [(0x0, 0x2000, 0xC000, 2), (0xFF00000000000000, 0x2000, 0xC000, 2)])


@pytest.mark.parametrize("args", [(), ("--cpu", "0")])
def test_pages_default_and_cpu_0_walk_cpu_0s_four_level_tables(elf, capsys, args):
    code, tree = pages(capsys, elf, *args)
    assert code == 0 and summary(tree) == (0x1000, 4, 2, 4, [(0x0, 0x2000, 0x8000, 2)])


def test_pages_cr3_with_cpu_takes_the_root_from_cr3_and_la57_from_the_cpu(elf, capsys):
    code, tree = pages(capsys, elf, "--cpu", "1", "--cr3", "0x1000")
    # PML5 0x1000 -> PML4 0x2000 -> PDPT 0x3000 -> PD 0x4000 -> PTs 0x8000 (entry 0: PA 0xD000) and 0x9000
    assert code == 0 and summary(tree) == (0x1000, 5, 1, 6, [(0x0, 0x1000, 0xD000, 1)])
