"""Disassembly at RIP with capstone, in the CPU's current mode, with the CS base in real mode.

The mode comes from CR0.PE, EFER.LMA and the CS descriptor (Registers.mode), never from gdb's
architecture setting, which QEMU's x86-64 register set makes wrong outside long mode; the address
is linear (CS.base + IP), 0xFFFFFFF0 right after reset.

The TDX instructions capstone 5 does not know are named by their bytes (SEAM): the live pane and the
offline disassembly (inspector/pe_disasm.py) both decode through instructions() here.
"""
from __future__ import annotations

from typing import Iterator

import capstone

from decoders.memory import Memory, Unreadable

# The longest x86 instruction is 15 bytes (Intel SDM vol. 2, 2.3.11).
MAX_INSN = 15
DEFAULT_COUNT = 8

_MODES = {"real": capstone.CS_MODE_16, "prot16": capstone.CS_MODE_16,
          "prot32": capstone.CS_MODE_32, "long64": capstone.CS_MODE_64}
_engines: dict[str, capstone.Cs] = {}
# The TDX instructions (Intel SDM vol. 2, "TDCALL", "SEAMCALL", "SEAMRET", "SEAMOPS": 66 0F 01 CC..CF;
# Intel TDX Module spec, "TDCALL"), which capstone 5 does not know: TDCALL stops it (TDVF's SEC and every
# TDX guest library use it) and 66 0F 01 CF comes out as ENCLS (which is NP 0F 01 CF).
SEAM = {bytes.fromhex("660f01cc"): "tdcall", bytes.fromhex("660f01cd"): "seamret",
        bytes.fromhex("660f01ce"): "seamops", bytes.fromhex("660f01cf"): "seamcall"}
SEAM_SIZE = 4


def engine(mode: str) -> capstone.Cs:
    if mode not in _engines:
        _engines[mode] = capstone.Cs(capstone.CS_ARCH_X86, _MODES.get(mode, capstone.CS_MODE_64))
    return _engines[mode]


def instructions(code: bytes, address: int, mode: str, count: int,
                 ip: int | None = None) -> Iterator[tuple[int, bytes, str | None]]:
    """Up to `count` (linear address, bytes, "mnemonic operands") of `code` at `address`: capstone's,
    the TDX instructions named by their bytes (SEAM). A byte neither knows comes as (address, that
    byte, None), and decoding goes on after it if the caller reads on.

    In 16-bit modes capstone decodes with the IP (offset in CS), so near jumps show the targets the
    CPU computes; the addresses stay linear. `ip` is the IP of code[0] (default: address)."""
    cs = engine(mode)
    start_ip = address if ip is None else ip
    pos = n = 0
    while n < count and pos < len(code):
        for insn in cs.disasm(code[pos:], start_ip + pos, count - n):
            raw = bytes(insn.bytes)
            yield address + pos, raw, SEAM.get(raw) or f"{insn.mnemonic} {insn.op_str}".strip()
            pos += insn.size
            n += 1
        if n >= count or pos >= len(code):
            return
        known = SEAM.get(bytes(code[pos:pos + SEAM_SIZE]))
        if known is not None:
            yield address + pos, bytes(code[pos:pos + SEAM_SIZE]), known
            pos += SEAM_SIZE
        else:
            yield address + pos, bytes(code[pos:pos + 1]), None
            pos += 1
        n += 1


def disassemble(code: bytes, address: int, mode: str, count: int = DEFAULT_COUNT,
                ip: int | None = None) -> list[tuple[int, str]]:
    """(linear address, "mnemonic operands") for up to `count` instructions of `code` at `address`
    (instructions()), up to the first byte nothing decodes: "(bad) XX" when that is the first."""
    out: list[tuple[int, str]] = []
    for at, raw, text in instructions(code, address, mode, count, ip):
        if text is None:
            if not out:
                out.append((at, f"(bad) {raw.hex()}"))
            break
        out.append((at, text))
    return out


def disassemble_at(memory: Memory, linear: int, mode: str, count: int = DEFAULT_COUNT,
                   ip: int | None = None) -> list[tuple[int, str]]:
    """Read enough bytes at `linear` and disassemble; a shorter read near the end of memory is retried
    with fewer bytes; an unreadable address gives one line saying so."""
    size = count * MAX_INSN
    while size > 0:
        try:
            code = memory.read(linear, size)
        except Unreadable:
            if size <= MAX_INSN:
                break
            size //= 2
            continue
        return disassemble(code, linear, mode, count, ip)
    return [(linear, "(unreadable)")]
