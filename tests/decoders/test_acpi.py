"""ACPI decoding checked against iasl's disassembly of the same bytes (fixtures' *.dsl, made by
acpica-tools 20200925) and against pointers read independently from the fixture tables."""
from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from decoders.acpi import decode_acpi_from_rsdp, decode_rsdp, decode_table, find_rsdp
from decoders.memory import Unreadable
from tests.realdata import FIXTURES, fixture, params

IASL_LINE = re.compile(r"^\[([0-9A-F]+)h (\d+)\s+(\d+)\]\s+(.*?) : (.*)$")
GAS_PARTS = [(0, 1, "AddressSpaceId"), (1, 1, "RegisterBitWidth"), (2, 1, "RegisterBitOffset"),
             (3, 1, "AccessSize"), (4, 8, "Address")]


def table_pairs():
    root = FIXTURES / "acpi"
    if not root.is_dir():
        return []
    pairs = []
    for dsl in sorted(root.rglob("*.dsl")):
        for suffix in (".dat", ".aml", ".AML"):
            if dsl.with_suffix(suffix).exists():
                pairs.append(pytest.param(dsl.with_suffix(suffix), dsl, id=str(dsl.relative_to(root))))
    return pairs


def our_fields(node):
    """(offset, size) -> value for every field, with a GAS expanded into its five parts."""
    out = {}
    for n in node.walk():
        for f in n.fields:
            if f.offset is None:
                continue
            if isinstance(f.value, dict) and "AddressSpaceId" in f.value:
                for off, size, name in GAS_PARTS:
                    out[(f.offset + off, size)] = f.value[name]
            else:
                out[(f.offset, f.size)] = f.value
    return out


def norm(value):
    if isinstance(value, (bytes, bytearray)):
        return int.from_bytes(value, "little")
    if isinstance(value, str):
        return " ".join(value.split())
    return value


@pytest.mark.parametrize("table,dsl", params(table_pairs(), "ACPI tables with iasl output in tests/data/acpi", 2))
def test_every_iasl_field_matches_ours(table, dsl):
    node = decode_table(table.read_bytes(), name=table.name)
    ours = our_fields(node)
    compared = 0
    for line in dsl.read_text(errors="replace").splitlines():
        m = IASL_LINE.match(line.strip())
        if not m or int(m.group(3)) > 8:
            continue
        off, size, name, text = int(m.group(2)), int(m.group(3)), m.group(4), m.group(5).strip()
        if (off, size) not in ours:
            # iasl decodes a few tables we show raw (BOOT); everything we decode must line up.
            assert "body not decoded" in " ".join(p.message for p in node.problems), (name, off, size)
            continue
        quoted = re.match(r'^"(.*)"', text)
        if quoted:
            expected = " ".join(quoted.group(1).split())
        else:
            hexval = re.match(r"^([0-9A-F]+)\b", text)
            if not hexval:
                continue
            expected = int(hexval.group(1), 16)
        assert norm(ours[(off, size)]) == expected, f"{name} at {off} (iasl: {text})"
        compared += 1
    if node.get("Signature") not in ("DSDT", "SSDT"):
        assert compared >= 9  # at least the header


def test_cloud_hypervisor_madt_16_vcpus():
    node = decode_table(fixture("acpi/igvm-tooling-cloud-hypervisor/16vcpu-APIC_sample.aml").read_bytes())
    lapics = [c for c in node.children if c.get("Type") == 0]
    assert len(lapics) == 16
    assert [c.get("ApicId") for c in lapics] == list(range(16))
    assert not node.problems


def test_cloud_hypervisor_tpm2_rev4_laml_lasa():
    # edk2 MdePkg/Include/IndustryStandard/Tpm2Acpi.h, rev 4: LAML u32 @64, LASA u64 @68; this table
    # (tests/data/README.md) has LAML 0x10000 and LASA 0xBFFF0000, as iasl shows.
    node = decode_table(fixture("acpi/igvm-tooling-cloud-hypervisor/1vcpu-tpm2.aml").read_bytes())
    assert node.get("Revision") == 4
    assert node.get("Laml") == 0x10000
    assert node.get("Lasa") == 0xBFFF0000
    assert node.get("StartMethod") == 7  # CRB


def test_real_gce_ccel_tables():
    for rel, laml in [("ccel/go-eventlog/cos-113-intel-tdx.table.bin", None),
                      ("ccel/go-tdx-guest/ccel_table.dat", None)]:
        node = decode_table(fixture(rel).read_bytes())
        assert node.get("Signature") == "CCEL"
        assert node.get("CcType") == 2, "CC type 2 is TDX (ACPI 6.5 Table 5.160)"
        assert node.get("Laml") in (0x10000, 0x40000)
        assert node.get("Lasa") and node.get("Lasa") % 0x1000 == 0
        assert not [p for p in node.problems if p.severity.value == "error"]


def test_real_machine_acpidump_followed_from_rsdp():
    """fwts acpidump-0001 is a whole real machine; acpidump kept every table's address, so the
    RSDP -> XSDT -> tables -> FADT -> DSDT/FACS chain is the firmware's own."""
    from inspector.acpisource import decode_acpidump, parse_acpidump

    path = fixture("acpi/fwts/acpidump-0001/acpidump.log")
    listed = {(sig, addr) for sig, addr, _ in parse_acpidump(path.read_text())}
    root = decode_acpidump(path)
    reached = [c for c in root.children if c.kind == "acpi-table" and "not reached" not in
               " ".join(p.message for p in c.problems)]
    sigs = sorted(c.get("Signature") for c in reached)
    # The real machine (fixtures README): RSDT, XSDT, 2x FACP, DSDT, 5x SSDT, 2x APIC, HPET, MCFG,
    # TCPA, SLIC, BOOT, TMOR; the XSDT and RSDT name one FACP each here.
    for sig in ("XSDT", "FACP", "DSDT", "FACS", "APIC", "HPET", "MCFG", "TCPA", "SSDT"):
        assert sig in sigs, sig
    for c in reached:
        assert (c.get("Signature"), c.address) in listed or c.get("Signature") in ("FACS",) or \
            any(a == c.address for _, a in listed)
    assert root.children[0].kind == "acpi-rsdp" and root.children[0].address == 0xF7240


def test_rsdp_checksums_and_find():
    raw = fixture("acpi/igvm-tooling-cloud-hypervisor/1vcpu-rsdp.aml").read_bytes()
    node = decode_rsdp(raw)
    assert node.get("Revision") == 2 and not node.problems
    blob = b"\x00" * 13 + raw + b"\x00" * 7
    assert find_rsdp(blob) == [13]  # not 16-byte aligned: OVMF's 2.0 RSDP sat at 0xF77D014 in a QEMU dump-guest-memory
    bad = bytearray(raw)
    bad[32] ^= 1
    assert any("ExtendedChecksum" in p.message for p in decode_rsdp(bytes(bad)).problems)


@pytest.mark.parametrize("mutate,expect", [
    (lambda b: b[:20], "runs past"),
    (lambda b: b[:4] + struct.pack("<I", 10) + b[8:], "shorter than the 36-byte header"),
    (lambda b: b[:9] + bytes([(b[9] + 1) & 0xFF]) + b[10:], "Checksum"),
    (lambda b: b[:4] + struct.pack("<I", 0xFFFFFFF0) + b[8:], "runs past"),
])
def test_bad_tables_give_located_problems(mutate, expect):
    raw = fixture("acpi/igvm-tooling-cloud-hypervisor/16vcpu-APIC_sample.aml").read_bytes()
    node = decode_table(mutate(raw))
    assert any(expect in p.message for p in node.problems), [str(p) for p in node.problems]


def test_madt_subtable_with_lying_length_stops_walk_with_problem():
    raw = bytearray(fixture("acpi/igvm-tooling-cloud-hypervisor/16vcpu-APIC_sample.aml").read_bytes())
    raw[44 + 1] = 0  # first subtable Length 0
    node = decode_table(bytes(raw))
    assert any("shorter than" in p.message for c in node.children for p in c.problems)


def test_mp_wakeup_16_and_24_byte_forms():
    def madt(sub: bytes) -> bytes:
        body = struct.pack("<II", 0xFEE00000, 0) + sub
        hdr = b"APIC" + struct.pack("<IBB", 36 + len(body), 5, 0) + b"OEMID " + b"TABLEID " + b"\0" * 12
        t = bytearray(hdr + body)
        t[9] = (-sum(t)) & 0xFF
        return bytes(t)

    v0 = madt(struct.pack("<BBHIQ", 0x10, 16, 0, 0, 0x7F000000))
    v1 = madt(struct.pack("<BBHIQQ", 0x10, 24, 1, 0, 0x7F000000, 0x7F001000))
    n0, n1 = decode_table(v0), decode_table(v1)
    w0, w1 = n0.children[0], n1.children[0]
    assert w0.get("MailBoxAddress") == 0x7F000000 and w0.get("ResetVector") is None and not w0.problems
    assert w1.get("ResetVector") == 0x7F001000 and w1.get("MailBoxVersion") == 1 and not w1.problems
