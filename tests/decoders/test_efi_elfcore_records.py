"""Every member of the EFI table and ELF core note records at its spec offset: each record is packed
here by hand, one distinct value per member, from the C declarations (UEFI 2.10 §4.3 EFI_SYSTEM_TABLE,
§4.6 EFI_CONFIGURATION_TABLE, §9.1 EFI_LOADED_IMAGE_PROTOCOL, with the alignment rules of §2.3.1/§2.3.4;
QEMU target/i386/arch_dump.c QEMUCPUState, x86_64_elf_prstatus and x86_elf_prstatus; the ELF gABI
note format), so a member declared out of order, at the wrong width or with the wrong padding shows
up as a wrong value or offset."""
from __future__ import annotations

import struct
import uuid
import zlib

import pytest

from decoders.efi.tables import config_tables, decode_loaded_image, decode_system_table
from decoders.elfcore import SEGMENT_NAMES, X64_REG_NAMES, decode_notes
from decoders.memory import BytesMemory
from tests.decoders.test_elfcore_cpus import note
from tests.decoders.wire import efi_guid

BASE = 0x7F000000
ACPI20 = uuid.UUID("8868e871-e4f1-11d3-bc22-0080c73c8881")  # UEFI 2.10 §4.6 EFI_ACPI_20_TABLE_GUID
HOB_LIST = uuid.UUID("7739f24c-93d7-11d4-9a3a-0090273fc14d")  # PI vol. 3 HOB_LIST_GUID
SYSTEM_TABLE_POINTERS = ("ConsoleInHandle", "ConIn", "ConsoleOutHandle", "ConOut", "StandardErrorHandle",
                         "StdErr", "RuntimeServices", "BootServices")


def system_table(width: int, config_at: int, vendor_at: int) -> tuple[bytes, list[tuple[str, int, int, int]]]:
    """EFI_SYSTEM_TABLE with `width`-byte pointers, and its members as (name, value, offset, size):
    EFI_TABLE_HEADER (Signature[8], Revision, HeaderSize, CRC32, Reserved: 24 bytes), CHAR16
    *FirmwareVendor, UINT32 FirmwareRevision (then 4 bytes of padding on X64, so the next pointer is
    8-aligned), ConsoleInHandle, ConIn, ConsoleOutHandle, ConOut, StandardErrorHandle, StdErr,
    RuntimeServices, BootServices, UINTN NumberOfTableEntries, ConfigurationTable."""
    p = "Q" if width == 8 else "I"
    header_size = 120 if width == 8 else 72
    pointers = [0x11110000 + i for i in range(len(SYSTEM_TABLE_POINTERS))]
    revision = (2 << 16) | 70
    body = (struct.pack(f"<{p}I", vendor_at, 0x00010203) + bytes(width - 4)
            + struct.pack(f"<{len(pointers)}{p}", *pointers) + struct.pack(f"<{p}{p}", 2, config_at))
    head = struct.pack("<8sIIII", b"IBI SYST", revision, header_size, 0, 0x55AA)
    crc = zlib.crc32(head + body)
    raw = struct.pack("<8sIIII", b"IBI SYST", revision, header_size, crc, 0x55AA) + body
    assert len(raw) == header_size
    after_revision = 24 + width + 4 + (width - 4)
    members = [("Hdr.Signature", b"IBI SYST", 0, 8), ("Hdr.Revision", revision, 8, 4),
               ("Hdr.HeaderSize", header_size, 12, 4), ("Hdr.CRC32", crc, 16, 4), ("Hdr.Reserved", 0x55AA, 20, 4),
               ("FirmwareVendor", vendor_at, 24, width), ("FirmwareRevision", 0x00010203, 24 + width, 4)]
    members += [(name, value, after_revision + i * width, width)
                for i, (name, value) in enumerate(zip(SYSTEM_TABLE_POINTERS, pointers))]
    members += [("NumberOfTableEntries", 2, header_size - 2 * width, width),
                ("ConfigurationTable", config_at, header_size - width, width)]
    return raw, members


@pytest.mark.parametrize("width", [8, 4])
def test_system_table_members_at_their_offsets_for_both_pointer_widths(width):
    config_at, vendor_at = BASE + 0x200, BASE + 0x300
    raw, members = system_table(width, config_at, vendor_at)
    p = "Q" if width == 8 else "I"
    # EFI_CONFIGURATION_TABLE: EFI_GUID VendorGuid, VOID *VendorTable (20 bytes on IA32, 24 on X64)
    config = efi_guid(ACPI20) + struct.pack(f"<{p}", 0x7FB7E014) + efi_guid(HOB_LIST) + struct.pack(f"<{p}", 0x7E000000)
    vendor = "EDK II".encode("utf-16-le") + b"\0\0"
    image = raw.ljust(0x200, b"\0") + config.ljust(0x100, b"\0") + vendor
    node = decode_system_table(BytesMemory(image, BASE), BASE)
    assert not node.problems
    assert [(f.name, f.value, f.offset, f.size) for f in node.fields[:len(members)]] == members
    assert node.get("PointerSize") == width and node.get("FirmwareVendorString") == "EDK II"
    assert node.field("Hdr.CRC32").display.endswith("(valid)")
    assert config_tables(node) == [(ACPI20, 0x7FB7E014), (HOB_LIST, 0x7E000000)]
    second = node.children[1]
    assert (second.offset, second.size) == (16 + width, 16 + width)
    assert [(f.name, f.offset, f.size) for f in second.fields] == [("VendorGuid", 16 + width, 16),
                                                                   ("VendorTable", 32 + width, width)]


@pytest.mark.parametrize("width", [8, 4])
def test_loaded_image_members_at_their_offsets_for_both_pointer_widths(width):
    """EFI_LOADED_IMAGE_PROTOCOL: UINT32 Revision, ParentHandle, SystemTable, DeviceHandle, FilePath,
    Reserved, UINT32 LoadOptionsSize, LoadOptions, ImageBase, UINT64 ImageSize (8-aligned on IA32
    too), EFI_MEMORY_TYPE ImageCodeType and ImageDataType, Unload."""
    p, pad = ("Q", "4x") if width == 8 else ("I", "")
    values = dict(Revision=0x1000, ParentHandle=0x2001, SystemTable=0x2002, DeviceHandle=0x2003, FilePath=0,
                  Reserved=0x2005, LoadOptionsSize=0x66, LoadOptions=0x2007, ImageBase=0x7E800000,
                  ImageSize=0x123456789, ImageCodeType=3, ImageDataType=4, Unload=0x200B)
    raw = struct.pack(f"<I{pad}{p}{p}{p}{p}{p}I{pad}{p}{p}", *list(values.values())[:9])
    raw += bytes(-len(raw) % 8) + struct.pack(f"<QII{p}", *list(values.values())[9:])
    offsets = ([0, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 84, 88] if width == 8
               else [0, 4, 8, 12, 16, 20, 24, 28, 32, 40, 48, 52, 56])
    node = decode_loaded_image(BytesMemory(raw, BASE), BASE, width)
    assert [(f.name, f.value, f.offset) for f in node.fields[:13]] == list(zip(values, values.values(), offsets))
    assert node.field("ImageSize").size == 8 and node.field("Unload").size == width


def qemu_cpu_state() -> tuple[bytes, dict]:
    """QEMUCPUState v1 with QEMU 7.x's kernel_gs_base: UINT32 version, size; UINT64 rax..r15, rip,
    rflags; 10 x QEMUCPUSegment {UINT32 selector, limit, flags, pad; UINT64 base} (cs, ds, es, fs,
    gs, ss, ldt, tr, gdt, idt); UINT64 cr[5]; UINT64 kernel_gs_base. Every value distinct."""
    gp = {n: 0x0100000000000000 * (i + 1) + i for i, n in enumerate(
        ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp", "r8", "r9", "r10", "r11", "r12", "r13",
         "r14", "r15", "rip", "rflags"))}
    segments = {n: (0x10 + i, 0x1000 + i, 0x20000 + i, 0x3000 + i, 0x40000000 + i) for i, n in enumerate(SEGMENT_NAMES)}
    cr = [0xC0, 0xC1, 0xC2, 0xC3, 0xC4]
    raw = struct.pack("<II", 1, 440) + struct.pack("<18Q", *gp.values())
    raw += b"".join(struct.pack("<IIIIQ", *s) for s in segments.values())
    raw += struct.pack("<5QQ", *cr, 0xFEEDFACE)
    assert len(raw) == 440
    return raw, dict(gp=gp, segments=segments, cr=cr, kernel_gs_base=0xFEEDFACE)


def test_qemu_cpu_state_and_x86_64_prstatus_members_are_read_in_order():
    state, want = qemu_cpu_state()
    # x86_64_elf_prstatus: pad1[32], UINT32 pid, pad2[76], 27 x UINT64 user_regs, pad3[8]; the
    # padding is filled so a misplaced member reads it
    regs = [0x5000 + i for i in range(27)]
    prstatus = b"\xEE" * 32 + struct.pack("<I", 4242) + b"\xEE" * 76 + struct.pack("<27Q", *regs) + b"\xEE" * 8
    data = note(b"CORE", 1, prstatus) + note(b"QEMU", 0, state)
    cpus, problems = decode_notes(data, 0x1000)
    assert not problems and len(cpus) == 1
    cpu = cpus[0]
    assert cpu.registers == want["gp"]
    assert {n: (s.selector, s.limit, s.flags, s.base) for n, s in cpu.segments.items()} == \
        {n: (sel, limit, flags, base) for n, (sel, limit, flags, _pad, base) in want["segments"].items()}
    assert cpu.cr == want["cr"] and cpu.kernel_gs_base == want["kernel_gs_base"]
    assert (cpu.version, cpu.size) == (1, 440)
    # the descriptors' file offsets: 12-byte header, then "CORE\0"/"QEMU\0" padded to 8
    assert (cpu.prstatus_offset, cpu.qemu_note_offset) == (0x1000 + 20, 0x1000 + 20 + 336 + 20)
    assert cpu.prstatus_layout == "x86_64" and cpu.pid == 4242
    assert cpu.prstatus == dict(zip(X64_REG_NAMES, regs))


def test_i386_prstatus_members_are_read_around_their_padding():
    """x86_elf_prstatus: pad1[24], UINT32 pid, pad2[44], x86_user_regs_struct {UINT32 ebx, ecx,
    edx, esi, edi, ebp, eax; UINT16 ds, __ds, es, __es, fs, __fs, gs, __gs; UINT32 orig_eax, eip;
    UINT16 cs, __cs; UINT32 eflags, esp; UINT16 ss, __ss}, pad3[4]: 144 bytes."""
    regs = struct.pack("<7I", *range(0xA1, 0xA8)) + struct.pack("<8H", 0xD5, 0xFFFF, 0xE5, 0xFFFF, 0xF5, 0xFFFF,
                                                                 0x65, 0xFFFF)
    regs += struct.pack("<IIHHIIHH", 0xB1, 0xB2, 0xC5, 0xFFFF, 0x246, 0xB4, 0x55, 0xFFFF)
    prstatus = b"\xEE" * 24 + struct.pack("<I", 7) + b"\xEE" * 44 + regs + b"\xEE" * 4
    assert len(prstatus) == 144
    cpus, problems = decode_notes(note(b"CORE", 1, prstatus), 0)
    cpu = cpus[0]
    assert cpu.prstatus_layout == "i386" and cpu.pid == 7
    assert cpu.prstatus == dict(ebx=0xA1, ecx=0xA2, edx=0xA3, esi=0xA4, edi=0xA5, ebp=0xA6, eax=0xA7,
                                ds=0xD5, es=0xE5, fs=0xF5, gs=0x65, orig_eax=0xB1, eip=0xB2, cs=0xC5,
                                eflags=0x246, esp=0xB4, ss=0x55)
    # without a QEMU note the general registers come from PRSTATUS
    assert cpu.registers == dict(rax=0xA7, rbx=0xA1, rcx=0xA2, rdx=0xA3, rsi=0xA4, rdi=0xA5, rsp=0xB4, rbp=0xA6,
                                 rip=0xB2, rflags=0x246)
    assert [p.message for p in problems if "no \"QEMU\" note" in p.message]
