"""ACPI decoding of mutated real tables: lengths shorter than a header or past the buffer, wrong
checksums, lying subtable lengths. Always a node with located problems; never an exception."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decoders.acpi import decode_rsdp, decode_table
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
@settings(max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.too_slow], database=None)
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
