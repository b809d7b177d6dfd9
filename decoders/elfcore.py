"""The CPU state in a QEMU `dump-guest-memory` ELF core: its NT_PRSTATUS and "QEMU" notes.

QEMU writes (target/i386/arch_dump.c, dump/dump.c):
- per CPU a "CORE" NT_PRSTATUS note (the x86-64 or i386 `elf_prstatus` with the kernel's user_regs
  layout: Linux arch/x86/include/asm/user_64.h and user_32.h, as the x86-64 psABI core files use),
- then, after all of them, per CPU a "QEMU" note of type 0 holding QEMUCPUState: the only place a
  dump keeps segment caches, GDT/IDT and CR0-CR4 (no EFER).

`decode_notes(data, file_offset)` walks the notes of one PT_NOTE segment with bounds (a lying
n_descsz stops the walk with a located problem) and pairs the two kinds into `CpuState`s;
`cpu_node` presents one as a Node. Bytes in, dataclasses, Problems and Nodes out: the memory
mapping of the core is inspector/dump.py's business.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from decoders.errors import DecodeError
from decoders.layout import Layout
from decoders.model import Node, Problem, Severity, Space

# Two notes per CPU and QEMU's largest machine has 4096 vCPUs (x86 max_cpus); more is a lie.
MAX_NOTES = 2 * 4096

NT_PRSTATUS = 1
QEMU_NOTE_TYPE = 0

# ELF gABI "Note Section": namesz, descsz, type, then name and desc, each padded to 4 bytes.
Elf_Nhdr = Layout("Elf_Nhdr", ("n_namesz", "I"), ("n_descsz", "I"), ("n_type", "I"))

# target/i386/arch_dump.c (QEMUCPUSTATE_VERSION 1)
QEMUCPUSegment = Layout("QEMUCPUSegment", ("selector", "I"), ("limit", "I"), ("flags", "I"), ("pad", "I"),
                        ("base", "Q"))
SEGMENT_NAMES = ("cs", "ds", "es", "fs", "gs", "ss", "ldt", "tr", "gdt", "idt")
GP_NAMES = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp",
            "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip", "rflags")
QEMUCPUState = Layout(
    "QEMUCPUState",
    ("version", "I"),
    ("size", "I"),
    *[(n, "Q") for n in GP_NAMES],
    *[(n, QEMUCPUSegment) for n in SEGMENT_NAMES],
    ("cr", "5Q"),
)
# QEMU 7.x appends `uint64_t kernel_gs_base` (for win-dmp) without bumping the version: the
# 7.2 dumps here have size 440 = 432 + 8. Read it when `size` says it is there.
QEMUCPUState_kernel_gs_base = Layout("QEMUCPUState_kernel_gs_base", ("kernel_gs_base", "Q"))

# arch_dump.c x86_64_user_regs_struct inside x86_64_elf_prstatus {pad1[32], pid, pad2[76], regs, pad3[8]}
X64_REG_NAMES = ("r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx", "rdx",
                 "rsi", "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base", "gs_base",
                 "ds", "es", "fs", "gs")
x86_64_elf_prstatus = Layout(
    "x86_64_elf_prstatus",
    (None, "32x"),
    ("pid", "I"),
    (None, "76x"),
    ("regs", Layout("x86_64_user_regs_struct", *[(n, "Q") for n in X64_REG_NAMES])),
    (None, "8x"),
)
# arch_dump.c x86_user_regs_struct inside x86_elf_prstatus {pad1[24], pid, pad2[44], regs, pad3[4]}
x86_elf_prstatus = Layout(
    "x86_elf_prstatus",
    (None, "24x"),
    ("pid", "I"),
    (None, "44x"),
    ("regs", Layout(
        "x86_user_regs_struct",
        ("ebx", "I"), ("ecx", "I"), ("edx", "I"), ("esi", "I"), ("edi", "I"),
        ("ebp", "I"), ("eax", "I"),
        ("ds", "H"), (None, "2x"), ("es", "H"), (None, "2x"), ("fs", "H"), (None, "2x"),
        ("gs", "H"), (None, "2x"),
        ("orig_eax", "I"), ("eip", "I"), ("cs", "H"), (None, "2x"),
        ("eflags", "I"), ("esp", "I"), ("ss", "H"), (None, "2x"),
    )),
    (None, "4x"),
)
PRSTATUS_LAYOUTS = {x86_64_elf_prstatus.size: ("x86_64", x86_64_elf_prstatus),
                    x86_elf_prstatus.size: ("i386", x86_elf_prstatus)}
NHDR_SIZE = Elf_Nhdr.size
QEMU_STATE_SIZE = QEMUCPUState.size


@dataclass
class SegmentCache:
    selector: int
    limit: int
    flags: int
    base: int


@dataclass
class CpuState:
    index: int
    registers: dict[str, int] = field(default_factory=dict)   # rax..r15, rip, rflags
    segments: dict[str, SegmentCache] = field(default_factory=dict)
    cr: list[int] = field(default_factory=list)                 # CR0..CR4, from the QEMU note
    efer: int | None = None                                      # not in QEMUCPUState v1
    kernel_gs_base: int | None = None
    version: int | None = None
    size: int | None = None
    qemu_note_offset: int | None = None                          # file offsets of the descriptors
    prstatus_offset: int | None = None
    prstatus: dict[str, int] | None = None
    prstatus_layout: str | None = None
    pid: int | None = None

    def _cr(self, n: int) -> int | None:
        return self.cr[n] if len(self.cr) > n else None

    @property
    def cr0(self) -> int | None:
        return self._cr(0)

    @property
    def cr3(self) -> int | None:
        return self._cr(3)

    @property
    def cr4(self) -> int | None:
        return self._cr(4)

    @property
    def rip(self) -> int | None:
        return self.registers.get("rip")

    @property
    def mode(self) -> str:
        """`real`, `prot16`, `prot32`, `long64`, or `unknown` without a QEMU note; see `cpu_mode`."""
        return cpu_mode(self)

    @property
    def linear_rip(self) -> int | None:
        """CS base + RIP outside 64-bit mode (the CS base is ignored there: Intel SDM vol. 3A 3.4.4)."""
        if self.rip is None:
            return None
        cs = self.segments.get("cs")
        if cs is None or self.mode == "long64":
            return self.rip
        return (cs.base + self.rip) & 0xFFFFFFFF


# Control-register bits (Intel SDM vol. 3A 2.5) and the CS descriptor flags as QEMU keeps them in
# SegmentCache.flags, the descriptor's high dword (target/i386/cpu.h DESC_L_MASK, DESC_B_MASK).
CR0_PE, CR0_PG = 1 << 0, 1 << 31
DESC_L, DESC_B = 1 << 21, 1 << 22
MODES = ("real", "prot16", "prot32", "long64", "unknown")


def cpu_mode(cpu: CpuState) -> str:
    """The operating mode from CR0.PE, the CS descriptor's L and D/B bits and CR0.PG (Intel SDM vol. 3A
    2.2, 5.2.1). QEMUCPUState has no EFER, so LMA is inferred: a CS with L set while paging is on is
    64-bit code (OVMF loads its L=1 code selector only after setting EFER.LME and CR0.PG:
    OvmfPkg/ResetVector/Ia32/Flat32ToFlat64.asm; compatibility mode, L=0 under LMA, reads as prot32).
    Without a QEMU note (no CR0, no CS cache) the mode is "unknown"."""
    cr0, cs = cpu.cr0, cpu.segments.get("cs")
    if cr0 is None or cs is None:
        return "unknown"
    if not cr0 & CR0_PE:
        return "real"
    if cs.flags & DESC_L and cr0 & CR0_PG:
        return "long64"
    return "prot32" if cs.flags & DESC_B else "prot16"


def _align4(n: int) -> int:
    return (n + 3) & ~3


def decode_notes(data: bytes, file_offset: int, first_index: int = 0) -> tuple[list[CpuState], list[Problem]]:
    """The CPUs of one PT_NOTE segment's bytes (`data`, at `file_offset` in the core file; problem
    offsets are file offsets). CPUs are numbered from `first_index`."""
    problems: list[Problem] = []

    def problem(offset: int, message: str, severity: Severity = Severity.ERROR) -> None:
        problems.append(Problem(offset, severity, message))

    prstatus: list[tuple[int, bytes]] = []
    qemu: list[tuple[int, bytes]] = []
    off, pos = file_offset, 0
    for _ in range(MAX_NOTES):
        if pos + NHDR_SIZE > len(data):
            if pos < len(data) and any(data[pos:]):
                problem(off + pos, f"{len(data) - pos} bytes after the last note are too short for a note header")
            break
        h = Elf_Nhdr.parse(data, pos)
        name_end = pos + 12 + h.n_namesz
        desc = pos + 12 + _align4(h.n_namesz)
        desc_end = desc + h.n_descsz
        if desc_end > len(data) or name_end > len(data):
            problem(off + pos, f"note at 0x{off + pos:x} (n_namesz {h.n_namesz}, n_descsz {h.n_descsz}) runs "
                               f"past the end of its PT_NOTE (0x{len(data) - pos:x} bytes left); notes stop here")
            break
        name = bytes(data[pos + 12:name_end]).rstrip(b"\0")
        if name == b"CORE" and h.n_type == NT_PRSTATUS:
            prstatus.append((off + desc, bytes(data[desc:desc_end])))
        elif name == b"QEMU" and h.n_type == QEMU_NOTE_TYPE:
            qemu.append((off + desc, bytes(data[desc:desc_end])))
        pos = desc + _align4(h.n_descsz)
    else:
        problem(off + pos, f"more than {MAX_NOTES} notes; the rest are not read")
    if not qemu:
        problem(off, "no \"QEMU\" note: CR0-CR4 and segment bases are unknown (not a QEMU dump, or an "
                     "old one)", Severity.WARNING)
    if qemu and not prstatus:
        problem(qemu[0][0], f"{len(qemu)} QEMU notes but no NT_PRSTATUS note (QEMU writes one per CPU)",
                Severity.WARNING)
    if prstatus and qemu and len(prstatus) != len(qemu):
        # Located at the first note left without a partner: the CPUs from there on have half a state.
        n = min(len(prstatus), len(qemu))
        more, kind = (prstatus, "NT_PRSTATUS") if len(prstatus) > len(qemu) else (qemu, "QEMU")
        lacking = "CR0-CR4 and segment caches" if kind == "NT_PRSTATUS" else "the PRSTATUS registers"
        problem(more[n][0], f"{len(prstatus)} NT_PRSTATUS notes but {len(qemu)} QEMU notes: CPUs paired in "
                            f"order; the {kind} note at 0x{more[n][0]:x} (CPU {first_index + n}) and the "
                            f"{len(more) - n - 1} after it have no partner, so "
                            f"CPU{'s' if len(more) - n > 1 else ''} {first_index + n}"
                            f"{'-' + str(first_index + len(more) - 1) if len(more) - n > 1 else ''} lack "
                            f"{lacking}")
    # dump/dump.c writes every CPU's PRSTATUS, then every CPU's QEMU note, in CPU order.
    cpus = []
    for k in range(max(len(prstatus), len(qemu))):
        cpu = CpuState(first_index + k)
        if k < len(qemu):
            _qemu_note(problem, cpu, *qemu[k])
        if k < len(prstatus):
            _prstatus(problem, cpu, *prstatus[k])
        cpus.append(cpu)
    return cpus, problems


def _qemu_note(problem, cpu: CpuState, off: int, desc: bytes) -> None:
    cpu.qemu_note_offset = off
    try:
        st = QEMUCPUState.read(desc, 0, "QEMUCPUState")
    except DecodeError as e:
        problem(off, f"CPU {cpu.index} QEMU note: {e.message} (descriptor is {len(desc)} bytes, "
                     f"QEMUCPUState v1 needs {QEMU_STATE_SIZE})")
        return
    cpu.version, cpu.size = st["version"], st["size"]
    if cpu.version != 1:
        problem(off, f"CPU {cpu.index} QEMU note: version {cpu.version} (this reader knows 1); "
                     "fields read as version 1", Severity.WARNING)
    if cpu.size > len(desc) or cpu.size < QEMU_STATE_SIZE:
        problem(off + 4, f"CPU {cpu.index} QEMU note: size field {cpu.size} disagrees with the "
                         f"{len(desc)}-byte descriptor (QEMUCPUState v1 is {QEMU_STATE_SIZE}+)")
    cpu.registers = {n: st[n] for n in GP_NAMES}
    cpu.segments = {n: SegmentCache(st[n]["selector"], st[n]["limit"], st[n]["flags"], st[n]["base"])
                    for n in SEGMENT_NAMES}
    cpu.cr = st["cr"]
    tail = QEMU_STATE_SIZE
    if min(cpu.size, len(desc)) >= tail + 8:
        cpu.kernel_gs_base = QEMUCPUState_kernel_gs_base.read(desc, tail)["kernel_gs_base"]


def _prstatus(problem, cpu: CpuState, off: int, desc: bytes) -> None:
    cpu.prstatus_offset = off
    layout = PRSTATUS_LAYOUTS.get(len(desc))
    if layout is None:
        problem(off, f"CPU {cpu.index} NT_PRSTATUS of {len(desc)} bytes matches neither the x86-64 "
                     f"({x86_64_elf_prstatus.size}) nor the i386 ({x86_elf_prstatus.size}) layout")
        return
    cpu.prstatus_layout, record = layout
    st = record.read(desc)
    cpu.pid = st["pid"]
    cpu.prstatus = st["regs"]
    if not cpu.registers:
        # No QEMU note: the general registers come from PRSTATUS, named as in QEMUCPUState.
        r = cpu.prstatus
        if cpu.prstatus_layout == "x86_64":
            cpu.registers = {n: r[n] for n in GP_NAMES if n in r}
            cpu.registers["rflags"] = r["eflags"]
        else:
            cpu.registers = {"r" + n[1:]: r[n] for n in ("eax", "ebx", "ecx", "edx", "esi", "edi", "esp", "ebp")}
            cpu.registers.update(rip=r["eip"], rflags=r["eflags"])


def cpu_node(cpu: CpuState, space: Space | None = None) -> Node:
    """A "cpu" node: Index, Mode, Rip (and LinearRip when CS has a base), Cr0-Cr4, then the other
    registers, the segment caches and the notes' own fields, at the note in `space`."""
    mode = cpu.mode
    title = f"CPU {cpu.index}: {mode}"
    if cpu.rip is not None:
        title += f" RIP 0x{cpu.rip:x}"
        if cpu.linear_rip != cpu.rip:
            title += f" (linear 0x{cpu.linear_rip:x})"
    if cpu.cr3 is not None:
        title += f" CR3 0x{cpu.cr3:x}"
    n = Node("cpu", title, space, cpu.qemu_note_offset or cpu.prstatus_offset or 0, cpu.size or 0)
    n.add("Index", cpu.index)
    n.add("Mode", mode, display=mode + ("" if cpu.cr0 is not None else " (no QEMU note: no CR0 or CS cache)"))
    if cpu.rip is not None:
        n.add("Rip", cpu.rip, display=f"0x{cpu.rip:x}")
        if cpu.linear_rip != cpu.rip:
            n.add("LinearRip", cpu.linear_rip, display=f"0x{cpu.linear_rip:x} (CS base + RIP)")
    for i, value in enumerate(cpu.cr):
        n.add(f"Cr{i}", value, display=f"0x{value:x}")
    for name, value in cpu.registers.items():
        if name != "rip":
            n.add(name.upper(), value, display=f"0x{value:016x}")
    if cpu.efer is not None:
        n.add("EFER", cpu.efer)
    if cpu.kernel_gs_base is not None:
        n.add("KernelGsBase", cpu.kernel_gs_base)
    for name, s in cpu.segments.items():
        n.add(name.upper(), {"selector": s.selector, "limit": s.limit, "flags": s.flags, "base": s.base},
              display=f"sel 0x{s.selector:04x} base 0x{s.base:x} limit 0x{s.limit:x} flags 0x{s.flags:x}")
    if cpu.prstatus is not None:
        n.add("PrStatusLayout", cpu.prstatus_layout)
        n.add("Pid", cpu.pid)
    if cpu.version is not None:
        n.add("QemuCpuStateVersion", cpu.version)
        n.add("QemuCpuStateSize", cpu.size)
    return n


__all__ = ["CpuState", "SegmentCache", "decode_notes", "cpu_node", "cpu_mode", "QEMUCPUState", "x86_64_elf_prstatus",
           "x86_elf_prstatus", "Elf_Nhdr"]
