"""ACPI decoding of mutated real tables: lengths shorter than a header or past the buffer, wrong
checksums, lying subtable lengths. Always a node with located problems; never an exception. Tables
of many structures, written with struct.pack from ACPI 6.5 (5.2.5.3 RSDP, 5.2.6 the header, 5.2.8
XSDT, 5.2.12 MADT with 8-byte Processor Local APIC structures, 5.2.12.2), check the structure
budgets and the acpidump reader's bounds."""
from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decoders import budget
from decoders.acpi import decode_acpi_from_rsdp, decode_rsdp, decode_table
from decoders.acpi.decode import MAX_STRUCTURES, MAX_SUBTABLES
from decoders.memory import RegionMemory
from tests.realdata import FIXTURES

TABLES = sorted(p for p in (FIXTURES / "acpi").rglob("*") if p.suffix in (".dat", ".aml", ".AML")) \
    if (FIXTURES / "acpi").is_dir() else []


def mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    b = bytearray(data)
    for pos, value in edits:
        if b:
            b[pos % len(b)] = value
    return bytes(b[:cut]) if cut is not None else bytes(b)


@pytest.mark.skipif(not TABLES, reason="tests/data/acpi is absent")
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(index=st.integers(min_value=0, max_value=max(len(TABLES) - 1, 0)),
       edits=st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), max_size=8),
       cut=st.one_of(st.none(), st.integers(0, 512)))
def test_mutated_tables_decode_to_located_problems(index, edits, cut):
    data = mutate(Path(TABLES[index]).read_bytes(), edits, cut)
    node = decode_table(data) if data[:8] != b"RSD PTR " else decode_rsdp(data)
    for n in node.walk():
        for p in n.problems:
            assert p.offset is None or 0 <= p.offset <= max(len(data), 1) + 0x100
    node.to_json()


def _table(sig: bytes, body: bytes, revision: int = 1) -> bytes:
    t = bytearray(struct.pack("<4sIBB6s8sI4sI", sig, 36 + len(body), revision, 0, b"TESTID", b"TESTTBL ", 1,
                              b"TEST", 1) + body)
    t[9] = -sum(t) & 0xFF
    return bytes(t)


def _madt(count: int) -> bytes:
    return _table(b"APIC", struct.pack("<II", 0xFEE00000, 1) +
                  b"".join(struct.pack("<BBBBI", 0, 8, i & 0xFF, i & 0xFF, 1) for i in range(count)), 5)


def _rsdp(xsdt: int) -> bytes:
    r = bytearray(struct.pack("<8sB6sBIIQB3s", b"RSD PTR ", 0, b"TESTID", 2, 0, 36, xsdt, 0, bytes(3)))
    r[8] = -sum(r[:20]) & 0xFF
    r[32] = -sum(r) & 0xFF
    return bytes(r)


def test_structures_across_tables_stop_at_max_structures_with_a_located_problem():
    per = 4096
    tables = MAX_STRUCTURES // per + 1
    madts = [(0x100000 * (i + 1), _madt(per)) for i in range(tables)]
    xsdt = _table(b"XSDT", b"".join(struct.pack("<Q", a) for a, _ in madts))
    mem = RegionMemory([(0xE0000, _rsdp(0x1000)), (0x1000, xsdt)] + madts)
    root = decode_acpi_from_rsdp(mem, 0xE0000)
    apics = [c for c in root.children if c.title.startswith("APIC")]
    assert [len(a.children) for a in apics] == [per] * (tables - 1) + [0]
    (p,) = apics[-1].problems
    assert p.offset == 44 and p.severity.value == "warning"
    assert p.message == (f"4,096 more madt structures not shown; the budget is {MAX_STRUCTURES:,} structures "
                         "in one decode")


def test_one_table_stops_at_max_subtables_and_the_node_budget_cuts_earlier():
    node = decode_table(_madt(MAX_SUBTABLES + 3))
    assert len(node.children) == MAX_SUBTABLES
    (p,) = node.problems
    assert (p.offset, p.message) == (44 + 8 * MAX_SUBTABLES, f"3 more madt structures not shown; the budget is "
                                                              f"{MAX_SUBTABLES:,} structures in one table")
    with budget.scope(budget.Limits(nodes=10)):
        node = decode_table(_madt(20))
    assert len(node.children) == 10
    assert [p.message for p in node.problems] == ["10 more madt structures not shown; the budget is 10 nodes"]


def test_acpidump_text_past_its_table_budget_says_where_reading_stopped(tmp_path):
    from inspector.acpisource import MAX_DUMP_TABLES, decode_acpidump

    ssdt = _table(b"SSDT", bytes(16), 2)
    lines = []
    for i in range(MAX_DUMP_TABLES + 2):
        lines.append(f"SSDT @ 0x{0x1000 * (i + 1):016x}")
        lines += [f"    {o:04X}: " + " ".join(f"{b:02X}" for b in ssdt[o:o + 16]) for o in range(0, len(ssdt), 16)]
        lines.append("")
    path = tmp_path / "acpidump.txt"
    path.write_text("\n".join(lines) + "\n")
    root = decode_acpidump(path)
    assert len(root.children) == MAX_DUMP_TABLES
    line = MAX_DUMP_TABLES * 6 + 1   # each block: its header, four hex lines (52 bytes), a blank line
    assert [p.message for p in root.problems] == [
        f"acpidump.txt line {line}: not read further: more tables follow; the budget is "
        f"{MAX_DUMP_TABLES:,} tables from one dump"]
