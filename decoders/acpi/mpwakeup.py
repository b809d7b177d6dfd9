"""The Multiprocessor Wakeup Mailbox that a MADT Multiprocessor Wakeup structure (type 0x10) points at
(ACPI 6.4 §5.2.12.19, Table 5.44; edk2 MdePkg/Include/IndustryStandard/Acpi64.h
EFI_ACPI_6_4_MULTIPROCESSOR_WAKEUP_MAILBOX_STRUCTURE).

A TDX guest's vCPUs all start at the reset vector; TDVF parks the APs on this mailbox (OvmfPkg/TdxDxe
TdxAcpiTable.c AlterAcpiTable relocates it to ACPI NVS and adds the MADT entry) and the OS wakes one
by writing its APIC ID and a wakeup vector, then Command = 1. `mailbox_node(memory, address)` reads the
4 KiB page through a Memory; `follow_mp_wakeup(madt, memory)` does it for every type 0x10 entry of a
decoded MADT, appending the mailbox under its entry. An unreadable or misplaced mailbox is a located
problem on the entry.
"""
from __future__ import annotations

from decoders.layout import Layout
from decoders.memory import Memory, Unreadable
from decoders.model import Node, Severity, Space

MP_WAKEUP_TYPE = 0x10
MAILBOX_SIZE = 0x1000

# ACPI 6.4 Table 5.44: 16 bytes of header, 2032 for the OS, 2048 for the firmware.
MULTIPROCESSOR_WAKEUP_MAILBOX = Layout(
    "MULTIPROCESSOR_WAKEUP_MAILBOX",
    ("Command", "H"),
    ("Reserved", "H"),
    ("ApicId", "I"),
    ("WakeupVector", "Q"),
    ("ReservedForOs", "2032s"),
    ("ReservedForFirmware", "2048s"),
)
# ACPI 6.4 Table 5.44 Command: 0 Noop, 1 Wakeup; 6.6 adds 2 Test (edk2 Acpi66.h
# EFI_ACPI_6_6_MULTIPROCESSOR_WAKEUP_MAILBOX_COMMAND_TEST; Linux arch/x86/kernel/acpi/madt_wakeup.c
# uses it to hand a CPU back to the firmware).
COMMANDS = {0: "Noop", 1: "Wakeup", 2: "Test"}


def _used(raw: bytes) -> str:
    n = len(raw) - raw.count(0)
    return f"{len(raw)} bytes, all zero" if n == 0 else f"{len(raw)} bytes, {n} non-zero"


def mailbox_node(mem: Memory, address: int) -> Node:
    """The mailbox at `address`, read through `mem`; a node with a problem when it is not readable."""
    node = Node("mp-wakeup-mailbox", f"Multiprocessor Wakeup Mailbox at 0x{address:x}")
    try:
        raw = mem.read(address, MAILBOX_SIZE)
    except Unreadable as e:
        node.problem(None, f"mailbox at 0x{address:x} is not readable: {e}")
        return node
    node.space = Space(f"mailbox@0x{address:x}", raw, address)
    node.size = MAILBOX_SIZE
    st = MULTIPROCESSOR_WAKEUP_MAILBOX.parse(raw)
    node.add("Command", st.Command, 0, 2, f"{st.Command} ({COMMANDS.get(st.Command, 'reserved')})")
    node.add("Reserved", st.Reserved, 2, 2)
    node.add("ApicId", st.ApicId, 4, 4)
    node.add("WakeupVector", st.WakeupVector, 8, 8, f"0x{st.WakeupVector:x}")
    node.add("ReservedForOs", st.ReservedForOs, 16, 2032, _used(st.ReservedForOs))
    node.add("ReservedForFirmware", st.ReservedForFirmware, 2048, 2048, _used(st.ReservedForFirmware))
    if st.Command not in COMMANDS:
        node.warn(0, f"Command {st.Command} is reserved (ACPI 6.4 Table 5.44: 0 Noop, 1 Wakeup; 6.6: 2 Test)")
    state = ("no request pending: the APs wait for the OS" if st.Command == 0 else
             f"a request is pending: CPU with APIC ID {st.ApicId} to 0x{st.WakeupVector:x}" if st.Command == 1 else
             "a request is pending")
    node.title += f": Command {COMMANDS.get(st.Command, st.Command)}, {state}"
    return node


def follow_mp_wakeup(madt: Node, mem: Memory) -> list[Node]:
    """For each Multiprocessor Wakeup entry of a decoded MADT: its mailbox, appended under the entry.
    ACPI 6.4 §5.2.12.19: MailBoxAddress "must be in ACPINvs" and "4K bytes aligned"."""
    out = []
    for entry in madt.children:
        if entry.get("Type") != MP_WAKEUP_TYPE or entry.get("MailBoxAddress") is None:
            continue
        address = entry.get("MailBoxAddress")
        where = entry.field("MailBoxAddress").offset
        if address == 0:
            entry.problem(where, "MailBoxAddress is 0: no mailbox")
            continue
        if address % MAILBOX_SIZE:
            entry.problem(where, f"MailBoxAddress 0x{address:x} is not 4 KiB aligned (ACPI 6.4 §5.2.12.19)",
                          Severity.WARNING)
        mailbox = mailbox_node(mem, address)
        if mailbox.space is None:
            entry.problem(where, mailbox.problems[0].message)
        out.append(entry.append(mailbox))
    return out


__all__ = ["MULTIPROCESSOR_WAKEUP_MAILBOX", "mailbox_node", "follow_mp_wakeup", "COMMANDS"]
