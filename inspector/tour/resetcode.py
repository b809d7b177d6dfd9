"""The reset vector's CR0, CR4 and EFER writes between reset and SEC, found in the image by
following its code (inspector/tour/modes.py watches them on a live boot and tells the chapter).

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

Mode switching: Intel SDM vol. 3A (253668-032US) 9.9.1 "Switching to Protected Mode" and 9.8.5
"Initializing IA-32e Mode" (chapter 10 in editions from 2023).
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

from decoders.model import Node
from inspector.live.disasm import engine

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
        flow.problems.append("no ResetVector file (FFS RAW 1BA0062E-C779-4582-8566-336AE8F78F09) at the top of "
                             "the flash")
        return flow
    body = next((c for c in ffs.children if c.kind == "data"), ffs)
    flow.start, flow.end = flash_base + body.offset, flash_base + body.offset + body.size
    if flow.end != FOUR_GIB:
        flow.problems.append(f"the ResetVector file ends at 0x{flow.end:x}, not at 4 GiB: the reset vector is "
                             "elsewhere")

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
                    flow.switches.append(Switch(addr, text, operands[0].upper(), st.bits, insn.size, reg.sets,
                                                reg.value))
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
