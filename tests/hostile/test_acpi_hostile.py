"""Hostile ACPI inputs, each run as a whole `fwinspect acpi` process (README, "Budgets").

Tables from ACPI 6.5: the RSDP (5.2.5.3: "RSD PTR ", Checksum over 20 bytes, OemId, Revision,
RsdtAddress, Length, XsdtAddress, ExtendedChecksum over 36), the 36-byte header (5.2.6), the XSDT's
64-bit entries (5.2.8), the MADT (5.2.12: LocalApicAddress u32, Flags u32, then {Type u8,
Length u8} structures; Processor Local APIC, 5.2.12.2, is type 0 of 8 bytes). They are written as
acpidump text ("SIG @ 0xADDR" then "OFFSET: hex bytes" lines, acpica's acpidump format).
"""
from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from tests.hostile.harness import build_inputs, run_fwinspect


def _checksummed(sig: bytes, body: bytes, revision: int = 1) -> bytes:
    length = 36 + len(body)
    head = struct.pack("<4sIBB6s8sI4sI", sig, length, revision, 0, b"HOSTIL", b"HOSTILE ", 1, b"TEST", 1)
    table = bytearray(head + body)
    table[9] = (-sum(table)) & 0xFF
    return bytes(table)


def rsdp(xsdt: int) -> bytes:
    r = bytearray(struct.pack("<8sB6sBIIQB3s", b"RSD PTR ", 0, b"HOSTIL", 2, 0, 36, xsdt, 0, bytes(3)))
    r[8] = (-sum(r[:20])) & 0xFF
    r[32] = (-sum(r)) & 0xFF
    return bytes(r)


def madt(subtables: int) -> bytes:
    body = struct.pack("<II", 0xFEE00000, 1)
    body += b"".join(struct.pack("<BBBBI", 0, 8, i & 0xFF, i & 0xFF, 1) for i in range(subtables))
    return _checksummed(b"APIC", body, 5)


def write_acpidump(path: Path, tables: list[tuple[str, int, bytes]]) -> Path:
    """acpidump's text, one table at a time (the generating process stays small: a child's peak
    RSS as wait4 reports it includes its parent's at the fork)."""
    with path.open("w") as f:
        for sig, addr, data in tables:
            f.write(f"{sig} @ 0x{addr:016x}\n")
            f.write("".join(f"    {o:04X}: " + " ".join(f"{b:02X}" for b in data[o:o + 16]) + "\n"
                            for o in range(0, len(data), 16)))
            f.write("\n")
    return path


def xsdt_of_madts(path: Path, count: int = 256, subtables: int = 4096, distinct: bool = True) -> Path:
    """RSDP -> XSDT of `count` entries -> `count` MADTs of `subtables` Local APIC structures each
    (or one MADT `count` times when not `distinct`)."""
    one = madt(subtables)
    stride = (len(one) + 0xFFF) & ~0xFFF
    base = 0x10000000
    addrs = [base + (i * stride if distinct else 0) for i in range(count)]
    xsdt_addr = 0x1000
    xsdt = _checksummed(b"XSDT", b"".join(struct.pack("<Q", a) for a in addrs))
    tables = [("RSD PTR", 0xE0000, rsdp(xsdt_addr)), ("XSDT", xsdt_addr, xsdt)]
    tables += [("APIC", a, one) for a in sorted(set(addrs))]
    return write_acpidump(path, tables)


def shared_madt(path: Path) -> Path:
    return xsdt_of_madts(path, distinct=False)


def many_blocks(path: Path) -> Path:
    """Thousands of small "SSDT @" blocks without an RSDP: past the dump's table count."""
    t = _checksummed(b"SSDT", bytes(64), 2)
    return write_acpidump(path, [("SSDT", 0x1000 * (i + 1), t) for i in range(20_000)])


def madt_binary(path: Path) -> Path:
    """One binary MADT of 65,000 minimal subtables (Length 2 each, an OEM type): a table file."""
    body = struct.pack("<II", 0xFEE00000, 1) + struct.pack("<BB", 0x80, 2) * 65_000
    path.write_bytes(_checksummed(b"APIC", body, 5))
    return path


CASES = {
    "xsdt-256-madts-4096": xsdt_of_madts,
    "xsdt-256-same-madt": shared_madt,
    "acpidump-20k-blocks": many_blocks,
    "madt-65k-subtables": madt_binary,
}
MODES = {"tree": [], "json": ["--json"]}


def command(path: Path, mode: str) -> list:
    return ["acpi", path, *MODES[mode]]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return build_inputs(tmp_path_factory, "acpi", CASES, ".txt")


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("case", list(CASES))
def test_hostile_acpi_whole_process(inputs, case, mode):
    run_fwinspect(command(inputs[case], mode), stdout_to=Path(os.devnull)).check()
