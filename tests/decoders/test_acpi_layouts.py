"""ACPI bodies packed by hand from the spec's tables with distinct values, so a member declared at the
wrong offset, with the wrong size or in the wrong order shows up as a wrong field; and tables cut
mid-structure, which add only the members that fit before their Length."""
from __future__ import annotations

import struct

from decoders.acpi import decode_table


def table(signature: bytes, body: bytes, revision: int = 6, length: int | None = None) -> bytes:
    """A table with the ACPI 6.5 §5.2.6 header (Table 5.4) and a valid checksum; `length` overrides
    the header's Length (the bytes stay whole)."""
    length = 36 + len(body) if length is None else length
    header = struct.pack("<4sIBB6s8sI4sI", signature, length, revision, 0, b"OEMID ", b"TABLEID ", 1,
                         b"CRID", 2)
    raw = bytearray(header + body)
    raw[9] = -sum(raw[:length]) & 0xFF
    return bytes(raw)


def body_fields(node, start: int = 36) -> list[tuple[str, int, int, object]]:
    return [(f.name, f.offset, f.size, f.value) for f in node.fields if f.offset is not None and f.offset >= start]


# ACPI 6.5 §5.2.9 Table 5.9 (FADT Format): (name as decoded, offset, struct code); a GAS is "12s".
FADT_SPEC = [
    ("FirmwareCtrl", 36, "I"), ("Dsdt", 40, "I"), ("Reserved0", 44, "B"), ("PreferredPmProfile", 45, "B"),
    ("SciInt", 46, "H"), ("SmiCmd", 48, "I"), ("AcpiEnable", 52, "B"), ("AcpiDisable", 53, "B"),
    ("S4BiosReq", 54, "B"), ("PstateCnt", 55, "B"), ("Pm1aEvtBlk", 56, "I"), ("Pm1bEvtBlk", 60, "I"),
    ("Pm1aCntBlk", 64, "I"), ("Pm1bCntBlk", 68, "I"), ("Pm2CntBlk", 72, "I"), ("PmTmrBlk", 76, "I"),
    ("Gpe0Blk", 80, "I"), ("Gpe1Blk", 84, "I"), ("Pm1EvtLen", 88, "B"), ("Pm1CntLen", 89, "B"),
    ("Pm2CntLen", 90, "B"), ("PmTmrLen", 91, "B"), ("Gpe0BlkLen", 92, "B"), ("Gpe1BlkLen", 93, "B"),
    ("Gpe1Base", 94, "B"), ("CstCnt", 95, "B"), ("PLvl2Lat", 96, "H"), ("PLvl3Lat", 98, "H"),
    ("FlushSize", 100, "H"), ("FlushStride", 102, "H"), ("DutyOffset", 104, "B"), ("DutyWidth", 105, "B"),
    ("DayAlrm", 106, "B"), ("MonAlrm", 107, "B"), ("Century", 108, "B"), ("IaPcBootArch", 109, "H"),
    ("Reserved1", 111, "B"), ("Flags", 112, "I"), ("ResetReg", 116, "12s"), ("ResetValue", 128, "B"),
    ("ArmBootArch", 129, "H"), ("MinorVersion", 131, "B"), ("XFirmwareCtrl", 132, "Q"), ("XDsdt", 140, "Q"),
    ("XPm1aEvtBlk", 148, "12s"), ("XPm1bEvtBlk", 160, "12s"), ("XPm1aCntBlk", 172, "12s"),
    ("XPm1bCntBlk", 184, "12s"), ("XPm2CntBlk", 196, "12s"), ("XPmTmrBlk", 208, "12s"),
    ("XGpe0Blk", 220, "12s"), ("XGpe1Blk", 232, "12s"), ("SleepControlReg", 244, "12s"),
    ("SleepStatusReg", 256, "12s"), ("HypervisorVendorIdentity", 268, "Q"),
]


def fadt_values() -> tuple[bytes, list[tuple[str, int, int, object]]]:
    """A 276-byte FADT body whose every member holds a different value, and the fields it must
    give: (name, offset, size, value); a GAS (ACPI 6.5 §5.2.3.2 Table 5.1) as its five members."""
    body, expected = b"", []
    for i, (name, offset, code) in enumerate(FADT_SPEC, start=1):
        assert 36 + len(body) == offset, name
        if code == "12s":
            gas = {"AddressSpaceId": i % 3, "RegisterBitWidth": 8 + i, "RegisterBitOffset": i % 5,
                   "AccessSize": i % 4, "Address": 0x1000 * i + i}
            body += struct.pack("<BBBBQ", *gas.values())
            expected.append((name, offset, 12, gas))
        else:
            value = (i * 0x01010101 + 0x10203) & ((1 << (8 * struct.calcsize(code))) - 1)
            body += struct.pack("<" + code, value)
            expected.append((name, offset, struct.calcsize(code), value))
    return body, expected


def test_fadt_packed_per_spec_gives_each_member_at_its_offset():
    body, expected = fadt_values()
    assert len(body) == 276 - 36
    node = decode_table(table(b"FACP", body))
    assert body_fields(node) == expected
    reset = node.field("ResetReg")
    # member 39 (ResetReg): AddressSpaceId 39 % 3 = 0, width 47, offset 4, access 3, address 0x27027.
    assert reset.display == "SystemMemory 0x27027 (width 47, offset 4, access DWord)"
    # member 46 (XPm1bEvtBlk): SystemIO (1), width 54, offset 1, access 2, address 0x2e02e.
    assert node.field("XPm1bEvtBlk").display == "SystemIO 0x2e02e (width 54, offset 1, access Word)"


def test_header_fields_and_ascii_ids():
    node = decode_table(table(b"FACP", fadt_values()[0]))
    assert [(f.name, f.offset, f.size, f.value) for f in node.fields[:9]] == [
        ("Signature", 0, 4, "FACP"), ("Length", 4, 4, 276), ("Revision", 8, 1, 6),
        ("Checksum", 9, 1, node.get("Checksum")), ("OemId", 10, 6, "OEMID "), ("OemTableId", 16, 8, "TABLEID "),
        ("OemRevision", 24, 4, 1), ("CreatorId", 28, 4, "CRID"), ("CreatorRevision", 32, 4, 2)]


def test_fadt_cut_mid_member_adds_only_the_members_before_length():
    body, expected = fadt_values()
    # Length 122 ends inside ResetReg (116..128): the members up to Flags, nothing of ResetReg on.
    node = decode_table(table(b"FACP", body, length=122))
    assert body_fields(node) == [e for e in expected if e[1] + e[2] <= 122]
    assert body_fields(node)[-1][0] == "Flags" and node.get("ResetReg") is None
    # Length 114 ends inside Flags (112..116).
    node = decode_table(table(b"FACP", body, length=114))
    assert body_fields(node)[-1][:3] == ("Reserved1", 111, 1)
    # The ACPI 1.0 FADT (Length 116) ends exactly after Flags.
    node = decode_table(table(b"FACP", body[:116 - 36], revision=1))
    assert body_fields(node)[-1][:3] == ("Flags", 112, 4) and not node.problems


def madt_entry(typ: int, fmt: str, *values) -> bytes:
    return struct.pack("<BB" + fmt, typ, 2 + struct.calcsize("<" + fmt), *values)


def test_madt_entries_packed_per_spec():
    # ACPI 6.5 §5.2.12 Table 5.19 (MADT): Local Interrupt Controller Address @36, Flags @40, then
    # the structures: Processor Local APIC (Table 5.22), I/O APIC (5.24), Interrupt Source Override
    # (5.25), Local APIC NMI (5.28), Processor Local x2APIC (5.33), each {Type, Length} first.
    body = struct.pack("<II", 0xFEE00000, 1)
    body += madt_entry(0x00, "BBI", 3, 5, 1)
    body += madt_entry(0x01, "BBII", 7, 0, 0xFEC00000, 24)
    body += madt_entry(0x02, "BBIH", 0, 9, 2, 0xD)
    body += madt_entry(0x04, "BHB", 0xFF, 0x5, 1)
    body += madt_entry(0x09, "HIII", 0, 0x101, 1, 0x202)
    node = decode_table(table(b"APIC", body))
    assert not node.problems and all(not c.problems for c in node.children)
    assert body_fields(node) == [("LocalApicAddress", 36, 4, 0xFEE00000), ("Flags", 40, 4, 1)]
    entries = [[(f.name, f.offset, f.size, f.value) for f in c.fields] for c in node.children]
    assert entries == [
        [("Type", 44, 1, 0), ("Length", 45, 1, 8), ("AcpiProcessorUid", 46, 1, 3), ("ApicId", 47, 1, 5),
         ("Flags", 48, 4, 1)],
        [("Type", 52, 1, 1), ("Length", 53, 1, 12), ("IoApicId", 54, 1, 7), ("Reserved", 55, 1, 0),
         ("IoApicAddress", 56, 4, 0xFEC00000), ("GlobalSystemInterruptBase", 60, 4, 24)],
        [("Type", 64, 1, 2), ("Length", 65, 1, 10), ("Bus", 66, 1, 0), ("Source", 67, 1, 9),
         ("GlobalSystemInterrupt", 68, 4, 2), ("Flags", 72, 2, 0xD)],
        [("Type", 74, 1, 4), ("Length", 75, 1, 6), ("AcpiProcessorUid", 76, 1, 0xFF), ("Flags", 77, 2, 5),
         ("LocalApicLint", 79, 1, 1)],
        [("Type", 80, 1, 9), ("Length", 81, 1, 16), ("Reserved", 82, 2, 0), ("X2ApicId", 84, 4, 0x101),
         ("Flags", 88, 4, 1), ("AcpiProcessorUid", 92, 4, 0x202)],
    ]
    assert [c.title for c in node.children] == [
        "Processor Local APIC ApicId=5", "I/O APIC IoApicId=7", "Interrupt Source Override",
        "Local APIC NMI AcpiProcessorUid=255", "Processor Local x2APIC X2ApicId=257"]


def test_madt_entry_shorter_than_its_structure_adds_the_members_that_fit():
    # A Processor Local x2APIC whose Length is 12 of its 16 bytes: AcpiProcessorUid (@12) is left out.
    body = struct.pack("<II", 0xFEE00000, 0) + struct.pack("<BBHII", 0x09, 12, 0, 0x33, 1)
    node = decode_table(table(b"APIC", body))
    (entry,) = node.children
    assert [(f.name, f.offset, f.size, f.value) for f in entry.fields] == [
        ("Type", 44, 1, 9), ("Length", 45, 1, 12), ("Reserved", 46, 2, 0), ("X2ApicId", 48, 4, 0x33),
        ("Flags", 52, 4, 1)]
