"""Hostile page tables, each run as a whole `fwinspect pages` process (README, "Budgets": exit
0/1/2, no internal error, peak RSS <= 256 MiB; the time is measured in benchmarks/hostile.py).

The inputs are raw physical-memory files (`--base 0`) whose tables are written with struct.pack from
the IA-32e layout (Intel SDM vol. 3A, 4.5, tables 4-14..4-20): bit 0 P, bit 1 R/W, bit 2 U/S,
bit 7 PS, bits 51:12 the address of the next table or page.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from tests.hostile.harness import build_inputs, run_fwinspect

P, RW, US, PS = 1, 2, 4, 0x80
PAGE = 4096


def _table(entries) -> bytes:
    """One 4 KiB table from (index, value) pairs."""
    buf = bytearray(PAGE)
    for i, v in entries:
        struct.pack_into("<Q", buf, i * 8, v)
    return bytes(buf)


def aliased(path: Path) -> Path:
    """Every upper-level entry points at the same table: PML4 (page 0) -> one PDPT (page 1) -> one
    PD (page 2) -> one PT (page 3) of 512 4 KiB leaves. 16 KiB of file, 2^36 leaves by VA."""
    tables = [_table((i, PAGE * (n + 1) | P | RW) for i in range(512)) for n in range(3)]
    tables.append(_table((i, (i << 12) | P | RW) for i in range(512)))
    path.write_bytes(b"".join(tables))
    return path


def aliased_empty(path: Path) -> Path:
    """The same aliasing down to an empty PT: 2^27 table visits that find no leaf."""
    tables = [_table((i, PAGE * (n + 1) | P | RW) for i in range(512)) for n in range(3)]
    path.write_bytes(b"".join(tables) + bytes(PAGE))
    return path


def identity_1tib(path: Path) -> Path:
    """OVMF's identity map of 1 TiB in 2 MiB pages (OvmfPkg/ResetVector/Ia32/PageTables64.asm and
    MdeModulePkg/Core/DxeIplPeim/X64/VirtualMemory.c build the same shape): PML4[0..1] -> 2 PDPTs ->
    1,024 PDs of 512 leaves, 524,288 leaves from 4 MiB of distinct tables."""
    pml4 = _table((i, PAGE * (1 + i) | P | RW) for i in range(2))
    pdpts = [_table((j, PAGE * (3 + i * 512 + j) | P | RW) for j in range(512)) for i in range(2)]
    pds = [_table((k, ((d * 512 + k) << 21) | P | RW | PS) for k in range(512)) for d in range(1024)]
    path.write_bytes(pml4 + b"".join(pdpts) + b"".join(pds))
    return path


def distinct_4k(path: Path, size: int = 64 << 20) -> Path:
    """A 64 MiB file of distinct tables: PML4 -> 32 PDPT entries... every page after the first few a
    PT of 512 4 KiB leaves, so the leaves (8 Mi) pass any budget while every table is distinct."""
    pages = size // PAGE
    pts = pages - 1 - 1 - 32          # PML4, one PDPT, 32 PDs
    pml4 = _table([(0, PAGE | P | RW)])
    pdpt = _table((j, PAGE * (2 + j) | P | RW) for j in range(32))
    first_pt = 34
    pds = [_table((k, PAGE * (first_pt + d * 512 + k) | P | RW) for k in range(512) if d * 512 + k < pts)
           for d in range(32)]
    pt = _table((i, (i << 12) | P | RW) for i in range(512))
    with path.open("wb") as f:
        f.write(pml4 + pdpt + b"".join(pds))
        for _ in range(pts):
            f.write(pt)
    return path


def self_loops(path: Path) -> Path:
    """Every entry at every level points back at a table above it or at itself."""
    tables = [_table((i, PAGE * (i % (n + 1)) | P | RW) for i in range(512)) for n in range(4)]
    path.write_bytes(b"".join(tables))
    return path


# name -> (generator, extra arguments); every case also runs with --leaves and --json.
CASES = {
    "aliased": aliased,
    "aliased-empty": aliased_empty,
    "identity-1tib": identity_1tib,
    "distinct-4k-64mib": distinct_4k,
    "self-loops": self_loops,
}
MODES = {
    "ranges": [],
    "leaves": ["--leaves"],
    "json": ["--json"],
    "json-merged": ["--json", "--merged"],
    "tables": ["--tables"],
}


def command(path: Path, mode: str) -> list:
    return ["pages", path, "--base", "0", "--cr3", "0", "--no-la57", *MODES[mode]]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return build_inputs(tmp_path_factory, "pages", CASES, ".raw")


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("case", list(CASES))
def test_hostile_page_tables_whole_process(inputs, case, mode):
    out = run_fwinspect(command(inputs[case], mode), stdout_to=Path(os.devnull))
    out.check()
