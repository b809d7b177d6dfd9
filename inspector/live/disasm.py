"""Disassembly at RIP with capstone, in the CPU's current mode, with the CS base in real mode.

The mode comes from CR0.PE, EFER.LMA and the CS descriptor (Registers.mode), never from gdb's
architecture setting, which QEMU's x86-64 register set makes wrong outside long mode; the address
is linear (CS.base + IP), 0xFFFFFFF0 right after reset.
"""
from __future__ import annotations

import capstone

from decoders.memory import Memory, Unreadable

# The longest x86 instruction is 15 bytes (Intel SDM vol. 2, 2.3.11).
MAX_INSN = 15
DEFAULT_COUNT = 8

_MODES = {"real": capstone.CS_MODE_16, "prot16": capstone.CS_MODE_16,
          "prot32": capstone.CS_MODE_32, "long64": capstone.CS_MODE_64}
_engines: dict[str, capstone.Cs] = {}


def engine(mode: str) -> capstone.Cs:
    if mode not in _engines:
        _engines[mode] = capstone.Cs(capstone.CS_ARCH_X86, _MODES.get(mode, capstone.CS_MODE_64))
    return _engines[mode]


def disassemble(code: bytes, address: int, mode: str, count: int = DEFAULT_COUNT,
                ip: int | None = None) -> list[tuple[int, str]]:
    """(linear address, "mnemonic operands") for up to `count` instructions of `code` at `address`.

    In 16-bit modes capstone decodes with the IP (offset in CS), so near jumps show the targets the
    CPU computes; the listed addresses stay linear. `ip` is the IP of code[0] (default: address)."""
    out: list[tuple[int, str]] = []
    start_ip = address if ip is None else ip
    for insn in engine(mode).disasm(code, start_ip, count):
        text = f"{insn.mnemonic} {insn.op_str}".strip()
        out.append((address + (insn.address - start_ip), text))
    if not out and code:
        out.append((address, f"(bad) {code[:1].hex()}"))
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
