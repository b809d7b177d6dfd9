"""Dump sources (inspector.dump) and locating firmware structures (inspector.locate) on ELF cores
and raw files built here with `struct` from the layouts in QEMU target/i386/arch_dump.c and the
ELF gABI, carrying real data: the td-shim TD HOB, the GCE CCEL table and log, a GCE TPM log, and
Debian's OVMF.fd for FFS names. Expected values come from those files and their anchor-tool
outputs (tpm2_eventlog YAML), never from our own output."""
from __future__ import annotations

import struct
import uuid
import zlib

import pytest

from decoders.memory import Unreadable
from inspector.dump import open_dump, dump_pages
from inspector.locate import dump_overview
from tests.realdata import bookworm, fixture

EM_386, EM_X86_64 = 3, 62
PT_LOAD, PT_NOTE = 1, 4


# -- builders (independent of the code under test: plain struct.pack) ---------------------------------
def note(name: bytes, ntype: int, desc: bytes) -> bytes:
    n = name + b"\0"
    pad = lambda b: b + b"\0" * (-len(b) % 4)  # noqa: E731
    return struct.pack("<III", len(n), len(desc), ntype) + pad(n) + pad(desc)


def qemu_cpu_state(cr3=0x1000, cr4=0x668, cr0=0x80010033, rip=0xF02FDC1, rax=0x1111, gdt_base=0xF5DC000,
                   size=440, kernel_gs_base=0x77) -> bytes:
    # struct QEMUCPUState (arch_dump.c): version, size, rax..r15 (16), rip, rflags, 10 segments
    # {selector, limit, flags, pad, base}, cr[5]; QEMU 7.x appends kernel_gs_base.
    gp = [rax, 2, 3, 4, 5, 6, 7, 8] + list(range(9, 17)) + [rip, 0x206]
    segs = b""
    for i, name in enumerate(("cs", "ds", "es", "fs", "gs", "ss", "ldt", "tr", "gdt", "idt")):
        base = gdt_base if name == "gdt" else 0x1000 * i
        segs += struct.pack("<IIIIQ", 0x38 if name == "cs" else 0x30, 0xFFFFFFFF, 0xAF9A00, 0, base)
    body = struct.pack("<II", 1, size) + struct.pack("<18Q", *gp) + segs + struct.pack("<5Q", cr0, 0, 0, cr3, cr4)
    return body + struct.pack("<Q", kernel_gs_base) if size >= 440 else body


def prstatus64(rip=0xF02FDC1, rax=0x1111, pid=0) -> bytes:
    # x86_64_elf_prstatus: pad1[32], pid, pad2[76], regs (27 x u64, rip is the 17th), pad3[8]
    regs = [0] * 27
    regs[10], regs[16], regs[18] = rax, rip, 0x206
    return b"\0" * 32 + struct.pack("<I", pid) + b"\0" * 76 + struct.pack("<27Q", *regs) + b"\0" * 8


def prstatus32(eip=0xFFFFFFF0, eax=0x600, pid=0) -> bytes:
    # x86_elf_prstatus: pad1[24], pid, pad2[44], regs {7 x u32, 8 x u16, orig_eax, eip, cs, __cs,
    # eflags, esp, ss, __ss}, pad3[4]
    regs = struct.pack("<7I", 1, 2, 3, 4, 5, 6, eax) + struct.pack("<8H", 0x30, 0, 0x30, 0, 0x30, 0, 0x30, 0)
    regs += struct.pack("<IIHHIIHH", 0, eip, 0x10, 0, 0x2, 0x7000, 0x18, 0)
    return b"\0" * 24 + struct.pack("<I", pid) + b"\0" * 44 + regs + b"\0" * 4


def build_elf(loads: list[tuple[int, bytes]], notes: bytes = b"", cls: int = 64, machine: int = EM_X86_64,
              phnum: int | None = None) -> bytes:
    """An ET_CORE like QEMU's: ELF header, program headers (PT_NOTE first), notes, segment data."""
    ehsize, phsize = (64, 56) if cls == 64 else (52, 32)
    nph = len(loads) + (1 if notes else 0)
    off = ehsize + nph * phsize
    phdrs, blobs = [], []
    if notes:
        phdrs.append((PT_NOTE, off, 0, len(notes)))
        blobs.append(notes)
        off += len(notes)
    for paddr, data in loads:
        phdrs.append((PT_LOAD, off, paddr, len(data)))
        blobs.append(data)
        off += len(data)
    ident = b"\x7fELF" + bytes([2 if cls == 64 else 1, 1, 1]) + b"\0" * 9
    n = nph if phnum is None else phnum
    if cls == 64:
        hdr = ident + struct.pack("<HHIQQQIHHHHHH", 4, machine, 1, 0, ehsize, 0, 0, ehsize, phsize, n, 0, 0, 0)
        ph = b"".join(struct.pack("<IIQQQQQQ", t, 0, o, p, p, s, s, 0) for t, o, p, s in phdrs)
    else:
        hdr = ident + struct.pack("<HHIIIIIHHHHHH", 4, machine, 1, 0, ehsize, 0, 0, ehsize, phsize, n, 0, 0, 0)
        ph = b"".join(struct.pack("<IIIIIIII", t, o, p, p, s, s, 0, 0) for t, o, p, s in phdrs)
    return hdr + ph + b"".join(blobs)


def write(tmp_path, data: bytes, name="core.elf"):
    p = tmp_path / name
    p.write_bytes(data)
    return p


PATTERN = bytes(range(256)) * 32   # 8 KiB


# -- ELF cores ---------------------------------------------------------------------------------------
def test_elf64_core_gives_memory_and_qemu_cpu_state(tmp_path):
    notes = note(b"CORE", 1, prstatus64(pid=0)) + note(b"QEMU", 0, qemu_cpu_state())
    p = write(tmp_path, build_elf([(0, PATTERN), (0x2000, b"\xAA" * 0x1000), (0x100000, PATTERN)], notes))
    with open_dump(p) as d:
        assert d.kind == "elf64" and d.machine == EM_X86_64
        assert not [x for x in d.problems if x.severity != "info"]
        cpu = d.cpus[0]
        assert (cpu.cr0, cpu.cr3, cpu.cr4) == (0x80010033, 0x1000, 0x668)
        assert cpu.rip == 0xF02FDC1 and cpu.registers["rax"] == 0x1111 and cpu.registers["rflags"] == 0x206
        assert cpu.segments["gdt"].base == 0xF5DC000 and cpu.segments["cs"].selector == 0x38
        assert cpu.kernel_gs_base == 0x77 and cpu.version == 1 and cpu.size == 440
        assert cpu.prstatus_layout == "x86_64" and cpu.prstatus["rip"] == 0xF02FDC1 and cpu.prstatus["rax"] == 0x1111
        assert d.memory.read(0x10, 4) == PATTERN[0x10:0x14]
        # a read spanning two adjacent PT_LOADs
        assert d.memory.read(0x1FFE, 4) == PATTERN[-2:] + b"\xAA\xAA"
        assert d.memory.read(0x100000 + 0x1FFC, 4) == PATTERN[-4:]
        with pytest.raises(Unreadable):
            d.memory.read(0x3000, 1)          # the hole between the segments
        with pytest.raises(Unreadable):
            d.memory.read(0x100000 + 0x1FFE, 4)  # past the last segment
        assert [(s.paddr, s.filesz) for s in d.segments] == [(0, 0x2000), (0x2000, 0x1000), (0x100000, 0x2000)]
        node = d.node()
        assert node.kind == "dump" and next(node.find("cpu")).get("Cr3") == 0x1000


def test_elf32_core_reads_i386_prstatus_and_qemu_note(tmp_path):
    # QEMU writes ELF32/EM_386 before long mode (target/i386/arch_dump.c cpu_get_dump_info), with Elf32
    # note headers.
    state = qemu_cpu_state(cr0=0x60000010, cr3=0, cr4=0, size=432)
    notes = note(b"CORE", 1, prstatus32(eip=0xFFF0, eax=0x600)) + note(b"QEMU", 0, state)
    p = write(tmp_path, build_elf([(0, PATTERN)], notes, cls=32, machine=EM_386))
    with open_dump(p) as d:
        assert d.kind == "elf32" and d.machine == EM_386
        cpu = d.cpus[0]
        assert cpu.prstatus_layout == "i386" and cpu.prstatus["eip"] == 0xFFF0 and cpu.prstatus["eax"] == 0x600
        assert cpu.prstatus["cs"] == 0x10 and cpu.prstatus["esp"] == 0x7000
        assert cpu.cr0 == 0x60000010 and cpu.kernel_gs_base is None
        assert d.memory.read(0x100, 2) == PATTERN[0x100:0x102]
        r = dump_pages(d)
        assert any("PG clear" in x.message for x in r.problems)


def test_prstatus_alone_gives_registers_and_no_cr3(tmp_path):
    p = write(tmp_path, build_elf([(0, PATTERN)], note(b"CORE", 1, prstatus64(rip=0x1234))))
    with open_dump(p) as d:
        assert d.cpus[0].rip == 0x1234 and d.cpus[0].cr3 is None
        assert any("QEMU" in x.message for x in d.problems)
        r = dump_pages(d)
        assert len(r.mappings) == 0 and "no CR3" in r.problems[0].message


def test_truncated_dump_reports_missing_bytes_and_keeps_the_rest(tmp_path):
    data = build_elf([(0, PATTERN), (0x100000, PATTERN)], note(b"QEMU", 0, qemu_cpu_state()))
    p = write(tmp_path, data[:-0x1800])
    with open_dump(p) as d:
        msgs = [x.message for x in d.problems]
        assert any("truncated" in m and "0x1800 bytes missing" in m for m in msgs)
        assert d.memory.read(0x100000, 0x800) == PATTERN[:0x800]
        with pytest.raises(Unreadable):
            d.memory.read(0x100000 + 0x800, 1)
        assert d.cpus[0].cr3 == 0x1000


def test_lying_note_sizes_are_located_problems(tmp_path):
    good = note(b"QEMU", 0, qemu_cpu_state())
    liar = struct.pack("<III", 5, 0x7FFFFFF0, 0) + b"QEMU\0\0\0\0"
    data = build_elf([(0, PATTERN)], good + liar)
    p = write(tmp_path, data)
    with open_dump(p) as d:
        bad = [x for x in d.problems if "runs past the end of its PT_NOTE" in x.message]
        assert bad and bad[0].offset == data.index(liar)
        assert len(d.cpus) == 1 and d.cpus[0].cr3 == 0x1000
    # a QEMU note whose own size field lies, and one too short for QEMUCPUState
    lie = bytearray(qemu_cpu_state())
    lie[4:8] = struct.pack("<I", 100000)
    p = write(tmp_path, build_elf([(0, PATTERN)], note(b"QEMU", 0, bytes(lie)) + note(b"QEMU", 0, b"\1\0\0\0" * 8)))
    with open_dump(p) as d:
        msgs = [x.message for x in d.problems]
        assert any("size field 100000" in m for m in msgs)
        assert any("QEMUCPUState v1 needs 432" in m for m in msgs)
        assert d.cpus[0].cr3 == 0x1000 and d.cpus[1].cr3 is None


def test_absurd_program_header_count_is_bounded(tmp_path):
    p = write(tmp_path, build_elf([(0, PATTERN)], note(b"QEMU", 0, qemu_cpu_state()), phnum=0xFFFE))
    with open_dump(p) as d:
        assert any("past the end of the file" in x.message or "more than" in x.message for x in d.problems)
        assert d.memory.read(0, 4) == PATTERN[:4]


def test_garbage_and_empty_files_do_not_raise(tmp_path):
    with open_dump(write(tmp_path, b"", "empty")) as d:
        assert d.problems and not d.segments
    with open_dump(write(tmp_path, b"\x7fELF\x02\x01\x01" + b"\xff" * 40, "short")) as d:
        assert d.problems and d.kind == "elf64"


# -- raw files and the flash image ---------------------------------------------------------------------
def test_raw_pmemsave_file_at_base(tmp_path):
    p = write(tmp_path, PATTERN, "ram.bin")
    with open_dump(p, base=0x100000) as d:
        assert d.kind == "raw" and d.memory.read(0x100004, 4) == PATTERN[4:8]
        with pytest.raises(Unreadable):
            d.memory.read(0xFFFFF, 2)
    with open_dump(p) as d:   # not ELF, no base: raw at 0 with a warning
        assert d.memory.read(0, 4) == PATTERN[:4] and d.problems


def test_image_maps_the_flash_below_4gib_and_dump_bytes_win(tmp_path):
    fd = bookworm("OVMF.fd")
    flash = fd.read_bytes()
    with open_dump(write(tmp_path, PATTERN, "ram.bin"), base=0, image=fd) as d:
        assert d.memory.read((1 << 32) - 16, 16) == flash[-16:]
        assert d.memory.read((1 << 32) - len(flash), 4) == flash[:4]
    # with -bios, QEMU's ROM copy of the flash is a PT_LOAD: the dump's bytes are the ones read
    rom = b"\x5A" * 0x1000
    p = write(tmp_path, build_elf([(0, PATTERN), ((1 << 32) - 0x1000, rom)]))
    with open_dump(p, image=fd) as d:
        assert d.memory.read((1 << 32) - 16, 16) == rom[:16]
        assert d.memory.read((1 << 32) - len(flash), 4) == flash[:4]


# -- page tables from the note's CR3 --------------------------------------------------------------------
def test_dump_pages_walks_from_the_note_cr3(tmp_path):
    ram = bytearray(0x5000)
    struct.pack_into("<Q", ram, 0x1000, 0x2000 | 0x3)          # PML4[0] -> PDPT
    struct.pack_into("<Q", ram, 0x2000, 0x3000 | 0x3)          # PDPT[0] -> PD
    struct.pack_into("<Q", ram, 0x3000 + 8, 0x200000 | 0x83)   # PD[1]: 2 MiB at VA 0x200000
    struct.pack_into("<Q", ram, 0x3000 + 16, 0x4000 | 0x3)     # PD[2] -> PT
    struct.pack_into("<Q", ram, 0x4000 + 5 * 8, (1 << 63) | 0x9000 | 0x1)  # PT[5]: 4 KiB NX, read-only
    p = write(tmp_path, build_elf([(0, bytes(ram))], note(b"QEMU", 0, qemu_cpu_state(cr3=0x1000 | 0x5))))
    with open_dump(p) as d:
        r = dump_pages(d)
        leaves = sorted((m.va, m.pa, m.size, m.nx, m.writable) for m in r.mappings)
        assert leaves == [(0x200000, 0x200000, 0x200000, False, True), (0x405000, 0x9000, 0x1000, True, False)]
        assert not r.problems
        r = dump_pages(d, cr3=0x9000000)
        assert r.problems and "not readable" in r.problems[0].message


# -- locating firmware structures --------------------------------------------------------------------------
def acpi_table(sig: bytes, body: bytes, rev: int = 1) -> bytes:
    t = bytearray(sig + struct.pack("<IBB", 36 + len(body), rev, 0) + b"FWTEST" + b"TESTTBL " + struct.pack("<I", 1)
                  + b"TEST" + struct.pack("<I", 1) + body)
    t[9] = (-sum(t)) & 0xFF
    return bytes(t)


def rsdp(xsdt: int) -> bytes:
    r = bytearray(b"RSD PTR " + b"\0" + b"FWTEST" + bytes([2]) + struct.pack("<IIQ", 0, 36, xsdt) + b"\0" * 4)
    r[8] = (-sum(r[:20])) & 0xFF
    r[32] = (-sum(r)) & 0xFF
    return bytes(r)


def guid(s: str) -> bytes:
    return uuid.UUID(s).bytes_le


DXE_CORE = "d6a2cb7f-6a18-4e2f-b43b-9920a733700a"
ST_PTR, ST, VENDOR, CONFIG, HOB, RSDP_AT, XSDT, ACPI_T, DBG, DBG_ARR, DBG_ENT, LI, DP = (
    0x400000, 0x500000, 0x500100, 0x500200, 0x510000, 0x520000, 0x520100, 0x521000, 0x530000, 0x530100,
    0x530200, 0x530300, 0x530400)
LOG_AT = 0x600000


def firmware_ram(acpi_tables: list[bytes], config_extra: list[tuple[str, int]] = (), st_crc_ok=True,
                 ptr_crc_ok=True) -> bytearray:
    """8 MiB of RAM with DXE-time structures laid out as edk2 does (layouts from UefiSpec.h,
    DebugImageInfoTable.h, LoadedImage.h); the HOB list is the real td-shim TD HOB."""
    ram = bytearray(8 << 20)
    ptr = bytearray(b"IBI SYST" + struct.pack("<QI", ST, 0) + b"\0" * 4)
    struct.pack_into("<I", ptr, 16, zlib.crc32(ptr) ^ (0 if ptr_crc_ok else 1))
    ram[ST_PTR:ST_PTR + 24] = ptr
    ram[VENDOR:VENDOR + 14] = "EDK II".encode("utf-16-le") + b"\0\0"
    configs = [("7739f24c-93d7-11d4-9a3a-0090273fc14d", HOB), ("8868e871-e4f1-11d3-bc22-0080c73c8881", RSDP_AT),
               ("49152e77-1ada-4764-b7a2-7afefed95e8b", DBG), *config_extra]
    st = bytearray(b"IBI SYST" + struct.pack("<IIII", 0x20046, 120, 0, 0) + struct.pack("<QI", VENDOR, 0x10000)
                   + b"\0" * 4 + struct.pack("<8Q", *range(1, 9)) + struct.pack("<QQ", len(configs), CONFIG))
    struct.pack_into("<I", st, 16, zlib.crc32(st) ^ (0 if st_crc_ok else 1))
    ram[ST:ST + 120] = st
    for i, (g, a) in enumerate(configs):
        ram[CONFIG + 24 * i:CONFIG + 24 * i + 24] = guid(g) + struct.pack("<Q", a)
    hob = fixture("hob/td-shim/hob_buffer.bin").read_bytes()
    ram[HOB:HOB + len(hob)] = hob
    ram[RSDP_AT:RSDP_AT + 36] = rsdp(XSDT)
    addrs, at = [], ACPI_T
    for t in acpi_tables:
        ram[at:at + len(t)] = t
        addrs.append(at)
        at += (len(t) + 15) & ~15
    xsdt = acpi_table(b"XSDT", struct.pack(f"<{len(addrs)}Q", *addrs))
    ram[XSDT:XSDT + len(xsdt)] = xsdt
    # debug image info: header {UpdateStatus, TableSize, table}, a NULL slot (an unloaded image),
    # one EFI_DEBUG_IMAGE_INFO_NORMAL, its EFI_LOADED_IMAGE_PROTOCOL and FilePath Fv()/FvFile()/End
    ram[DBG:DBG + 16] = struct.pack("<IIQ", 2, 1, DBG_ARR)
    ram[DBG_ARR:DBG_ARR + 16] = struct.pack("<QQ", 0, DBG_ENT)
    ram[DBG_ENT:DBG_ENT + 24] = struct.pack("<IIQQ", 1, 0, LI, 0x1234)
    li = struct.pack("<IIQQQQQIIQQQIIQ", 0x1000, 0, 0, ST, 0, DP, 0, 0, 0, 0, 0xFEFB000, 0x22000, 3, 4, 0)
    ram[LI:LI + len(li)] = li
    dp = (struct.pack("<BBH", 4, 7, 20) + guid("7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1")
          + struct.pack("<BBH", 4, 6, 20) + guid(DXE_CORE) + struct.pack("<BBH", 0x7F, 0xFF, 4))
    ram[DP:DP + len(dp)] = dp
    return ram


def yaml_event_count(path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.startswith("- EventNum:"))


def test_locate_follows_the_system_table_to_hobs_acpi_cc_log_and_images(tmp_path):
    ccel = fixture("ccel/go-tdx-guest/ccel_table.dat").read_bytes()
    log = fixture("ccel/go-tdx-guest/ccel_data.DERIVED-first-18101-bytes.bin").read_bytes()
    laml, lasa = struct.unpack_from("<QQ", ccel, 40)
    assert (laml, lasa) == (0x40000, 0xBEDBF000)   # as the fixture README says
    # TDVF fills the rest of the log area with 0xFF (OvmfPkg/Tcg/TdTcg2Dxe: SetMem 0xFF)
    area = log + b"\xFF" * (laml - len(log))
    ram = firmware_ram([ccel])
    p = write(tmp_path, build_elf([(0, bytes(ram)), (lasa, area)], note(b"QEMU", 0, qemu_cpu_state())))
    with open_dump(p, image=bookworm("OVMF.fd")) as d:
        o = dump_overview(d)
    assert o.kind == "dump-overview" and o.get("SystemTablePointer") == ST_PTR and o.get("SystemTable") == ST
    st = next(o.find("efi-system-table"))
    assert st.get("FirmwareVendorString") == "EDK II" and not st.problems
    assert [c.get("VendorGuid") for c in st.children][:2] == [uuid.UUID("7739f24c-93d7-11d4-9a3a-0090273fc14d"),
                                                              uuid.UUID("8868e871-e4f1-11d3-bc22-0080c73c8881")]
    hob = next(o.find("hob-list"))
    # the fixture README: PHIT + 9 resource descriptors + END
    assert hob.get("HobCount") == 11 and not hob.problems
    acpi = next(o.find("acpi"))
    sigs = [c.bytes[:4] for c in acpi.children if c.kind == "acpi-table"]
    assert b"XSDT" in sigs and b"CCEL" in sigs
    log_node = next(n for n in o.children if n.kind == "event-log")
    assert log_node.get("Format") == "cc" and log_node.get("Address") == lasa
    ref = fixture("ccel/go-tdx-guest/ccel_data.DERIVED-first-18101-bytes.DERIVED-hdr-pcr0.bin.tpm2_eventlog-5.4.yaml")
    assert log_node.get("EventCount") == yaml_event_count(ref)
    images = next(o.find("efi-debug-image-info-table"))
    assert len(images.children) == 1
    img = images.children[0]
    assert img.get("ImageBase") == 0xFEFB000 and img.get("ImageSize") == 0x22000
    assert img.get("FileGuid") == uuid.UUID(DXE_CORE) and img.get("Name") == "DxeCore"


def test_tpm_log_found_by_scan_when_the_tpm2_lasa_area_is_empty(tmp_path):
    # As measured under QEMU: its TPM2 table (rev 4, CRB, LAML 0x10000) points at zeros; the log is in BS data.
    log = fixture("eventlog/tpm2-tools/event-gce-ubuntu-2104-log.bin").read_bytes()
    # Tpm2Acpi.h rev 4: Flags, ControlArea, StartMethod 7 (CRB), 12 bytes of parameters, LAML, LASA
    body = struct.pack("<IQI", 0, 0xFED40000, 7) + b"\0" * 12 + struct.pack("<IQ", 0x10000, 0x700000)
    tpm2 = acpi_table(b"TPM2", body, rev=4)
    ram = firmware_ram([tpm2])
    ram[LOG_AT:LOG_AT + len(log)] = log
    p = write(tmp_path, build_elf([(0, bytes(ram))], note(b"QEMU", 0, qemu_cpu_state())))
    with open_dump(p) as d:
        o = dump_overview(d)
    assert any("LASA area at 0x700000" in x.message and "empty" in x.message for x in o.problems)
    logs = [n for n in o.children if n.kind == "event-log"]
    assert len(logs) == 1 and logs[0].get("Address") == LOG_AT and logs[0].get("Format") == "tcg"
    ref = fixture("eventlog/tpm2-tools/event-gce-ubuntu-2104-log.bin.tpm2_eventlog-5.4.yaml")
    assert logs[0].get("EventCount") == yaml_event_count(ref)


def test_bad_crcs_and_missing_structures_are_reported_not_raised(tmp_path):
    ram = firmware_ram([], st_crc_ok=False, ptr_crc_ok=False)
    p = write(tmp_path, build_elf([(0, bytes(ram))]))
    with open_dump(p) as d:
        o = dump_overview(d)
    ptr = next(o.find("efi-system-table-pointer"))
    assert any("Crc32" in x.message for x in ptr.problems)
    st = next(o.find("efi-system-table"))
    assert any("CRC32" in x.message for x in st.problems)
    # RAM with nothing in it: notes that say where we looked
    p = write(tmp_path, build_elf([(0, bytes(1 << 20))]), "empty.elf")
    with open_dump(p) as d:
        o = dump_overview(d)
    assert o.kind == "dump-overview" and any("EFI_SYSTEM_TABLE_POINTER" in x.message for x in o.problems)
    assert any("0xe0000" in x.message for x in o.problems)


def test_hostile_pointers_stay_bounded(tmp_path):
    ram = firmware_ram([])
    # the debug table claims 10^9 images; its one entry is gone, so the walk runs over whatever
    # follows the array: bounded by the slot limit, every bad entry a problem
    struct.pack_into("<Q", ram, DBG, (10 ** 9) << 32 | 0)
    struct.pack_into("<Q", ram, DBG_ARR + 8, 0)
    p = write(tmp_path, build_elf([(0, bytes(ram))]))
    with open_dump(p) as d:
        o = dump_overview(d)
    dbg = next(o.find("efi-debug-image-info-table"))
    assert any("10" in x.message and "8192" in x.message for x in dbg.problems)
    assert len(dbg.children) <= 8192 and all(c.problems for c in dbg.children)


def test_locate_over_any_memory_names_images_and_caches_the_log_address():
    """The one locate route over a plain Memory (what a live stop hands it): same structures as the
    dump overview, images named through `names`, and a found log re-read from the cache."""
    from decoders.memory import BytesMemory
    from inspector.locate import locate

    log = fixture("eventlog/tpm2-tools/event-gce-ubuntu-2104-log.bin").read_bytes()
    body = struct.pack("<IQI", 0, 0xFED40000, 7) + b"\0" * 12 + struct.pack("<IQ", 0x10000, 0x700000)
    ram = firmware_ram([acpi_table(b"TPM2", body, rev=4)])
    ram[LOG_AT:LOG_AT + len(log)] = log
    mem = BytesMemory(bytes(ram), 0)
    cache: dict[str, int] = {}
    o = locate(mem, [(0, len(ram))], {uuid.UUID(DXE_CORE): "MyDxeCore"}, logs=cache)
    assert o.get("SystemTablePointer") == ST_PTR and o.get("SystemTable") == ST and o.get("Rsdp") == RSDP_AT
    assert [c.kind for c in o.children] == ["efi-system-table-pointer", "efi-system-table", "hob-list", "acpi",
                                            "event-log", "efi-debug-image-info-table"]
    img = next(o.find("efi-debug-image-info-table")).children[0]
    assert img.get("Name") == "MyDxeCore" and img.title == "MyDxeCore at 0xfefb000 +0x22000"
    assert cache == {"tcg": LOG_AT}
    # A later stop: the RAM scan is not repeated, the log is re-read where it was found.
    ram[LOG_AT - 0x1000:LOG_AT] = b"\xEE" * 0x1000
    again = locate(BytesMemory(bytes(ram), 0), [(0, len(ram))], logs=cache)
    logs = [c for c in again.children if c.kind == "event-log"]
    assert len(logs) == 1 and logs[0].get("Address") == LOG_AT and "earlier stop" in logs[0].title
    assert "TPM event log" in again.get("Found")


def test_elfcore_notes_decode_from_bytes_without_a_file():
    """decoders.elfcore on a PT_NOTE's bytes alone: two CPUs paired in order (dump/dump.c writes all
    PRSTATUS notes, then all QEMU notes), offsets in the file, a lying note a located problem."""
    from decoders.elfcore import decode_notes

    notes = (note(b"CORE", 1, prstatus64(rip=0x1000, pid=0)) + note(b"CORE", 1, prstatus64(rip=0x2000, pid=1))
             + note(b"QEMU", 0, qemu_cpu_state(rip=0x1000, cr3=0xA000))
             + note(b"QEMU", 0, qemu_cpu_state(rip=0x2000, cr3=0xB000)))
    cpus, problems = decode_notes(notes, 0x300, first_index=4)
    assert not problems
    assert [(c.index, c.rip, c.cr3, c.pid) for c in cpus] == [(4, 0x1000, 0xA000, 0), (5, 0x2000, 0xB000, 1)]
    # 12-byte header + "CORE\0" padded to 8: the first descriptor is at file offset 0x300 + 20
    assert cpus[0].prstatus_offset == 0x300 + 20
    lying = struct.pack("<III", 5, 0x10000, 1) + b"CORE\0\0\0\0" + bytes(16)
    cpus, problems = decode_notes(lying, 0x40)
    assert cpus == [] and problems[0].offset == 0x40 and "runs past the end" in problems[0].message
