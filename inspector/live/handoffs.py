"""What is decoded at each handoff: one function per boot phase, in HANDOFF_DECODERS.

Each takes the registers at the entry (the handed-over values are in registers and on the stack,
by the calling convention of the code that jumps there) and fills the entry node:
- reset: the 16 bytes at the reset vector, checked against the image's last 16 (Intel SDM vol. 3A
  9.1.4: the first instruction is fetched at linear 0xFFFFFFF0);
- sec: EAX = BIST, DI = 'BP', EBP/RBP = the boot firmware volume (OvmfPkg/Sec/{Ia32,X64}/SecEntry.nasm,
  as OvmfPkg/ResetVector hands them over);
- pei-core: PeiCore(SecCoreData, PpiList) (MdeModulePkg/Core/Pei/PeiMain/PeiMain.c), called from
  OvmfPkg/Sec/SecMain.c: IA32 cdecl on the stack, X64 MS ABI in RCX/RDX; the EFI_SEC_PEI_HAND_OFF
  and PPI list are decoded by decoders/efi/pei.py;
- dxe-ipl, dxe-core, bds: the loaded module (its image base from the entry RVA); at dxe-core,
  DxeMain(HobStart) has the HOB list in RCX (MdeModulePkg/Core/Dxe/DxeMain/DxeMain.c, reached
  through DxeLoad.c HandOffToDxeCore), which must start with a PHIT, and the page tables of CR3;
  at bds, the DXE tables as inspector.locate finds them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from decoders.efi.pei import decode_ppi_list, decode_sec_pei_handoff
from decoders.hob.decode import decode_hob_list
from decoders.memory import Memory
from decoders.model import Node, Space
from decoders.paging_nodes import cpu_page_tables_node
from inspector.live.phases import ADDRESS_MASK, RESET_VECTOR, BootState
from inspector.live.session_api import Mode, Phase
from inspector.live.target import Registers

RESET_VECTOR_BYTES = 16
BP_SIGNATURE = 0x5042                    # DI = 'BP' at SEC entry (OvmfPkg/Sec/X64/SecEntry.nasm)
HOB_HANDOFF = 1                          # EFI_HOB_TYPE_HANDOFF (MdePkg/Include/Pi/PiHob.h)
HOB_RESOURCE_DESCRIPTOR = 3              # EFI_HOB_TYPE_RESOURCE_DESCRIPTOR
EFI_RESOURCE_SYSTEM_MEMORY = 0


@dataclass
class HandoffContext:
    """What the handoff decoders read besides the registers."""

    phys: Memory                         # guest-physical memory
    image_tail: bytes                    # the image's last 16 bytes: what the reset vector must hold
    boot: BootState                      # the dxe-core decoder records system memory here
    dxe_tables: Callable[[Node], None]   # appends the DXE tables (modules.ModuleTracker.dxe_tables)


def decode_handoff(phase: Phase, ctx: HandoffContext, regs: Registers) -> Node:
    """The "<phase>-entry" node of a handoff stop."""
    mode = Mode.of(regs.mode)
    node = Node(f"{phase}-entry", f"{phase} entry at 0x{regs.pc:x} ({mode})")
    node.add("Mode", mode.value)
    node.add("EntryPoint", regs.pc, display=f"0x{regs.pc:x}")
    HANDOFF_DECODERS[phase](ctx, regs, node)
    # Every handoff in long mode shows the tables CR3 points at, walked as the CPU walks them:
    # 5-level when CR4.LA57 is set (Intel SDM vol. 3A 4.5; OvmfPkg/ResetVector turns LA57 on before
    # SEC when PagingLevel=5), NX with EFER.NXE. None in real mode and 32-bit code (reset).
    pages = cpu_page_tables_node(ctx.phys, regs.cr0, regs.cr3, regs.cr4, regs.efer)
    if pages is not None:
        node.append(pages)
    return node


def read_uintn(mem: Memory, address: int, width: int) -> int:
    return int.from_bytes(mem.read(address, width), "little")


def _width(regs: Registers) -> int:
    return 8 if Mode.of(regs.mode) == Mode.LONG64 else 4


def _mask(regs: Registers) -> int:
    return ADDRESS_MASK.get(Mode.of(regs.mode), (1 << 64) - 1)


def _reset(ctx: HandoffContext, regs: Registers, node: Node) -> None:
    raw = ctx.phys.read(RESET_VECTOR, RESET_VECTOR_BYTES)
    node.space, node.size = Space(f"reset-vector@0x{RESET_VECTOR:x}", raw, RESET_VECTOR), RESET_VECTOR_BYTES
    node.add("ResetVectorBytes", raw, 0, RESET_VECTOR_BYTES)
    if raw != ctx.image_tail:
        node.problem(0, "the 16 bytes at 0xFFFFFFF0 are not the image's last 16: another image runs")


def _sec(ctx: HandoffContext, regs: Registers, node: Node) -> None:
    bfv = regs["rbp"] & _mask(regs)
    node.add("BootFirmwareVolumeBase", bfv, display=f"0x{bfv:x} (EBP/RBP)")
    node.add("Bist", regs["rax"] & 0xFFFFFFFF)
    di = regs["rdi"] & 0xFFFF
    node.add("Signature", di, display=f"0x{di:x} ({'BP' if di == BP_SIGNATURE else 'not BP'})")
    expected = ctx.boot.handoffs.bfv_base
    if expected is not None and bfv != expected:
        node.warn(None, f"EBP/RBP 0x{bfv:x} is not the image's SECFV base 0x{expected:x}")
    if di != BP_SIGNATURE:
        node.warn(None, f"DI 0x{di:x} is not 'BP' (0x{BP_SIGNATURE:x}), the ResetVector's signature")


def _pei_core(ctx: HandoffContext, regs: Registers, node: Node) -> None:
    width = _width(regs)
    if width == 4:
        esp = regs["rsp"] & _mask(regs)          # [esp] is the return address, then the arguments
        sec_core_data = read_uintn(ctx.phys, esp + 4, 4)
        ppi_list = read_uintn(ctx.phys, esp + 8, 4)
    else:
        sec_core_data, ppi_list = regs["rcx"], regs["rdx"]
    node.add("SecCoreData", sec_core_data, display=f"0x{sec_core_data:x}")
    node.add("PpiList", ppi_list, display=f"0x{ppi_list:x}")
    handoff = node.append(decode_sec_pei_handoff(ctx.phys, sec_core_data, width))
    node.append(decode_ppi_list(ctx.phys, ppi_list, width))
    bfv, peifv = handoff.get("BootFirmwareVolumeBase"), ctx.boot.handoffs.peifv_ram_base
    if bfv is not None and peifv is not None and bfv != peifv:
        node.warn(None, f"BootFirmwareVolumeBase 0x{bfv:x} is not PEIFV's RAM base 0x{peifv:x}")


def _loaded_module(ctx: HandoffContext, regs: Registers, node: Node, phase: Phase) -> None:
    m = ctx.boot.handoffs.modules.get(phase)
    if m is not None:
        base = regs.pc - m.entry_rva
        node.add("ImageBase", base, display=f"0x{base:x}")
        node.add("Module", m.name, display=f"{m.name} ({str(m.guid).upper()})")
        node.title = f"{m.name} entry at 0x{regs.pc:x} (image at 0x{base:x})"


def _dxe_ipl(ctx: HandoffContext, regs: Registers, node: Node) -> None:
    _loaded_module(ctx, regs, node, Phase.DXE_IPL)


def _dxe_core(ctx: HandoffContext, regs: Registers, node: Node) -> None:
    _loaded_module(ctx, regs, node, Phase.DXE_CORE)
    hob = regs["rcx"]
    node.add("HobList", hob, display=f"0x{hob:x} (RCX)")
    hobs = node.append(decode_hob_list(ctx.phys, hob))
    first = hobs.children[0] if hobs.children else None
    if first is None or first.get("HobType") != HOB_HANDOFF:
        node.problem(None, f"RCX 0x{hob:x} does not point to a PHIT HOB (HobType 1)")
    ram = system_memory(hobs)
    if ram:
        ctx.boot.ram = ram


def _bds(ctx: HandoffContext, regs: Registers, node: Node) -> None:
    _loaded_module(ctx, regs, node, Phase.BDS)
    ctx.dxe_tables(node)


def system_memory(hobs: Node) -> list[tuple[int, int]]:
    """(PhysicalStart, ResourceLength) of the SYSTEM_MEMORY resource descriptor HOBs (PiHob.h)."""
    return [(h.get("PhysicalStart"), h.get("ResourceLength")) for h in hobs.children
            if h.get("HobType") == HOB_RESOURCE_DESCRIPTOR and h.get("ResourceType") == EFI_RESOURCE_SYSTEM_MEMORY]


HANDOFF_DECODERS: dict[Phase, Callable[[HandoffContext, Registers, Node], None]] = {
    Phase.RESET: _reset,
    Phase.SEC: _sec,
    Phase.PEI_CORE: _pei_core,
    Phase.DXE_IPL: _dxe_ipl,
    Phase.DXE_CORE: _dxe_core,
    Phase.BDS: _bds,
}
