"""The live pane's disassembly (inspector.live.disasm.disassemble_at) names the TDX instructions capstone 5
lacks by their bytes, as the offline disassembly does (one table, inspector.live.disasm.SEAM), and goes
on decoding after them. Encodings: Intel SDM vol. 2 and the Intel TDX module spec: TDCALL 66 0F 01 CC,
SEAMRET 66 0F 01 CD, SEAMOPS 66 0F 01 CE, SEAMCALL 66 0F 01 CF (ENCLS is NP 0F 01 CF)."""
from __future__ import annotations

import capstone

from decoders.memory import BytesMemory
from inspector.live.disasm import disassemble, disassemble_at, instructions

BASE = 0xFFFC4000
# TDCALL; mov rbx, rax; SEAMCALL; xor eax, eax; SEAMRET; SEAMOPS; ret
CODE = bytes.fromhex("660f01cc" "4889c3" "660f01cf" "31c0" "660f01cd" "660f01ce" "c3")


def test_capstone_alone_stops_at_tdcall_and_calls_seamcall_encls():
    """The premise: without the table the pane would show nothing at a TDCALL."""
    cs = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    assert list(cs.disasm(CODE, BASE)) == []
    assert [i.mnemonic for i in cs.disasm(bytes.fromhex("660f01cf"), 0)] == ["encls"]


def test_live_disassembly_names_tdcall_and_goes_on():
    mem = BytesMemory(CODE + bytes.fromhex("90") * 64, BASE)
    assert disassemble_at(mem, BASE, "long64", count=7) == [
        (BASE, "tdcall"), (BASE + 4, "mov rbx, rax"), (BASE + 7, "seamcall"), (BASE + 11, "xor eax, eax"),
        (BASE + 13, "seamret"), (BASE + 17, "seamops"), (BASE + 21, "ret")]
    assert disassemble_at(mem, BASE, "long64", count=2) == [(BASE, "tdcall"), (BASE + 4, "mov rbx, rax")]


def test_in_32_bit_code_too_and_near_the_end_of_memory():
    # 30 bytes of memory: the read of 8 x 15 bytes is retried with 60, then 30
    mem = BytesMemory(bytes.fromhex("660f01cc" "c3") + bytes.fromhex("90") * 25, BASE)
    assert disassemble_at(mem, BASE, "prot32", count=8) == [(BASE, "tdcall"), (BASE + 4, "ret")] + [
        (BASE + i, "nop") for i in range(5, 11)]


def test_real_mode_addresses_stay_linear_and_jumps_use_the_ip():
    # CS base 0x9F000, IP 0x10: TDCALL then `jmp $` (EB FE), whose target the CPU computes from IP
    assert disassemble(bytes.fromhex("660f01cc" "ebfe"), 0x9F010, "real", ip=0x10) == [
        (0x9F010, "tdcall"), (0x9F014, "jmp 0x14")]


def test_an_unknown_byte_still_ends_the_live_listing():
    # 0x06 (PUSH ES) is invalid in 64-bit mode (SDM vol. 2 opcode map): the pane stops there, a first
    # bad byte is shown as such
    assert disassemble(bytes.fromhex("660f01cc" "06" "c3"), BASE, "long64") == [(BASE, "tdcall")]
    assert disassemble(bytes.fromhex("06" "c3"), BASE, "long64") == [(BASE, "(bad) 06")]
    # the offline listing reads on past it (inspector/pe_disasm.py)
    assert [(a, r.hex(), t) for a, r, t in instructions(bytes.fromhex("06660f01ccc3"), 0, "long64", 8)] == [
        (0, "06", None), (1, "660f01cc", "tdcall"), (5, "c3", "ret")]
    assert disassemble(b"", BASE, "long64") == []
