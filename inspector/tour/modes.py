"""The reset vector's road to long mode: the instructions that write CR0, CR4 and EFER between
reset and SEC, found in the image and watched on a live boot.

Where the code is: OvmfPkg/ResetVector builds one raw FFS file (ResetVector.inf, FILE_GUID
1BA0062E-...) that GenFds puts at the very top of SECFV, so it runs in place from flash: its last
16 bytes sit at 0xFFFFFFF0, where the CPU starts after reset in real mode with CS.base 0xFFFF0000
(Intel SDM vol. 3A 9.1.4). The edk2 sources of the steps (edk2-stable202502):
- UefiCpuPkg/ResetVector/Vtf0/Ia16/Real16ToFlat32.asm: `mov cr0, eax` (SEC_DEFAULT_CR0 0x23: PE,
  MP, NE) in 16-bit code, the far jump to the 32-bit LINEAR_CODE_SEL, `mov cr4, eax`
  (SEC_DEFAULT_CR4 0x640) in 32-bit code;
- OvmfPkg/ResetVector/Ia32/PageTables64.asm: CR3, and with PcdUse5LevelPageTable the
  Enable5LevelPaging macro (`bts eax, 12; mov cr4, eax`: LA57) on the plain, TDX-BSP and TDX-AP paths;
- OvmfPkg/ResetVector/Ia32/Flat32ToFlat64.asm: `bts eax, 5; mov cr4, eax` (PAE), `mov ecx,
  0xc0000080; rdmsr; bts eax, 8; wrmsr` (EFER.LME; skipped under TDX, whose module set LME already),
  `bts eax, 31; mov cr0, eax` (PG) and the far jump to LINEAR_CODE64_SEL;
- OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.asm (X64): `mov eax, cr0; test al, 1; jz .Real`, shared
  by the real-mode reset and a TDX vCPU, which starts at 0xFFFFFFF0 in 32-bit protected mode.

How the code is found: by following it, not by a plain linear sweep. The file mixes 16-, 32- and
64-bit code with data (the TDX and SEV metadata, the GDT, the OVMF GUID table), and the
control-register moves (0F 22 /r) and WRMSR (0F 30) have the same encoding in every mode, so a
sweep could neither tell their bitness nor stay in step across the data. Instead a recursive
descent starts at 0xFFFFFFF0 in real mode (and, for an image with TDX metadata, in 32-bit mode as a
TDX vCPU starts) and follows every direct jump, call and both sides of every conditional branch,
with the bitness of each far jump's target taken from the descriptor its selector names in the GDT
the code loaded (LGDT; Intel SDM vol. 3A 3.4.5: L selects 64-bit code, D/B 32-bit). A conditional
branch on CR0.PE (the shared entry above) is taken the way the path's known PE says. Constants
moved into registers are followed along each path, so WRMSR is known to write EFER (ECX =
0xC0000080, Intel SDM vol. 4, IA32_EFER) and each write's bits (`bts`, `or`, `mov reg, imm`) are
known. Indirect jumps (`jmp esi`/`jmp rsi` to SEC's entry) end a path: they are the exits.

On a live boot each switch is a breakpoint (linear addresses: QEMU's TCG matches breakpoints on
CS.base + EIP, so the 16-bit ones are set at their flash address too); the stop before and the
single step after give the registers the chapter compares. Mode switching: Intel SDM vol. 3A
(253668-032US) 9.9.1 "Switching to Protected Mode" and 9.8.5 "Initializing IA-32e Mode" (chapter
10 in editions from 2023).
"""
from __future__ import annotations

import re
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from decoders.model import Node
from inspector.live.disasm import engine
from inspector.live.session_api import Mode, Stop
from inspector.tour.model import Chapter, Value, Writer, show

RESET_VECTOR = 0xFFFFFFF0
# CS.base after reset: the real-mode code runs at 0xFFFF0000 + IP (Intel SDM vol. 3A 9.1.4).
RESET_CS_BASE = 0xFFFF0000
FOUR_GIB = 1 << 32
RESET_VECTOR_GUID = "1ba0062e-c779-4582-8566-336ae8f78f09"   # OvmfPkg/ResetVector/ResetVector.inf
FFS_RAW = 0x01
IA32_EFER = 0xC0000080                   # Intel SDM vol. 4, table 2-2
# The ResetVector file is a few KiB (3.4 KiB in a 2025.02 DEBUG build): a bound far above the
# instructions it can hold, that only stops a hostile image from making the walk long.
MAX_INSTRUCTIONS = 20_000
MAX_PROBLEMS = 32

# Control-register and EFER bits by name (Intel SDM vol. 3A 2.5 "Control Registers", 2.2.1
# "Extended Feature Enable Register").
CR0_BITS = {0: "PE", 1: "MP", 2: "EM", 3: "TS", 4: "ET", 5: "NE", 16: "WP", 18: "AM", 29: "NW", 30: "CD", 31: "PG"}
CR4_BITS = {0: "VME", 1: "PVI", 2: "TSD", 3: "DE", 4: "PSE", 5: "PAE", 6: "MCE", 7: "PGE", 8: "PCE", 9: "OSFXSR",
            10: "OSXMMEXCPT", 11: "UMIP", 12: "LA57", 13: "VMXE", 14: "SMXE", 16: "FSGSBASE", 17: "PCIDE",
            18: "OSXSAVE", 20: "SMEP", 21: "SMAP", 22: "PKE", 23: "CET", 24: "PKS"}
EFER_BITS = {0: "SCE", 8: "LME", 10: "LMA", 11: "NXE", 12: "SVME", 13: "LMSLE", 14: "FFXSR", 15: "TCE"}
BITS_OF = {"CR0": CR0_BITS, "CR4": CR4_BITS, "EFER": EFER_BITS}
CR0_PE, CR0_PG = 1 << 0, 1 << 31
CR4_PAE, CR4_LA57 = 1 << 5, 1 << 12
EFER_LME, EFER_LMA = 1 << 8, 1 << 10

_MODE_OF_BITS = {16: "real", 32: "prot32", 64: "long64"}
# How a stop's mode reads in prose (the value stays the Mode name).
MODE_TEXT = {Mode.REAL: "real-address mode", Mode.PROT16: "16-bit protected mode", Mode.PROT32: "32-bit protected mode",
             Mode.LONG64: "64-bit mode"}
# Registers by family: a write to any width of one forgets what was known of it.
_FAMILY = {}
for _fam, _names in {"a": "al ah ax eax rax", "b": "bl bh bx ebx rbx", "c": "cl ch cx ecx rcx",
                     "d": "dl dh dx edx rdx", "si": "sil si esi rsi", "di": "dil di edi rdi",
                     "bp": "bpl bp ebp rbp", "sp": "spl sp esp rsp"}.items():
    for _n in _names.split():
        _FAMILY[_n] = _fam
# Instructions that write registers they do not name first (Intel SDM vol. 2).
_IMPLICIT = {"cpuid": "a b c d", "rdmsr": "a d", "rdtsc": "a d", "rdtscp": "a c d", "mul": "a d", "imul": "a d",
             "div": "a d", "idiv": "a d", "cdq": "d", "cwd": "d", "lodsb": "a si", "lodsd": "a si",
             "stosb": "di c", "stosd": "di c", "stosq": "di c", "movsb": "si di c", "movsd": "si di c",
             "movsq": "si di c", "loop": "c", "in": "a", "xgetbv": "a d", "rdrand": ""}
# Instructions whose first operand is read, not written.
_READS_FIRST = {"cmp", "test", "bt", "push", "out", "lgdt", "lidt", "ljmp", "jmp", "call", "wrmsr", "invlpg"}
_END = {"ret", "retf", "iret", "iretd", "iretq", "ud2", "int3"}


@dataclass(frozen=True)
class Switch:
    """One instruction of the reset vector that writes CR0, CR4 or EFER."""

    address: int                 # linear (flash) address
    text: str                    # as the live screen disassembles it: "mov cr0, eax"
    register: str                # "CR0", "CR4" or "EFER"
    bits: int                    # 16, 32 or 64: the code size it runs at
    size: int                    # instruction length
    sets: int = 0                # bits the code sets (a constant moved in, `bts`, `or`), as far as known
    value: int | None = None     # the whole value written, when it is a constant


@dataclass
class Flow:
    """What following the reset vector's code found."""

    start: int | None = None             # the ResetVector file's code, linear
    end: int | None = None
    switches: list[Switch] = field(default_factory=list)    # in the order the walk met them
    exits: list[tuple[int, str, int]] = field(default_factory=list)   # (address, text, bits): indirect jumps out
    instructions: int = 0
    problems: list[str] = field(default_factory=list)


@dataclass
class _Reg:
    value: int | None = None     # known value
    sets: int = 0                # bits known to be set
    source: str | None = None    # "cr0", "cr4": read from that control register


@dataclass
class _State:
    bits: int
    cs_base: int
    pe: bool
    regs: dict[str, _Reg] = field(default_factory=dict)
    gdt: tuple[int, int] | None = None       # (base, limit) loaded by LGDT on this path
    pe_test: bool = False                    # the previous instruction was `test al, 1` on CR0

    def fork(self, **changes) -> "_State":
        s = _State(self.bits, self.cs_base, self.pe, dict(self.regs), self.gdt, False)
        for k, v in changes.items():
            setattr(s, k, v)
        return s


def reset_vector_file(root: Node) -> Node | None:
    """The ResetVector raw file in the image's own space (flash), not one inside a decompressed volume."""
    for ffs in root.find("ffs"):
        if ffs.space is root.space and str(ffs.get("Name")).lower() == RESET_VECTOR_GUID and ffs.get("Type") == FFS_RAW:
            return ffs
    return None


def find_mode_switches(image) -> list[Switch]:
    """The CR0, CR4 and EFER writes on the way from reset to SEC (image: inspector.image.LoadedImage)."""
    return follow_reset_vector(image).switches


def follow_reset_vector(image) -> Flow:
    """Follow the reset vector's code from 0xFFFFFFF0 (module docstring)."""
    flow = Flow()
    data = bytes(image.data)
    flash_base = FOUR_GIB - len(data)
    ffs = reset_vector_file(image.root)
    if ffs is None:
        flow.problems.append("no ResetVector file (FFS RAW 1BA0062E-C779-4582-8566-336AE8F78F09) at the top of the flash")
        return flow
    body = next((c for c in ffs.children if c.kind == "data"), ffs)
    flow.start, flow.end = flash_base + body.offset, flash_base + body.offset + body.size
    if flow.end != FOUR_GIB:
        flow.problems.append(f"the ResetVector file ends at 0x{flow.end:x}, not at 4 GiB: the reset vector is elsewhere")

    def read(linear: int, size: int) -> bytes | None:
        if linear < flash_base or linear + size > FOUR_GIB:
            return None
        return data[linear - flash_base:linear - flash_base + size]

    def problem(text: str) -> None:
        if len(flow.problems) < MAX_PROBLEMS:
            flow.problems.append(text)

    # Entries: the architectural reset (real mode, PE=0); a TDX vCPU starts at the same address in
    # 32-bit protected mode with flat segments (Intel TDX module spec, "Initial State of Guest TD
    # vCPU"), which only an image with TDX metadata is built for.
    stack: list[tuple[int, _State]] = []
    if next(image.root.find("tdx-metadata"), None) is not None:
        stack.append((RESET_VECTOR, _State(32, 0, True)))
    stack.append((RESET_VECTOR, _State(16, RESET_CS_BASE, False)))
    seen: set[tuple[int, int]] = set()
    found: set[int] = set()
    while stack:
        addr, st = stack.pop()
        while True:
            if (addr, st.bits) in seen:
                break
            if not (flow.start <= addr < flow.end):
                problem(f"the {st.bits}-bit code at 0x{addr:x} is outside the ResetVector file")
                break
            if flow.instructions >= MAX_INSTRUCTIONS:
                problem(f"stopped after {MAX_INSTRUCTIONS} instructions")
                stack.clear()
                break
            seen.add((addr, st.bits))
            code = read(addr, min(15, flow.end - addr))
            ip = (addr - st.cs_base) & 0xFFFF if st.bits == 16 else addr
            insn = next(engine(_MODE_OF_BITS[st.bits]).disasm(code, ip, 1), None)
            if insn is None:
                problem(f"undecodable {st.bits}-bit code at 0x{addr:x}: {code[:4].hex()}")
                break
            flow.instructions += 1
            nxt = addr + insn.size
            m, ops = insn.mnemonic, insn.op_str
            text = f"{m} {ops}".strip()
            operands = [o.strip() for o in ops.split(",")] if ops else []
            pe_test, st.pe_test = st.pe_test, False

            def linear_of(target: int) -> int:
                return (st.cs_base + (target & 0xFFFF)) if st.bits == 16 else target

            if m == "mov" and len(operands) == 2 and operands[0] in ("cr0", "cr4"):
                reg = st.regs.get(_FAMILY.get(operands[1], ""), _Reg())
                if addr not in found:
                    found.add(addr)
                    flow.switches.append(Switch(addr, text, operands[0].upper(), st.bits, insn.size, reg.sets, reg.value))
                if operands[0] == "cr0" and reg.value is not None:
                    st.pe = bool(reg.value & CR0_PE)
            elif m == "wrmsr":
                ecx = st.regs.get("c", _Reg())
                if ecx.value is not None and ecx.value & 0xFFFFFFFF == IA32_EFER:
                    eax = st.regs.get("a", _Reg())
                    if addr not in found:
                        found.add(addr)
                        flow.switches.append(Switch(addr, text, "EFER", st.bits, insn.size, eax.sets, None))
                elif ecx.value is None:
                    problem(f"wrmsr at 0x{addr:x}: ECX not known from the code, the MSR it writes is unknown")
            elif m == "ljmp":
                target = _far_target(ops, st, read)
                if isinstance(target, str):
                    problem(f"far jump at 0x{addr:x} ({text}): {target}")
                else:
                    bits, base, offset = target
                    stack.append((base + offset, st.fork(bits=bits, cs_base=base, pe=True)))
                break
            elif m in ("jmp", "call") or (m.startswith("j") or m.startswith("loop")):
                target = _int(ops)
                if target is None:
                    if m == "jmp":
                        flow.exits.append((addr, text, st.bits))
                        break
                    # an indirect call returns: go on after it
                elif m == "jmp":
                    addr = linear_of(target)
                    continue
                else:
                    taken, fall = True, True
                    if pe_test and m in ("je", "jne"):
                        # `test al, 1` on CR0: jz is taken when PE=0. The path's PE decides;
                        # the other side runs in the other mode (module docstring).
                        taken = (m == "je") != st.pe
                        fall = not taken
                    if taken:
                        stack.append((linear_of(target), st.fork()))
                    if not fall:
                        break
            elif m in _END or m.startswith("ret"):
                break
            elif m == "lgdt":
                gdt = _gdt(ops, insn.bytes, st, read)
                if isinstance(gdt, str):
                    problem(f"lgdt at 0x{addr:x}: {gdt}")
                    st.gdt = None
                else:
                    st.gdt = gdt
            elif m == "test" and operands == ["al", "1"] and st.regs.get("a", _Reg()).source == "cr0":
                st.pe_test = True
            _track(st, m, operands)
            addr = nxt
    flow.exits.sort()
    return flow


def _int(text: str) -> int | None:
    try:
        return int(text.strip(), 0)
    except ValueError:
        return None


def _track(st: _State, m: str, operands: list[str]) -> None:
    """Follow constants moved into registers along this path; forget what an instruction writes."""
    for fam in _IMPLICIT.get(m, "").split():
        st.regs.pop(fam, None)
    if not operands:
        return
    dest = _FAMILY.get(operands[0])
    if dest is None or m in _READS_FIRST or m.startswith("j"):
        return
    src = operands[1] if len(operands) > 1 else None
    imm = _int(src) if src is not None else None
    old = st.regs.get(dest, _Reg())
    if m == "mov" and imm is not None:
        st.regs[dest] = _Reg(imm, imm)
    elif m == "mov" and src in ("cr0", "cr4"):
        st.regs[dest] = _Reg(None, 0, src)
    elif m == "xor" and src == operands[0]:
        st.regs[dest] = _Reg(0, 0)
    elif m == "bts" and imm is not None:
        st.regs[dest] = _Reg(None if old.value is None else old.value | 1 << imm, old.sets | 1 << imm, old.source)
    elif m == "or" and imm is not None:
        st.regs[dest] = _Reg(None if old.value is None else old.value | imm, old.sets | imm, old.source)
    else:
        st.regs.pop(dest, None)
    if m in ("xchg", "xadd", "cmpxchg") and src in _FAMILY:
        st.regs.pop(_FAMILY[src], None)


def _address(expr: str, st: _State) -> int | None:
    """The offset of a memory operand like `cs:[bx]`, `[eax]`, `[0x1234]` from known registers."""
    m = re.fullmatch(r"(?:\w+ ptr )?(?:(\w\w):)?\[([^\]]+)\]", expr.strip())
    if m is None:
        return None
    total = 0
    for term in m.group(2).split("+"):
        term = term.strip()
        if term in _FAMILY:
            reg = st.regs.get(_FAMILY[term])
            if reg is None or reg.value is None:
                return None
            total += reg.value & (0xFFFF if term in ("bx", "si", "di", "bp") else 0xFFFFFFFF)
        else:
            v = _int(term)
            if v is None:
                return None
            total += v
    seg = m.group(1)
    if st.bits == 16:
        if seg != "cs":
            return None          # DS in real mode is not followed; the reset vector uses cs: here
        return st.cs_base + (total & 0xFFFF)
    return total


def _gdt(ops: str, raw: bytes, st: _State, read) -> tuple[int, int] | str:
    """LGDT's pseudo-descriptor (Intel SDM vol. 2, LGDT): 16-bit limit, then a 32-bit base (24 bits
    with a 16-bit operand size, the `o32` prefix 66h making it 32 in 16-bit code)."""
    at = _address(ops, st)
    if at is None:
        return f"the operand {ops} is not known from the code"
    desc = read(at, 6)
    if desc is None:
        return f"the pseudo-descriptor at 0x{at:x} is not in the flash"
    limit, base = struct.unpack("<HI", desc)
    if st.bits == 16 and 0x66 not in raw[:raw.index(0x0F)]:
        base &= 0xFFFFFF
    return base, limit


def _far_target(ops: str, st: _State, read) -> tuple[int, int, int] | str:
    """(bits, CS base, offset) of `ljmp SEL:OFFSET` from the GDT descriptor SEL names (Intel SDM
    vol. 3A 3.4.5: base 31:0, D/B bit 54, L bit 53). L=1 is 64-bit code: the reset vector jumps
    there only after CR0.PG with EFER.LME has made IA-32e mode active."""
    sel, _, off = ops.partition(":")
    sel_v, off_v = _int(sel), _int(off)
    if sel_v is None or off_v is None:
        return "not a direct far jump"
    if st.gdt is None:
        return "no GDT loaded on this path"
    base, limit = st.gdt
    index = sel_v & ~7
    if sel_v & 4 or index + 7 > limit:
        return f"selector 0x{sel_v:x} is not in the GDT (limit 0x{limit:x})"
    desc = read(base + index, 8)
    if desc is None:
        return f"the GDT at 0x{base:x} is not in the flash"
    flags = desc[6]
    seg_base = desc[2] | desc[3] << 8 | desc[4] << 16 | desc[7] << 24
    bits = 64 if flags & 0x20 else 32 if flags & 0x40 else 16
    return bits, seg_base, off_v


# ---- live ----------------------------------------------------------------------------------------

class Walk(list):
    """The stops of walk_mode_switches (before/after pairs, then the exit's stop), and what went wrong."""

    def __init__(self, *args):
        super().__init__(*args)
        self.problems: list[str] = []
        self.switches: list[Switch] = []


def _session_image(session):
    for s in (session, getattr(session, "session", None)):     # a Recorder wraps the Session
        image = getattr(s, "image", None)
        if image is not None:
            return image
    return None


def walk_mode_switches(session, timeout: float = 30.0, image=None) -> Walk:
    """From the reset stop: a breakpoint on every switch and on the reset vector's exits, continue to
    each one hit, keep the stop there (before) and one step further (after); the exit's stop ends
    the walk (the instruction that jumps to SEC). Switches on paths not taken (SEV, TDX) are absent.
    Failures are `problems`, never exceptions."""
    walk = Walk()
    deadline = time.monotonic() + timeout
    image = image if image is not None else _session_image(session)
    if image is None:
        walk.problems.append("the session has no image to find the reset vector's switches in")
        return walk
    flow = follow_reset_vector(image)
    walk.switches = flow.switches
    walk.problems += flow.problems
    if not flow.switches:
        walk.problems.append("no CR0/CR4/EFER write found in the reset vector")
        return walk
    try:
        here = session.current()
    except Exception as e:      # noqa: BLE001 - a session's own failure is reported, not raised
        walk.problems.append(f"the session failed: {e}")
        return walk
    if here.mode != Mode.REAL or here.problems:
        walk.problems.append(f"not at the reset stop (at 0x{here.linear_rip:x} in {here.mode} mode"
                             f"{': ' + '; '.join(here.problems) if here.problems else ''})")
        return walk
    by_address = {s.address: s for s in flow.switches}
    exits = {a for a, _t, _b in flow.exits}
    existing = set(getattr(session, "breakpoints", {}) or {})
    ours: list[str] = []
    try:
        for address in sorted(set(by_address) | exits):
            spec = f"0x{address:x}"
            if spec in existing:
                continue
            session.add_breakpoint(spec)
            ours.append(spec)
        pending = set(by_address)
        # Until the exit (the jump to SEC) is hit, or, for code without one found, every switch.
        while pending or exits:
            left = deadline - time.monotonic()
            if left <= 0:
                walk.problems.append(f"timed out after {timeout} s with {len(pending)} switches not reached")
                break
            stop = session.cont(left)
            walk.append(stop)
            if stop.problems or stop.linear_rip not in by_address:
                if stop.linear_rip not in exits or stop.problems:
                    walk.problems.append(f"stopped at 0x{stop.linear_rip:x} ({stop.reason})"
                                         + (": " + "; ".join(stop.problems) if stop.problems else ""))
                break
            pending.discard(stop.linear_rip)
            spec = f"0x{stop.linear_rip:x}"
            if spec in ours:
                session.remove_breakpoint(spec)
                ours.remove(spec)
            after = session.step()
            walk.append(after)
            if after.problems:
                walk.problems.append(f"stepping at 0x{stop.linear_rip:x}: " + "; ".join(after.problems))
                break
    except Exception as e:      # noqa: BLE001 - ValueError/TargetError from a breakpoint: a problem
        walk.problems.append(f"{type(e).__name__}: {e}")
    finally:
        for spec in ours:
            try:
                session.remove_breakpoint(spec)
            except Exception as e:     # noqa: BLE001 - best effort, said
                walk.problems.append(f"removing breakpoint {spec}: {e}")
    return walk


# ---- the chapter ---------------------------------------------------------------------------------

def bit_names(mask: int, names: dict[int, str]) -> list[str]:
    return [names.get(i, f"bit {i}") for i in range(64) if mask >> i & 1]


def _register_of(text: str, rcx: int | None) -> str | None:
    m = re.match(r"mov (cr[04]), ", text)
    if m:
        return m.group(1).upper()
    if text == "wrmsr" and rcx is not None and rcx & 0xFFFFFFFF == IA32_EFER:
        return "EFER"
    return None


def _reg_key(register: str) -> str:
    return register.lower()


def mode_pairs(stops: list[Stop], image=None) -> list[tuple[Stop, Stop, str]]:
    """(before, after, register) for each switch the stops show: a stop whose instruction writes
    CR0/CR4/EFER (from its disassembly and RCX; at a switch of the image when one is given)
    followed by the step that executed it."""
    known = {s.address for s in find_mode_switches(image)} if image is not None else None
    out = []
    for before, after in zip(stops, stops[1:]):
        if after.reason != "step" or not before.disassembly:
            continue
        address, text = before.disassembly[0]
        if address != before.linear_rip or (known is not None and address not in known):
            continue
        register = _register_of(text, before.registers.get("rcx"))
        if register is not None:
            out.append((before, after, register))
    return out


def mode_chapter(stops: list[Stop], image=None) -> Chapter | None:
    """"to-long-mode": each CR0/CR4/EFER write the stops show, with the bits it changed, from the
    registers of the stop before and after it. None when there are no stops at all."""
    if not stops:
        return None
    pairs = mode_pairs(stops, image)
    first = pairs[0][0].index if pairs else stops[0].index
    w = Writer("to-long-mode", "reset", "From real mode to long mode", stop=first)
    if not pairs:
        w.unexpected("no stop shows the reset vector writing CR0, CR4 or EFER"
                     + ("; " + "; ".join(p for s in stops for p in s.problems) if any(s.problems for s in stops) else "")
                     + ": the mode switches cannot be told for this boot")
        return w.done()
    n = w.value("count", len(pairs))
    w.say("On the way from the reset vector to SEC the firmware changes the CPU's mode with {count} "
          "register writes, each watched here: the stop before it and one step after.", n)
    long_mode = False
    for k, (before, after, register) in enumerate(pairs):
        nxt = pairs[k + 1][0] if k + 1 < len(pairs) else None
        long_mode |= _tell(w, k, before, after, register, nxt)
    if not any(r == "CR0" and (b.registers.get("cr0", 0) ^ a.registers.get("cr0", 0)) & CR0_PE
               for b, a, r in pairs):
        w.unexpected("no CR0 write turned on protected mode (CR0.PE) at the stops shown")
    if not long_mode:
        w.unexpected("the CPU never entered long mode here (EFER.LMA stays 0): an IA32 build runs SEC in "
                     "32-bit protected mode")
    exit_stop = stops[-1]
    if exit_stop.reason != "step" and exit_stop.disassembly and exit_stop.disassembly[0][1].startswith("jmp "):
        reg = exit_stop.disassembly[0][1].split()[1]
        full = "r" + reg[1:] if exit_stop.mode == Mode.LONG64 and reg.startswith("e") else reg
        target = exit_stop.registers.get(full if full.startswith("r") else "r" + reg[1:])
        if target is not None:
            if exit_stop.mode != Mode.LONG64:
                target &= 0xFFFFFFFF
            vs = (w.value("exit", exit_stop.linear_rip), w.value("exit_insn", exit_stop.disassembly[0][1]),
                  w.value("sec_entry", target), _mode_value(w, "exit_mode", exit_stop.mode))
            w.say("At {exit}, `{exit_insn}` leaves the reset vector for SEC's entry at {sec_entry}, "
                  "in {exit_mode}.", *vs)
    w.try_this("r sec")
    return w.done()


def _bits_text(mask: int, register: str) -> str:
    names = bit_names(mask, BITS_OF[register])
    return ", ".join(names) if names else "none"


def _tell(w: Writer, k: int, before: Stop, after: Stop, register: str, nxt: Stop | None) -> bool:
    """The sentences for one switch; True when IA-32e mode is active after it."""
    key = _reg_key(register)
    old, new = before.registers.get(key, 0), after.registers.get(key, 0)
    bits = {Mode.REAL: 16, Mode.PROT16: 16, Mode.PROT32: 32, Mode.LONG64: 64}.get(before.mode, 0)
    s = f"_{k}"
    addr = w.value("at" + s, before.linear_rip)
    insn = w.value("insn" + s, before.disassembly[0][1])
    code = w.value("bits" + s, bits, text=f"{bits}-bit" if bits else str(before.mode))
    o = w.value("old" + s, old, text=f"0x{old:x}")
    nv = w.value("new" + s, new, text=f"0x{new:x}")
    set_mask, clear_mask = new & ~old, old & ~new
    sets = w.value("set" + s, set_mask, text=_bits_text(set_mask, register))
    head = f"At {{at{s}}} `{{insn{s}}}` ({{bits{s}}} code) writes {register}"
    if clear_mask:
        cleared = w.value("cleared" + s, clear_mask, text=_bits_text(clear_mask, register))
        w.say(head + f": {{old{s}}} -> {{new{s}}}, setting {{set{s}}} and clearing {{cleared{s}}}.",
              addr, insn, code, o, nv, sets, cleared)
    elif set_mask:
        w.say(head + f": {{old{s}}} -> {{new{s}}}, setting {{set{s}}}.", addr, insn, code, o, nv, sets)
    else:
        w.say(head + f", which stays {{old{s}}}.", addr, insn, code, o)
    efer_after = after.registers.get("efer", 0)
    mode_after = _mode_value(w, "mode" + s, after.mode)
    if register == "CR0" and set_mask & CR0_PE:
        w.say(("CR0.PE=1 is protected mode (Intel SDM vol. 3A 9.9.1, Switching to Protected Mode); CS still "
               "holds its real-mode segment, so right after it the CPU is in {mode%s}" % s), mode_after)
        if nxt is not None:
            cs = w.value("cs" + s, nxt.registers.get("cs"), text=f"0x{nxt.registers.get('cs', 0):x}")
            nmode = _mode_value(w, "next_mode" + s, nxt.mode)
            w.say(("and the far jump that follows loads code selector {cs%s}: the next stop is in {next_mode%s}."
                   % (s, s)), cs, nmode)
    if register == "CR4" and set_mask & CR4_PAE:
        w.say("CR4.PAE=1: physical-address extension, which IA-32e mode needs before paging is turned on "
              "(Intel SDM vol. 3A 9.8.5, Initializing IA-32e Mode).")
    if register == "CR4" and set_mask & CR4_LA57:
        w.say("CR4.LA57=1: the page tables will be walked from a PML5 table, 5-level paging (57-bit linear "
              "addresses).")
    if register == "EFER" and set_mask & EFER_LME:
        lma = w.value("lma" + s, bool(efer_after & EFER_LMA))
        w.say(("EFER.LME=1 enables IA-32e mode; it is not active yet (EFER.LMA: {lma%s}) until paging is on."
               % s), lma)
    active = bool(efer_after & EFER_LMA)
    if register == "CR0" and set_mask & CR0_PG:
        eo = before.registers.get("efer", 0)
        ev = (w.value("lme" + s, bool(eo & EFER_LME)), w.value("pae" + s, bool(before.registers.get("cr4", 0) & CR4_PAE)),
              w.value("efer_old" + s, eo, text=f"0x{eo:x}"), w.value("efer_new" + s, efer_after, text=f"0x{efer_after:x}"),
              w.value("lma" + s, active))
        if active:
            w.say(("CR0.PG=1 with EFER.LME ({lme%s}) and CR4.PAE ({pae%s}) set: the CPU sets EFER.LMA itself (EFER "
                   "{efer_old%s} -> {efer_new%s}, LMA: {lma%s}), IA-32e mode is active (Intel SDM vol. 3A 9.8.5)."
                   % (s, s, s, s, s)), *ev)
            cr4 = after.registers.get("cr4", 0)
            cr3 = after.registers.get("cr3", 0)
            levels = 5 if cr4 & CR4_LA57 else 4
            pv = (w.value("cr3" + s, cr3, text=f"0x{cr3:x}"), w.value("levels" + s, levels),
                  w.value("la57" + s, bool(cr4 & CR4_LA57)))
            w.say(("Paging now runs on the tables the reset vector built: CR3 {cr3%s}, {levels%s}-level (CR4.LA57: "
                   "{la57%s})." % (s, s, s)), *pv)
            w.say(("CS is still the 32-bit code segment (CS.L=0; the stop after it reads as {mode%s}), so in IA-32e "
                   "mode the CPU runs in compatibility mode until the far jump to the 64-bit code segment." % s),
                  mode_after)
            w.try_this(f"g 0x{cr3:x}")
        else:
            w.unexpected(f"CR0.PG was set at 0x{before.linear_rip:x} but EFER.LMA is 0 (EFER 0x{efer_after:x}): "
                         "paging without IA-32e mode")
    return active


def _mode_value(w: Writer, name: str, mode) -> Value:
    return w.value(name, str(mode), text=MODE_TEXT.get(Mode.of(str(mode)), str(mode)))


def switches_json(switches: list[Switch]) -> list[dict[str, Any]]:
    return [{"address": s.address, "text": s.text, "register": s.register, "bits": s.bits, "size": s.size,
             "sets": s.sets, "value": s.value} for s in switches]


__all__ = ["Switch", "Flow", "Walk", "find_mode_switches", "follow_reset_vector", "walk_mode_switches",
           "mode_chapter", "mode_pairs", "show"]
