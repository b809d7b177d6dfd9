"""The MADT Multiprocessor Wakeup structure (type 0x10) and the mailbox it points at, followed through
memory from the RSDP. Tables and mailbox built here with struct.pack from ACPI 6.4 §5.2.12.19 (Table
5.43, the 16-byte entry; 6.6 adds ResetVector, 24 bytes) and Table 5.44 (the 4 KiB mailbox: Command
u16, Reserved u16, ApicId u32, WakeupVector u64, 2032 bytes for the OS, 2048 for the firmware)."""
from __future__ import annotations

import struct

from decoders.acpi import decode_acpi_from_rsdp
from decoders.memory import RegionMemory

RSDP_AT, XSDT_AT, MADT_AT, MAILBOX_AT = 0xE0000, 0x7F000000, 0x7F000100, 0x7F002000


def table(sig: bytes, body: bytes, revision: int = 1) -> bytes:
    """A System Description Table header (ACPI 6.4 §5.2.6) and a body, checksummed."""
    t = bytearray(sig + struct.pack("<IBB", 36 + len(body), revision, 0) + b"BOCHS " + b"BXPC    "
                  + struct.pack("<I", 1) + b"BXPC" + struct.pack("<I", 1) + body)
    t[9] = (-sum(t)) & 0xFF
    return bytes(t)


def rsdp(xsdt: int) -> bytes:
    v1 = bytearray(b"RSD PTR " + b"\0" + b"BOCHS " + bytes([2]) + struct.pack("<I", 0))
    v1[8] = (-sum(v1)) & 0xFF
    v2 = bytearray(bytes(v1) + struct.pack("<IQ", 36, xsdt) + b"\0" * 4)
    v2[32] = (-sum(v2)) & 0xFF
    return bytes(v2)


def madt(wakeup: bytes) -> bytes:
    # LocalApicAddress, Flags, then a Processor Local APIC (type 0, 8 bytes) and the wakeup entry.
    return table(b"APIC", struct.pack("<II", 0xFEE00000, 1) + struct.pack("<BBBBI", 0, 8, 0, 0, 1) + wakeup, 5)


def mailbox(command: int = 1, apic_id: int = 3, vector: int = 0x7F001000) -> bytes:
    fw = bytearray(2048)
    fw[0:4] = b"\x0f\x01\xca\xf4"   # something the firmware keeps there
    return struct.pack("<HHIQ", command, 0, apic_id, vector) + bytes(2032) + bytes(fw)


def memory(wakeup: bytes, box: bytes | None) -> RegionMemory:
    regions = [(RSDP_AT, rsdp(XSDT_AT)),
               (XSDT_AT, table(b"XSDT", struct.pack("<Q", MADT_AT))),
               (MADT_AT, madt(wakeup))]
    if box is not None:
        regions.append((MAILBOX_AT, box))
    return RegionMemory(regions)


def wakeup_entry(root):
    apic = next(t for t in root.children if t.kind == "acpi-table" and t.title.startswith("APIC"))
    return next(c for c in apic.children if c.get("Type") == 0x10)


def test_mailbox_is_decoded_from_memory_under_its_madt_entry():
    entry16 = struct.pack("<BBHIQ", 0x10, 16, 0, 0, MAILBOX_AT)
    root = decode_acpi_from_rsdp(memory(entry16, mailbox()), RSDP_AT)
    entry = wakeup_entry(root)
    assert entry.get("MailBoxVersion") == 0 and entry.get("MailBoxAddress") == MAILBOX_AT
    assert entry.get("ResetVector") is None and not entry.problems
    box = entry.children[0]
    assert box.kind == "mp-wakeup-mailbox" and box.address == MAILBOX_AT and box.size == 0x1000
    assert (box.get("Command"), box.get("ApicId"), box.get("WakeupVector")) == (1, 3, 0x7F001000)
    assert box.field("Command").text == "1 (Wakeup)"
    assert box.field("ReservedForFirmware").offset == 2048 and box.field("ReservedForOs").offset == 16
    assert box.field("ReservedForFirmware").text == "2048 bytes, 4 non-zero"
    assert "APIC ID 3 to 0x7f001000" in box.title and not box.problems


def test_acpi_6_6_entry_with_reset_vector_and_an_idle_mailbox():
    entry24 = struct.pack("<BBHIQQ", 0x10, 24, 1, 0, MAILBOX_AT, 0x7F003000)
    root = decode_acpi_from_rsdp(memory(entry24, mailbox(command=0, apic_id=0, vector=0)), RSDP_AT)
    entry = wakeup_entry(root)
    assert entry.get("ResetVector") == 0x7F003000 and entry.get("MailBoxVersion") == 1
    box = entry.children[0]
    assert box.get("Command") == 0 and "no request pending" in box.title


def test_unreadable_unaligned_and_zero_mailboxes_are_located_on_the_entry():
    entry = struct.pack("<BBHIQ", 0x10, 16, 0, 0, MAILBOX_AT)
    e = wakeup_entry(decode_acpi_from_rsdp(memory(entry, None), RSDP_AT))
    where = MADT_AT + 36 + 8 + 8 + 8        # header, LocalApicAddress+Flags, the LAPIC entry, Type..Reserved
    assert e.field("MailBoxAddress").offset + MADT_AT == where
    assert [p.message for p in e.problems if "not readable" in p.message]
    assert e.problems[0].offset == e.field("MailBoxAddress").offset

    odd = struct.pack("<BBHIQ", 0x10, 16, 0, 0, MAILBOX_AT + 0x10)
    regions = memory(odd, None)
    regions.add(MAILBOX_AT + 0x10, mailbox())
    e = wakeup_entry(decode_acpi_from_rsdp(regions, RSDP_AT))
    assert any("not 4 KiB aligned" in p.message for p in e.problems)
    assert e.children[0].get("ApicId") == 3

    zero = struct.pack("<BBHIQ", 0x10, 16, 0, 0, 0)
    e = wakeup_entry(decode_acpi_from_rsdp(memory(zero, None), RSDP_AT))
    assert [p.message for p in e.problems] == ["MailBoxAddress is 0: no mailbox"] and not e.children


def test_reserved_command_is_a_warning():
    entry = struct.pack("<BBHIQ", 0x10, 16, 0, 0, MAILBOX_AT)
    box = wakeup_entry(decode_acpi_from_rsdp(memory(entry, mailbox(command=7)), RSDP_AT)).children[0]
    assert box.get("Command") == 7 and any("Command 7 is reserved" in p.message for p in box.problems)
