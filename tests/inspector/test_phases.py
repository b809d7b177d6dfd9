"""The boot-phase model without QEMU: handoffs computed from Debian's real images (expected figures
measured on the same files: their SEC and PEI core PE headers), mode detection and classification
from fake registers, the SEC->PEI hand-off decoders on built structures, a Session over a fake
Target (dead target, breakpoint handoff), and the CLI argument split.
"""
from __future__ import annotations

import argparse
import struct
import uuid

import pytest

from decoders.memory import BytesMemory
from inspector.image import load_image
from inspector.live import phases
from inspector.live.disasm import disassemble
from decoders.efi import pei
from decoders.efi.pei import decode_ppi_list, decode_sec_pei_handoff
from inspector.live.phases import classify, compute_handoffs
from inspector.live.session_api import Phase
from inspector.live.script import add_live_arguments, run_attach, run_qemu, split_qemu_args
from inspector.live.session import Session
from inspector.live.target import (CR0_PE, DESC_B, DESC_L, EFER_LMA, Registers, Segment, StopEvent, Target,
                                   TargetDead)
from tests.realdata import bookworm, firmware, trixie

FOUR_GIB = 1 << 32
TEMP_RAM_SUPPORT_PPI = uuid.UUID("dbe23aa9-a345-4b97-85b6-b226f1617389")   # gEfiTemporaryRamSupportPpiGuid


@pytest.fixture(scope="module")
def code4m():
    return load_image(bookworm("OVMF_CODE_4M.fd"))


@pytest.fixture(scope="module")
def ovmf():
    return load_image(bookworm("OVMF.fd"))


# ---- handoffs from the real images ---------------------------------------------------------------

def test_sec_and_pei_core_entries_of_bookworm_code_4m_match_facts(code4m):
    h = compute_handoffs(code4m.root, len(code4m.data))
    # SEC's PE at 0xfffcc094 (flash base + its offset) + AddressOfEntryPoint 0x2af0 = 0xfffceb84; the PEI
    # core's PE header: ImageBase 0x820140 + AddressOfEntryPoint -> entry 0x82584a.
    assert h.sec_entry == 0xFFFCEB84
    assert h.sec_machine == 0x14C                    # IA32 SEC: the Ia32X64 build (OvmfPkgIa32X64.fdf)
    assert h.pei_core_entry == 0x82584A
    assert h.peifv_ram_base == 0x820000              # PcdOvmfPeiMemFvBase: 0x020000 in [FD.MEMFD] at 0x800000
    assert h.bfv_base == 0xFFFCC000                  # EBP at SEC entry: SECFV's base
    assert h.phases() == ["reset", "sec", "pei-core", "dxe-ipl", "dxe-core", "bds"]


def test_pei_core_entry_of_bookworm_ovmf_fd_is_0x825a8a(ovmf):
    h = compute_handoffs(ovmf.root, len(ovmf.data))
    assert h.pei_core_entry == 0x825A8A
    assert h.sec_machine == 0x8664                   # OVMF.fd is the X64 build (OvmfPkgX64.fdf)
    assert h.peifv_ram_base == 0x820000


def test_sec_entry_is_flash_offset_plus_entry_rva(code4m):
    # From the raw header bytes (PE/COFF: e_lfanew at 0x3C, AddressOfEntryPoint at optional header + 16):
    # 4 GiB - size + PE offset + AddressOfEntryPoint.
    h = compute_handoffs(code4m.root, len(code4m.data))
    pe = h.modules["sec"].pe
    raw = code4m.data[pe.offset:pe.offset + 0x200]
    lfanew = int.from_bytes(raw[0x3C:0x40], "little")
    entry_rva = int.from_bytes(raw[lfanew + 24 + 16:lfanew + 24 + 20], "little")
    assert h.sec_entry == FOUR_GIB - len(code4m.data) + pe.offset + entry_rva


def test_loaded_modules_have_their_guids_and_dxe_core_is_not_relocated(ovmf):
    h = compute_handoffs(ovmf.root, len(ovmf.data))
    assert h.modules["dxe-ipl"].guid == phases.DXE_IPL_GUID
    assert h.modules["dxe-core"].guid == phases.DXE_CORE_GUID
    assert h.modules["dxe-core"].pe.get("ImageBase") == 0      # [FV.DXEFV] FvForceRebase = FALSE
    assert h.modules["bds"].name == "BdsDxe"
    assert h.dxefv.get("FvName") == phases.DXEFV_GUID


def test_trixie_image_gets_all_handoffs_from_its_own_layout():
    img = load_image(trixie("OVMF.fd"))
    h = compute_handoffs(img.root, len(img.data))
    assert h.phases() == ["reset", "sec", "pei-core", "dxe-ipl", "dxe-core", "bds"]
    assert h.peifv_ram_base == 0x820000              # [FD.MEMFD] 0x020000 in 2025.02 too
    pei = h.modules["pei-core"].pe
    assert h.pei_core_entry == pei.get("ImageBase") + pei.get("AddressOfEntryPoint")


def test_image_without_peifv_skips_pei_handoffs():
    # TDVF Config-B has no PEIFV (OvmfPkg/IntelTdx/IntelTdxX64.fdf): drop PEIFV from a real image's tree.
    img = load_image(bookworm("OVMF.fd"))
    for node in img.root.walk():
        node.children = [c for c in node.children if not (c.kind == "fv" and c.get("FvName") == phases.PEIFV_GUID)]
    h = compute_handoffs(img.root, len(img.data))
    assert h.pei_core_entry is None
    assert h.phases() == ["reset", "sec", "dxe-core", "bds"]
    assert any("PEI-less" in p for p in h.problems)


def test_config_b_handoffs_from_the_real_image_skip_pei():
    # Our build of OvmfPkg/IntelTdx/IntelTdxX64.dsc: no PEIFV, SEC is IntelTdx/Sec/SecMain.inf (its own
    # FILE_GUID), DxeCore and BdsDxe in the LZMA-compressed DXEFV. SEC's entry: its PE at file offset
    # 0x3cc094 (flash 0xfffcc094) + AddressOfEntryPoint 0xdaf0, as UEFIExtract reports them.
    img = load_image(firmware("inteltdx/OVMF.fd"))
    h = compute_handoffs(img.root, len(img.data))
    assert h.phases() == ["reset", "sec", "dxe-core", "bds"]
    assert h.sec_entry == 0xFFFD9B84 and h.sec_machine == 0x8664
    assert h.bfv_base == 0xFFFCC000                  # SECFV at 0x3cc000 (SECFV_OFFSET, 4 MiB layout)
    assert h.pei_core_entry is None and h.peifv_ram_base is None
    assert Phase.DXE_IPL not in h.modules
    assert h.modules["sec"].guid == uuid.UUID("69d96630-eb64-4b33-8491-13a5cf023dcf")
    assert h.modules["dxe-core"].entry_rva == 0x14A58 and h.dxefv.get("FvName") == phases.DXEFV_GUID
    assert h.modules["bds"].fv is h.dxefv
    assert h.problems == ["no PEI_CORE file: a PEI-less image (TDVF Config-B) or no PEIFV"]
    # The static ranges: the reset vector's file and SEC, both in flash; no XIP PEI modules.
    assert sorted(r[3] for r in h.ranges) == ["reset", "sec"]


def test_handoff_files_are_taken_from_their_own_volume_not_an_outer_one(ovmf):
    # The FV_IMAGE file of FVMAIN_COMPACT holds PEIFV and DXEFV: the modules' volume is the inner one.
    h = compute_handoffs(ovmf.root, len(ovmf.data))
    assert h.modules["pei-core"].fv.get("FvName") == phases.PEIFV_GUID
    assert h.modules["dxe-ipl"].fv is h.modules["pei-core"].fv
    assert h.peifv_size == h.modules["pei-core"].fv.size


def test_module_copy_found_by_its_pe_header(ovmf):
    m = compute_handoffs(ovmf.root, len(ovmf.data)).modules["dxe-core"]
    blob = bytes(0x1234) + bytes(m.pe.bytes) + bytes(64)
    assert m.find_copies(blob, 0x10000) == [0x10000 + 0x1234]
    assert m.find_copies(bytes(4096), 0) == []


# ---- modes, classification, disassembly ----------------------------------------------------------

def regs(cr0=0, efer=0, cs_flags=None, cs_base=None, cs=0xF000, rip=0xFFF0, **gpr) -> Registers:
    segs = {s: Segment(0) for s in ("es", "ss", "ds", "fs", "gs", "ldt", "tr")}
    segs["cs"] = Segment(cs, cs_base, 0xFFFF, cs_flags)
    base = {r: 0 for r in ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp")}
    base.update(gpr, rip=rip)
    return Registers(rip=rip, rflags=2, cr0=cr0, cr2=0, cr3=0, cr4=0, efer=efer, segments=segs, gpr=base)


def test_mode_real_at_reset_with_cs_base_ffff0000():
    r = regs(cs_base=0xFFFF0000, cs_flags=0x9B00)
    assert r.mode == "real"
    assert r.pc == 0xFFFFFFF0


def test_mode_prot32_long64_prot16_from_cr0_efer_and_cs_flags():
    assert regs(cr0=CR0_PE, cs_flags=DESC_B, cs_base=0, cs=0x10, rip=0xFFFCEB84).mode == "prot32"
    assert regs(cr0=CR0_PE | 1 << 31, efer=EFER_LMA, cs_flags=DESC_L, cs_base=0, cs=0x38).mode == "long64"
    assert regs(cr0=CR0_PE, cs_flags=0, cs_base=0).mode == "prot16"
    # Compatibility mode (LMA but CS.L clear) is 32-bit code.
    assert regs(cr0=CR0_PE | 1 << 31, efer=EFER_LMA, cs_flags=DESC_B, cs_base=0).mode == "prot32"


def test_classify_by_range_then_real_mode_then_last_handoff():
    ranges = [(0x820140, 0x826200, "PeiCore", "pei-core"), (0xFEA1000, 0xFEC0000, "DxeCore", "dxe-core")]
    assert classify(0x82584A, "prot32", ranges) == ("pei-core", "PeiCore")
    assert classify(0xFEB1F57, "long64", ranges) == ("dxe-core", "DxeCore")
    assert classify(0xFFFFFFF0, "real", ranges) == ("reset", None)
    assert classify(0x100000, "long64", ranges, "dxe-core") == ("dxe-core", None)
    assert classify(0x100000, "prot32", ranges) == ("unknown", None)


def test_reset_vector_bytes_disassemble_as_nop_nop_jmp_in_16_bit(code4m):
    # OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.asm: 0xFFFFFFF0 holds nop; nop; jmp near (90 90 e9 ...),
    # IP 0xFFF0 in CS F000 (Intel SDM vol. 3A 9.1.4).
    code = bytes(code4m.data[-16:])
    lines = disassemble(code, 0xFFFFFFF0, "real", count=3, ip=0xFFF0)
    assert [t.split()[0] for _, t in lines] == ["nop", "nop", "jmp"]
    assert [a for a, _ in lines][:2] == [0xFFFFFFF0, 0xFFFFFFF1]
    rel = int.from_bytes(code[3:5], "little", signed=True)
    assert lines[2][1] == f"jmp 0x{(0xFFF0 + 2 + 3 + rel) & 0xFFFF:x}"


# ---- SEC -> PEI hand-off decoders ---------------------------------------------------------------

# OvmfPkg/Sec/SecMain.c SecCoreStartupWithStack: TemporaryRamBase = top of the SEC stack (PcdOvmfSecPeiTempRamBase
# 0x810000 + PcdOvmfSecPeiTempRamSize 0x10000) - size; the PEI half first, the stack half after it.
TEMP_RAM, TEMP_SIZE, STACK, STACK_SIZE, PEIFV, PEIFV_SIZE = 0x810000, 0x10000, 0x818000, 0x8000, 0x820000, 0xE0000


def _handoff_blob(width: int, data_size: int | None = None) -> bytes:
    """EFI_SEC_PEI_HAND_OFF (MdePkg/Include/Pi/PiPeiCis.h) by hand: UINT16 DataSize, padding to a
    UINTN, then BootFirmwareVolumeBase/Size, TemporaryRamBase/Size, PeiTemporaryRamBase/Size,
    StackBase/Size, each a UINTN."""
    u = "I" if width == 4 else "Q"
    size = 2 + (width - 2) + 8 * width
    return struct.pack(f"<H{width - 2}x8{u}", data_size or size, PEIFV, PEIFV_SIZE, TEMP_RAM, TEMP_SIZE,
                       TEMP_RAM, TEMP_SIZE // 2, STACK, STACK_SIZE)


@pytest.mark.parametrize("width,size", [(4, 36), (8, 72)])
def test_sec_pei_handoff_layout_is_36_bytes_on_ia32_and_72_on_x64(width, size):
    blob = _handoff_blob(width)
    assert len(blob) == size
    node = decode_sec_pei_handoff(BytesMemory(blob, 0x81FE9C), 0x81FE9C, width)
    assert node.kind == "sec-pei-handoff"
    assert node.get("DataSize") == size
    assert not node.problems


@pytest.mark.parametrize("width", [4, 8])
def test_sec_pei_handoff_read_through_memory_gives_each_range_at_its_offset(width):
    """A hand-off built with struct.pack in guest memory, read through a Memory: temporary RAM and
    stack are where SecMain.c puts them, each field at its PiPeiCis.h offset."""
    at = 0x81FE00
    mem = BytesMemory(bytes(0x40) + _handoff_blob(width) + bytes(0x40), at - 0x40)
    node = decode_sec_pei_handoff(mem, at, width)
    values = {f.name: f.value for f in node.fields}
    assert (values["TemporaryRamBase"], values["TemporaryRamSize"]) == (TEMP_RAM, TEMP_SIZE)
    assert (values["StackBase"], values["StackSize"]) == (STACK, STACK_SIZE)
    assert (values["PeiTemporaryRamBase"], values["PeiTemporaryRamSize"]) == (TEMP_RAM, TEMP_SIZE // 2)
    assert (values["BootFirmwareVolumeBase"], values["BootFirmwareVolumeSize"]) == (PEIFV, PEIFV_SIZE)
    offsets = {f.name: f.offset for f in node.fields}
    assert offsets["TemporaryRamBase"] == 3 * width and offsets["StackBase"] == 7 * width
    assert node.address == at and node.size == 2 + (width - 2) + 8 * width
    assert "temp RAM 0x810000 +0x10000, stack 0x818000 +0x8000" in node.title


def test_sec_pei_handoff_with_wrong_datasize_warns_and_truncated_reports_problem():
    node = decode_sec_pei_handoff(BytesMemory(_handoff_blob(4, 72), 0x1000), 0x1000, 4)
    assert any("DataSize 72" in p.message for p in node.problems)
    short = decode_sec_pei_handoff(BytesMemory(_handoff_blob(4)[:20], 0x1000), 0x1000, 4)
    assert short.problems and "not readable" in short.problems[0].message


def _ppi(width: int, flags: int, guid: int, ppi: int) -> bytes:
    # EFI_PEI_PPI_DESCRIPTOR (PiPeiCis.h): UINTN Flags; EFI_GUID *Guid; VOID *Ppi.
    return struct.pack("<3I" if width == 4 else "<3Q", flags, guid, ppi)


def test_ppi_list_stops_at_terminate_and_names_guids():
    base = 0x1000
    guid_at = base + 0x100
    blob = bytearray(0x200)
    blob[0:12] = _ppi(4, 0x10, guid_at, 0x5000)
    blob[12:24] = _ppi(4, 0x80000010, guid_at, 0x6000)
    blob[24:36] = _ppi(4, 0x10, guid_at, 0x7000)       # after the end: not read
    blob[0x100:0x110] = TEMP_RAM_SUPPORT_PPI.bytes_le
    node = decode_ppi_list(BytesMemory(bytes(blob), base), base, 4)
    assert [d.get("Ppi") for d in node.children] == [0x5000, 0x6000]
    assert node.children[0].get("GuidValue") == TEMP_RAM_SUPPORT_PPI
    assert "gEfiTemporaryRamSupportPpiGuid" in node.children[0].title
    assert not node.problems


def test_ppi_list_without_terminate_is_bounded_with_a_problem():
    blob = _ppi(8, 0x10, 0xDEAD0000, 0) * 200
    node = decode_ppi_list(BytesMemory(blob, 0), 0, 8)
    assert len(node.children) == pei.MAX_PPIS
    assert any("TERMINATE_LIST" in p.message for p in node.problems)
    assert any("not readable" in p.message for p in node.children[0].problems)


# ---- Session over a fake target -----------------------------------------------------------------

class FakeTarget(Target):
    """Paused at reset; cont() jumps to the lowest breakpoint in 32-bit flat mode; can die."""

    def __init__(self, image_bytes: bytes):
        self.mem = BytesMemory(image_bytes, FOUR_GIB - len(image_bytes))
        self.r = regs(cs_base=0xFFFF0000, cs_flags=0x9B00)
        self.bps: set[int] = set()
        self.dead = False

    def _alive(self):
        if self.dead:
            raise TargetDead("connection closed")

    def read_registers(self, timeout=1.0):
        self._alive()
        return self.r

    def _read_physical(self, address, size, timeout):
        self._alive()
        return self.mem.read(address, size)

    def read_virtual(self, address, size, timeout=1.0):
        return self._read_physical(address, size, timeout)

    def set_breakpoint(self, address, timeout=1.0):
        self.bps.add(address)

    def remove_breakpoint(self, address, timeout=1.0):
        self.bps.discard(address)

    def set_watchpoint(self, address, size, kind="write", timeout=1.0):
        pass

    def remove_watchpoint(self, address, size, kind="write", timeout=1.0):
        pass

    def resume(self, timeout=1.0):
        pass

    def wait_stop(self, timeout=1.0):
        return self.cont(timeout)

    def cont(self, timeout=1.0):
        self._alive()
        self.generation += 1
        pc = min(self.bps)
        self.r = regs(cr0=CR0_PE, cs_flags=DESC_B, cs_base=0, cs=0x10, rip=pc, rbp=0xFFFCC000, rdi=0x5042)
        return StopEvent("breakpoint", 5)

    def step(self, timeout=1.0):
        self.generation += 1
        return StopEvent("step", 5)

    def interrupt(self, timeout=1.0):
        return StopEvent("interrupt", 2)

    def monitor(self, command, timeout=1.0):
        return ""

    @property
    def running(self):
        return False

    def close(self):
        pass

    def detach(self):
        pass


def test_session_starts_at_reset_and_next_handoff_reaches_sec(code4m):
    t = FakeTarget(bytes(code4m.data))
    s = Session(t, code4m)
    first = s.current()
    assert (first.phase, first.mode, first.linear_rip, first.reason) == ("reset", "real", 0xFFFFFFF0, "reset")
    assert first.disassembly[0] == (0xFFFFFFF0, "nop")
    assert first.tree.get("ResetVectorBytes") == bytes(code4m.data[-16:])
    sec = s.next_handoff(5)
    assert (sec.handoff, sec.phase, sec.mode, sec.linear_rip) == ("sec", "sec", "prot32", 0xFFFCEB84)
    assert sec.module == "SecMain"
    assert sec.tree.get("BootFirmwareVolumeBase") == 0xFFFCC000
    assert sec.registers["cs_base"] == 0 and sec.registers["rdi"] == 0x5042
    assert not t.bps                                   # the handoff breakpoint is removed again
    assert sec.to_json()["phase"] == "sec"


def test_session_reports_a_dead_target_as_a_stop_problem(code4m):
    t = FakeTarget(bytes(code4m.data))
    s = Session(t, code4m)
    s.current()
    t.dead = True
    stop = s.next_handoff(5)
    assert any("target died" in p for p in stop.problems)
    assert s.dead
    assert "target died" in s.step().problems[0]


def test_run_to_rejects_unknown_phase_and_reports_missing_one(code4m):
    s = Session(FakeTarget(bytes(code4m.data)), code4m)
    with pytest.raises(ValueError):
        s.run_to("shell")
    img = load_image(bookworm("OVMF_CODE_4M.fd"))
    for node in img.root.walk():       # a PEI-less image (TDVF Config-B): no PEIFV
        node.children = [c for c in node.children if not (c.kind == "fv" and c.get("FvName") == phases.PEIFV_GUID)]
    s = Session(FakeTarget(bytes(img.data)), img)
    stop = s.run_to("pei-core")
    assert stop.phase == "reset" and "no pei-core handoff" in stop.problems[0]
    assert s.current().problems == []           # the cached stop is not changed by the report


class SlowTarget(FakeTarget):
    """A guest that never reaches the breakpoint: cont() times out, interrupt() stops it."""

    def cont(self, timeout=1.0):
        from inspector.live.target import TargetTimeout
        raise TargetTimeout(f"no stop within {timeout} s")


def test_next_handoff_timeout_interrupts_and_reports_not_reached(code4m):
    t = SlowTarget(bytes(code4m.data))
    s = Session(t, code4m)
    stop = s.next_handoff(0.1)
    # (plain values in the asserts: pytest's repr of a Stop would print the image's Spaces whole)
    handoff, reason, problems = stop.handoff, stop.reason, list(stop.problems)
    assert handoff != "sec" and reason == "interrupt"
    assert any("not reached" in p for p in problems)
    assert not t.bps


# ---- CLI arguments -----------------------------------------------------------------------------

def _parser():
    p = argparse.ArgumentParser()
    add_live_arguments(p.add_subparsers())
    return p


def test_qemu_arguments_after_double_dash_go_to_qemu():
    a = split_qemu_args(_parser().parse_args(["qemu", "x.fd", "--until", "sec", "--json", "--", "-smp", "2"]))
    assert (a.until, a.json, a.qemu_args) == ("sec", True, ["-smp", "2"])
    a = split_qemu_args(_parser().parse_args(["qemu", "x.fd", "--", "-smp", "2"]))
    assert (a.until, a.qemu_args) == (None, ["-smp", "2"])


def test_qemu_with_bad_phase_or_missing_image_is_a_usage_error(tmp_path, capsys):
    assert run_qemu(_parser().parse_args(["qemu", "x.fd", "--until", "shell"])) == 2
    assert run_qemu(_parser().parse_args(["qemu", str(tmp_path / "none.fd")])) == 2
    assert run_attach(_parser().parse_args(["attach", "nowhere", "--image", "x.fd"])) == 2


# ---- the handoff table -----------------------------------------------------------------------------

def test_every_phase_has_a_handoff_decoder():
    from inspector.live.handoffs import HANDOFF_DECODERS
    from inspector.live.session_api import PHASES
    assert set(HANDOFF_DECODERS) == set(PHASES)


@pytest.mark.parametrize("width", [4, 8])
def test_pei_core_handoff_reads_sec_core_data_and_ppi_list_by_the_calling_convention(width):
    """PeiCore(SecCoreData, PpiList): X64 MS ABI in RCX/RDX, IA32 cdecl at [ESP+4]/[ESP+8]
    (OvmfPkg/Sec/SecMain.c calls it); the hand-off and PPI list are read through the Memory."""
    from inspector.live.handoffs import HandoffContext, decode_handoff
    from inspector.live.phases import BootState, Handoffs
    from inspector.live.session_api import Phase

    base, handoff_at, ppis_at, guid_at, esp = 0x81F000, 0x81FE00, 0x81FD00, 0x81FC00, 0x81FB00
    ram = bytearray(0x1000)
    blob = _handoff_blob(width)
    ram[handoff_at - base:handoff_at - base + len(blob)] = blob
    desc = _ppi(width, 0x80000010, guid_at, 0x5000)
    ram[ppis_at - base:ppis_at - base + len(desc)] = desc
    ram[guid_at - base:guid_at - base + 16] = TEMP_RAM_SUPPORT_PPI.bytes_le
    struct.pack_into("<III", ram, esp - base, 0xDEAD, handoff_at, ppis_at)      # return address, args
    if width == 8:
        r = regs(cr0=CR0_PE | 1 << 31, efer=EFER_LMA, cs_flags=DESC_L, cs_base=0, cs=0x38, rip=0x82584A,
                 rcx=handoff_at, rdx=ppis_at, rsp=esp)
    else:
        r = regs(cr0=CR0_PE, cs_flags=DESC_B, cs_base=0, cs=0x10, rip=0x82584A, rsp=esp)
    boot = BootState(Handoffs(image_size=0x400000, peifv_ram_base=PEIFV))
    ctx = HandoffContext(BytesMemory(bytes(ram), base), b"", boot, lambda node: None)
    node = decode_handoff(Phase.PEI_CORE, ctx, r)
    assert node.kind == "pei-core-entry"
    assert (node.get("SecCoreData"), node.get("PpiList")) == (handoff_at, ppis_at)
    ho = next(node.find("sec-pei-handoff"))
    assert (ho.get("TemporaryRamBase"), ho.get("StackBase")) == (TEMP_RAM, STACK)
    assert [d.get("GuidValue") for d in next(node.find("ppi-list")).children] == [TEMP_RAM_SUPPORT_PPI]
    assert not list(node.all_problems())
