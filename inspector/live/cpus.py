"""Every vCPU at a stop: what each one is doing, where, and in which module.

QEMU's gdbstub shows each vCPU as a thread (thread id = cpu_index + 1: gdbstub/gdbstub.c,
gdb_get_cpu_index); the Target reads them all in one pipelined exchange (Target.read_cpus). This
module turns those reads into the Stop's `cpus` (session_api.CpuView): mode and linear RIP as for
the boot CPU, phase and module from the same boot-phase model (phases.classify), and the state:

- running: QEMU's CPUState.halted is 0, as the gdbstub's qThreadExtraInfo says ("CPU#1 [running]",
  gdbstub/gdbstub.c handle_query_thread_extra) or else the monitor (`HLT=0`, target/i386/cpu-dump.c
  x86_cpu_dump_state);
- wait-for-SIPI: halted and still at the reset state, CS selector 0xF000, base 0xFFFF0000, IP 0xFFF0
  (Intel SDM vol. 3A 9.1.1 table 9-1 and 9.4.4: after INIT an AP waits for a SIPI). QEMU keeps an AP
  that was never started halted at that state (x86_cpu_reset; hw/intc/apic.c, apic_reset_common and
  apic_sipi), which is what QEMU's monitor shows for APs before MpInitLib's first
  INIT-SIPI-SIPI (measured here: QEMU 7.2, OVMF 2022.11 at -smp 4, CPU#1-3 at the PEI-core handoff);
- halted: halted anywhere else, e.g. in MpInitLib's HLT loop between StartupAllAPs calls
  (UefiCpuPkg/Library/MpInitLib/MpLib.c, ApWakeupFunction; PcdCpuApLoopMode 1 = HLT loop);
  an AP in the MWAIT or run loop (modes 2 and 3) is running as far as QEMU is concerned.
"""
from __future__ import annotations

from typing import Callable

from inspector.live.phases import BootState, classify
from inspector.live.session_api import CpuState, CpuView, Mode, Phase
from inspector.live.target import SEGMENTS, X86_64_REGISTERS, CpuRead, CpuSet, Registers

# The reset state of an x86 CPU (Intel SDM vol. 3A, 9.1.4 "First Instruction Executed").
RESET_CS_SELECTOR = 0xF000
RESET_CS_BASE = 0xFFFF0000
RESET_IP = 0xFFF0
INT_REGISTERS = {n for n, bits in X86_64_REGISTERS if bits <= 64}
BOOT_CPU = 0        # QEMU's BSP is cpu_index 0 (APIC ID 0 on x86 machines)


def register_dict(regs: Registers) -> dict[str, int]:
    """Integer registers by name, control registers, and segment selectors/bases/limits/flags."""
    out = {k: v for k, v in regs.gpr.items() if k in INT_REGISTERS and isinstance(v, int)}
    out.update(rip=regs.rip, eflags=regs.rflags, cr0=regs.cr0, cr2=regs.cr2, cr3=regs.cr3, cr4=regs.cr4,
               efer=regs.efer)
    for name in SEGMENTS:
        seg = regs.segments.get(name)
        if seg is None:
            continue
        out[name] = seg.selector
        for attr in ("base", "limit", "flags"):
            value = getattr(seg, attr)
            if value is not None:
                out[f"{name}_{attr}"] = value
    for name, (base, limit) in regs.tables.items():
        out[f"{name}_base"], out[f"{name}_limit"] = base, limit
    return out


def at_reset_state(regs: Registers) -> bool:
    cs = regs.cs
    return (cs.selector == RESET_CS_SELECTOR and cs.base == RESET_CS_BASE and regs.rip == RESET_IP
            and regs.mode == Mode.REAL)


def cpu_state(regs: Registers | None, halted: bool | None, source: str = "") -> tuple[CpuState, str]:
    """(state, what it was decided from); `source` names where `halted` came from."""
    if regs is None:
        return CpuState.UNKNOWN, "registers not read"
    if halted is None:
        return CpuState.UNKNOWN, "no halted flag: the stub is not QEMU's (no qThreadExtraInfo state, no monitor)"
    source = source or "halted flag"
    if not halted:
        return CpuState.RUNNING, f"{source}: running"
    if at_reset_state(regs):
        return CpuState.WAIT_FOR_SIPI, f"{source}: halted, at the reset state (CS f000 base ffff0000, IP fff0)"
    return CpuState.HALTED, f"{source}: halted"


def cpu_view(read: CpuRead, boot: BootState, name_at: Callable[[int], str | None] | None = None) -> CpuView:
    """One CpuView; `name_at(pc)` names a module more precisely than the image does (symbols)."""
    regs = read.registers
    state, source = cpu_state(regs, read.halted, read.halted_source)
    if regs is None:
        return CpuView(read.index, read.thread, Mode.UNKNOWN, 0, Phase.UNKNOWN, None, state, {},
                       state_source=read.problem or source)
    mode, pc = Mode.of(regs.mode), regs.pc
    phase, module = classify(pc, mode, boot.ranges, boot.reached)
    if name_at is not None:
        module = name_at(pc) or module
    return CpuView(read.index, read.thread, mode, pc, phase, module, state, register_dict(regs), state_source=source)


def cpu_views(cpus: CpuSet, boot: BootState, name_at: Callable[[int], str | None] | None = None) -> list[CpuView]:
    return [cpu_view(c, boot, name_at) for c in cpus.cpus]


def cpu_problems(cpus: CpuSet) -> list[str]:
    """The set's problems and each CPU's, as Stop problems."""
    return [*cpus.problems, *(f"CPU {c.index}: {c.problem}" for c in cpus.cpus if c.problem)]


def is_cpu_index(value) -> bool:
    """Whether `value` is a CPU index: an int >= 0 (not a bool, not the text of a number: "0" != 0)."""
    return type(value) is int and value >= 0


def about_cpu(cpus: CpuSet, thread: str | None) -> CpuRead | None:
    """The CPU a stop is about: the one whose thread the stop reply named, else the target's focus
    (a stop reply without a thread, or naming one the listing does not have)."""
    if thread is not None:
        named = next((c for c in cpus.cpus if c.thread == thread), None)
        if named is not None:
            return named
    return cpus.focused()


def stop_note(reason: str, cpu: int, count: int) -> str | None:
    """A Stop problem naming the CPU when an application processor, not the boot CPU, stopped on a
    breakpoint, handoff or watchpoint. Only an int index names one: anything else (the text "0", a
    None) is no CPU at all, and "CPU 0 hit this breakpoint, not the boot CPU (CPU 0)" is no note."""
    if count > 1 and is_cpu_index(cpu) and cpu != BOOT_CPU and reason in ("breakpoint", "handoff", "watchpoint"):
        return f"CPU {cpu} hit this {reason}, not the boot CPU (CPU {BOOT_CPU})"
    return None


def step_refusal(view: CpuView | None) -> str | None:
    """Why the selected CPU cannot be stepped, or None: a halted vCPU executes nothing until an
    interrupt or INIT-SIPI-SIPI wakes it, so a single step of it alone would never finish
    (measured: QEMU 7.2 `vCont;s:2` on a halted AP got no reply)."""
    if view is None or view.state not in (CpuState.HALTED, CpuState.WAIT_FOR_SIPI):
        return None
    return (f"CPU {view.index} is {view.state} ({view.state_source}): a step of it alone would not end until "
            f"something wakes it; continue runs every CPU")
