"""Hostile ELF-core CPU notes through whole `fwinspect dump` and `fwinspect pages` processes: the most
CPUs QEMU can have and more, notes that disagree in count, lying sizes, a cut file, and every CPU on
its own CR3 into tables that loop. Built with struct.pack from QEMU target/i386/arch_dump.c and the
ELF gABI note format. The contract is the harness's (exit 0/1/2, no traceback, bounded memory)."""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest

from tests.hostile.harness import build_inputs, run_fwinspect

EM_X86_64 = 62
PT_LOAD, PT_NOTE = 1, 4


def _note(name: bytes, ntype: int, desc: bytes) -> bytes:
    n = name + b"\0"
    pad = lambda b: b + b"\0" * (-len(b) % 4)  # noqa: E731
    return struct.pack("<III", len(n), len(desc), ntype) + pad(n) + pad(desc)


def _qemu(rip: int, cr3: int, size: int = 440) -> bytes:
    segs = b"".join(struct.pack("<IIIIQ", 0x38, 0xFFFFFFFF, 0xAF9A00, 0, 0) for _ in range(10))
    return (struct.pack("<II", 1, size) + struct.pack("<18Q", *([0] * 16), rip, 0x46) + segs
            + struct.pack("<5Q", 0x80010033, 0, 0, cr3, 0x668) + struct.pack("<Q", 0))


def _prstatus(rip: int, pid: int) -> bytes:
    regs = [0] * 27
    regs[16] = rip
    return b"\0" * 32 + struct.pack("<I", pid) + b"\0" * 76 + struct.pack("<27Q", *regs) + b"\0" * 8


def _core(notes: bytes, loads: list[tuple[int, bytes]]) -> bytes:
    phs = 1 + len(loads)
    off = 64 + 56 * phs
    ph = struct.pack("<IIQQQQQQ", PT_NOTE, 0, off, 0, 0, len(notes), len(notes), 0)
    blobs, at = [notes], off + len(notes)
    for paddr, data in loads:
        ph += struct.pack("<IIQQQQQQ", PT_LOAD, 0, at, paddr, paddr, len(data), len(data), 0)
        blobs.append(data)
        at += len(data)
    hdr = b"\x7fELF" + bytes([2, 1, 1]) + b"\0" * 9 + struct.pack("<HHIQQQIHHHHHH", 4, EM_X86_64, 1, 0, 64, 0,
                                                                     0, 64, 56, phs, 0, 0, 0)
    return hdr + ph + b"".join(blobs)


def _looping_tables(pages: int) -> bytes:
    """`pages` PML4s, each entry of each pointing at the next table (and the last back at the first):
    every walk reads tables that never end in a leaf (Intel SDM vol. 3A 4.5: P|RW = 3)."""
    ram = bytearray(pages * 0x1000)
    for p in range(pages):
        nxt = ((p + 1) % pages) * 0x1000
        struct.pack_into("<512Q", ram, p * 0x1000, *([nxt | 3] * 512))
    return bytes(ram)


def many_cpus(path: Path) -> Path:
    """4096 CPUs (QEMU's x86 maximum), each with its own CR3 into looping tables."""
    n = 4096
    notes = b"".join(_note(b"CORE", 1, _prstatus(0x1000 + i, i + 1)) for i in range(n))
    notes += b"".join(_note(b"QEMU", 0, _qemu(0x1000 + i, (i % 64) * 0x1000 + i // 64 * 0x40000)) for i in range(n))
    path.write_bytes(_core(notes, [(0, _looping_tables(64))]))
    return path


def too_many_notes(path: Path) -> Path:
    """More PRSTATUS notes than any machine's CPUs, and no QEMU note."""
    path.write_bytes(_core(_note(b"CORE", 1, _prstatus(0x1000, 1)) * 10000, []))
    return path


def counts_disagree(path: Path) -> Path:
    notes = b"".join(_note(b"CORE", 1, _prstatus(0x1000, i + 1)) for i in range(7))
    notes += b"".join(_note(b"QEMU", 0, _qemu(0x1000, 0x1000)) for _ in range(3))
    path.write_bytes(_core(notes, [(0, _looping_tables(4))]))
    return path


def lying_sizes(path: Path) -> Path:
    """QEMU notes whose `size` field says 4 GiB and a note whose n_descsz runs past everything."""
    notes = _note(b"CORE", 1, _prstatus(0x1000, 1)) + _note(b"QEMU", 0, _qemu(0x1000, 0x1000, size=0xFFFFFFFF))
    notes += struct.pack("<III", 5, 0xFFFFFFF0, 0) + b"QEMU\0\0\0\0" + bytes(64)
    path.write_bytes(_core(notes, [(0, _looping_tables(2))]))
    return path


def cut_in_a_note(path: Path) -> Path:
    notes = b"".join(_note(b"CORE", 1, _prstatus(0x1000, i + 1)) for i in range(4))
    notes += b"".join(_note(b"QEMU", 0, _qemu(0x1000, 0x1000)) for _ in range(4))
    data = _core(notes, [(0, _looping_tables(2))])
    path.write_bytes(data[:64 + 56 * 2 + len(notes) - 300])
    return path


CASES = {"many-cpus": many_cpus, "too-many-notes": too_many_notes, "counts-disagree": counts_disagree,
         "lying-sizes": lying_sizes, "cut-in-a-note": cut_in_a_note}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return build_inputs(tmp_path_factory, "elfnotes", CASES, ".elf")


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_cpu_notes_dump_json(inputs, case):
    out = run_fwinspect(["dump", inputs[case], "--json"])
    out.check()
    tree = json.loads(out.stdout)
    dump = next(n for n in tree["children"] if n["kind"] == "dump")
    problems = [p for n in (tree, dump) for p in n["problems"]]
    if case != "many-cpus":
        assert out.returncode == 1 and problems, out.describe()
    if case == "many-cpus":
        walks = [n for n in dump["children"] if n["kind"] == "cpu-page-tables"]
        assert len([n for n in dump["children"] if n["kind"] == "cpu"]) == 4096 and len(walks) == 1
        assert any("not walked" in p["message"] for p in walks[0]["problems"])


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_cpu_notes_pages(inputs, case):
    out = run_fwinspect(["pages", inputs[case]], stdout_to=Path(os.devnull))
    out.check()
