"""The reset vector's CR0/CR4/EFER writes found in real images (inspector/tour/modes.py), and the
"to-long-mode" chapter told from stops.

Oracle: objdump (binutils) on the ResetVector file's bytes, each address in the bitness the walk
gives it (`-M i8086` for 16-bit, i386, `-M x86-64`): the expected tables below were read from its
listing (`objdump -D -b binary -m i386 -M i8086 --adjust-vma=START`, then i386 and x86-64 from
the addresses the far jumps land at), and test_each_switch_disassembles_so_in_objdump re-runs it.
"""
from __future__ import annotations

import subprocess

import pytest

from inspector.image import load_image
from inspector.live.session_api import Mode, Stop
from inspector.tour.modes import follow_reset_vector, mode_chapter, mode_pairs
from tests.realdata import bookworm, firmware, tool, trixie

PE, PAE, LME, PG, LA57 = 1, 1 << 5, 1 << 8, 1 << 31, 1 << 12

# (address, text, register, bits, bits the code sets): the order the walk meets them.
BOOKWORM = [
    (0xFFFFFEB4, "mov cr0, eax", "CR0", 16, 0x40000023),   # mov eax, 0x40000023 (2022.11's SEC_DEFAULT_CR0)
    (0xFFFFFEC4, "mov cr4, eax", "CR4", 32, 0x640),        # after ljmp 0x10:0xfffffebf
    (0xFFFFF89C, "mov cr4, eax", "CR4", 32, PAE),          # bts eax, 5
    (0xFFFFF8B5, "wrmsr", "EFER", 32, LME),                # mov ecx, 0xc0000080; rdmsr; bts eax, 8
    (0xFFFFF8E9, "mov cr0, eax", "CR0", 32, PG),           # bts eax, 0x1f; then ljmp 0x18 (64-bit)
]
TRIXIE = [
    (0xFFFFFEA4, "mov cr0, eax", "CR0", 16, 0x23),
    (0xFFFFFEB4, "mov cr4, eax", "CR4", 32, 0x640),
    (0xFFFFF71C, "mov cr4, eax", "CR4", 32, PAE),
    (0xFFFFF735, "wrmsr", "EFER", 32, LME),
    (0xFFFFF769, "mov cr0, eax", "CR0", 32, PG),
]
# The DEBUG build has PcdUse5LevelPageTable: Enable5LevelPaging on three paths of
# OvmfPkg/ResetVector/Ia32/PageTables64.asm (TDX AP, plain, TDX BSP), in that order in the file.
DEBUG = [
    (0xFFFFFEA4, "mov cr0, eax", "CR0", 16, 0x23),
    (0xFFFFFEB4, "mov cr4, eax", "CR4", 32, 0x640),
    (0xFFFFF5B1, "mov cr4, eax", "CR4", 32, LA57),
    (0xFFFFF50C, "mov cr4, eax", "CR4", 32, PAE),
    (0xFFFFF525, "wrmsr", "EFER", 32, LME),
    (0xFFFFF559, "mov cr0, eax", "CR0", 32, PG),
    (0xFFFFF6C7, "mov cr4, eax", "CR4", 32, LA57),
    (0xFFFFF900, "mov cr4, eax", "CR4", 32, LA57),
]
# (image, expected switches, the exit: address, text, bits)
IMAGES = {
    "bookworm": (lambda: bookworm("OVMF.fd"), BOOKWORM, (0xFFFFFF49, "jmp rsi", 64)),
    "trixie": (lambda: trixie("OVMF.fd"), TRIXIE, (0xFFFFFF4D, "jmp rsi", 64)),
    "debug": (lambda: firmware("ovmf-debug/OVMF.fd"), DEBUG, (0xFFFFFF4D, "jmp rsi", 64)),
}
OBJDUMP_MODE = {16: ["-M", "i8086"], 32: [], 64: ["-M", "x86-64"]}
OBJDUMP_TEXT = {"mov cr0, eax": "mov    %eax,%cr0", "mov cr4, eax": "mov    %eax,%cr4", "wrmsr": "wrmsr",
                "jmp rsi": "jmp    *%rsi", "jmp esi": "jmp    *%esi"}

_flows: dict = {}


def flow_of(name: str):
    if name not in _flows:
        get, _, _ = IMAGES[name]
        image = load_image(get())
        _flows[name] = (image, follow_reset_vector(image))
    return _flows[name]


@pytest.mark.parametrize("name", IMAGES)
def test_the_switches_are_found_at_objdump_s_addresses_with_their_bitness(name):
    _, flow = flow_of(name)
    _, expected, exit_ = IMAGES[name]
    assert flow.problems == []
    assert [(s.address, s.text, s.register, s.bits, s.sets) for s in flow.switches] == expected
    assert flow.exits == [exit_]
    assert flow.end == 1 << 32


@pytest.mark.parametrize("name", IMAGES)
def test_the_usual_sequence_pe_in_16_bit_then_pae_lme_pg_in_32_bit(name):
    _, flow = flow_of(name)
    order = [(s.register, s.bits, s.sets) for s in flow.switches if s.register != "CR4" or s.sets != LA57]
    pe, cr4, pae, lme, pg = order
    assert pe[0] == "CR0" and pe[1] == 16 and pe[2] & PE
    assert cr4 == ("CR4", 32, 0x640)            # SEC_DEFAULT_CR4, right after the far jump
    assert (pae, lme, pg) == (("CR4", 32, PAE), ("EFER", 32, LME), ("CR0", 32, PG))
    # The PE write moves a constant: the whole value is known.
    assert flow.switches[0].value == pe[2]


@pytest.mark.parametrize("name", IMAGES)
def test_each_switch_disassembles_so_in_objdump(name, tmp_path):
    objdump = tool("objdump", "binutils")
    image, flow = flow_of(name)
    blob = tmp_path / "resetvector.bin"
    blob.write_bytes(bytes(image.data)[len(image.data) - ((1 << 32) - flow.start):])
    for address, text, bits in [(s.address, s.text, s.bits) for s in flow.switches] + flow.exits:
        out = subprocess.run([objdump, "-D", "-b", "binary", "-m", "i386", *OBJDUMP_MODE[bits],
                              f"--adjust-vma=0x{flow.start:x}", f"--start-address=0x{address:x}",
                              f"--stop-address=0x{address + 1:x}", str(blob)],
                             capture_output=True, text=True, timeout=60)
        line = [ln for ln in out.stdout.splitlines() if ln.strip().startswith(f"{address:x}:")]
        assert line and line[0].split("\t")[-1].strip() == OBJDUMP_TEXT[text], (hex(address), out.stdout[-500:])


def test_an_ia32_reset_vector_has_no_long_mode_switch():
    """Debian 12's OVMF_CODE_4M.fd is Ia32X64: the reset vector enters 32-bit protected mode and
    jumps to a 32-bit SEC (OvmfPkg/ResetVector/Main.asm, ARCH_IA32)."""
    image = load_image(bookworm("OVMF_CODE_4M.fd"))
    flow = follow_reset_vector(image)
    assert flow.problems == []
    assert [(s.address, s.text, s.register, s.bits, s.sets) for s in flow.switches] == [
        (0xFFFFFF04, "mov cr0, eax", "CR0", 16, 0x40000023), (0xFFFFFF14, "mov cr4, eax", "CR4", 32, 0x640)]
    assert flow.exits == [(0xFFFFFF7B, "jmp esi", 32)]


# ---- the chapter from stops ----------------------------------------------------------------------

def _stop(i, reason, mode, rip, text, **regs):
    r = {"cr0": 0x60000010, "cr3": 0, "cr4": 0, "efer": 0, "rcx": 0, "cs": 0xF000, "rsi": 0}
    r.update(regs)
    return Stop(i, reason, "reset", mode, rip, r, disassembly=[(rip, text)] if text else [])


def test_the_chapter_tells_each_bit_from_the_registers_of_the_stops():
    # Registers as a bookworm boot shows them (tests/live/test_tour_modes_live.py checks them against QEMU).
    s = [
        _stop(0, "reset", Mode.REAL, 0xFFFFFFF0, "mov eax, cr0"),
        _stop(1, "breakpoint", Mode.REAL, 0xFFFFFEB4, "mov cr0, eax"),
        _stop(2, "step", Mode.PROT16, 0xFFFFFEB7, "ljmp 0x10:0xfffffebf", cr0=0x40000033),
        _stop(3, "breakpoint", Mode.PROT32, 0xFFFFFEC4, "mov cr4, eax", cr0=0x40000033, cs=0x10),
        _stop(4, "step", Mode.PROT32, 0xFFFFFEC7, "mov ax, 8", cr0=0x40000033, cr4=0x640, cs=0x10),
        _stop(5, "breakpoint", Mode.PROT32, 0xFFFFF89C, "mov cr4, eax", cr0=0x40000033, cr4=0x640, cs=0x10,
              cr3=0x800000),
        _stop(6, "step", Mode.PROT32, 0xFFFFF89F, "xor ebx, ebx", cr0=0x40000033, cr4=0x660, cs=0x10, cr3=0x800000),
        _stop(7, "breakpoint", Mode.PROT32, 0xFFFFF8B5, "wrmsr", cr0=0x40000033, cr4=0x660, cs=0x10, cr3=0x800000,
              rcx=0xC0000080),
        _stop(8, "step", Mode.PROT32, 0xFFFFF8B7, "xor ebx, ebx", cr0=0x40000033, cr4=0x660, cs=0x10,
              cr3=0x800000, efer=0x100),
        _stop(9, "breakpoint", Mode.PROT32, 0xFFFFF8E9, "mov cr0, eax", cr0=0x40000033, cr4=0x660, cs=0x10,
              cr3=0x800000, efer=0x100),
        _stop(10, "step", Mode.PROT32, 0xFFFFF8EC, "ljmp 0x18:0xfffff8f3", cr0=0xC0000033, cr4=0x660, cs=0x10,
              cr3=0x800000, efer=0x500),
        _stop(11, "breakpoint", Mode.LONG64, 0xFFFFFF49, "jmp rsi", cr0=0xC0000033, cr4=0x660, cs=0x18,
              cr3=0x800000, efer=0x500, rsi=0xFFFCC094),
        # run.py tells the chapter from all the boot's stops: the handoffs follow
        _stop(12, "handoff", Mode.LONG64, 0xFFFCC094, "mov rsp, rax", cr0=0xC0000033, cr4=0x660, cs=0x38,
              cr3=0x800000, efer=0x500),
    ]
    s[-1].handoff = "sec"
    assert [(b.index, a.index, r) for b, a, r in mode_pairs(s)] == [(1, 2, "CR0"), (3, 4, "CR4"), (5, 6, "CR4"),
                                                                    (7, 8, "EFER"), (9, 10, "CR0")]
    c = mode_chapter(s)
    assert c.chapter == "to-long-mode" and c.phase == "reset" and c.stop == 1 and c.unexpected == []
    v = {x.name: x for x in c.values}
    # 0x40000023 written over the reset value 0x60000010: NW cleared, ET stays 1 (Intel SDM vol. 3A 9.1.1).
    assert (v["old_0"].value, v["new_0"].value, v["set_0"].text, v["cleared_0"].text) == (
        0x60000010, 0x40000033, "PE, MP, NE", "NW")
    assert "the next stop is in 32-bit protected mode" in c.text and v["cs_0"].value == 0x10
    assert v["set_1"].text == "MCE, OSFXSR, OSXMMEXCPT"
    assert v["set_2"].text == "PAE" and "CR4.PAE=1" in c.text
    assert v["set_3"].text == "LME" and v["lma_3"].value is False
    assert v["set_4"].text == "PG" and v["lma_4"].value is True and v["efer_new_4"].value == 0x500
    assert v["cr3_4"].value == 0x800000 and v["levels_4"].value == 4
    assert v["sec_entry"].value == 0xFFFCC094 and "leaves the reset vector for SEC's entry at 0xfffcc094" in c.text
    # A register's old and new values link to the registers node of the stop before and after the
    # switch, with the register as the field; the others are values of the stops themselves.
    for x in c.values:
        if x.name.startswith(("old_", "new_")):
            assert x.kind == "cpu-registers" and x.node.get(x.field) == x.value, x
        else:
            assert x.node is None, x
    assert v["old_0"].field == "cr0" and v["new_3"].field == "efer"
    assert c.command == ("fwinspect qemu IMAGE --break 0xfffffeb4 --break 0xfffffec4 --break 0xfffff89c "
                         "--break 0xfffff8b5 --break 0xfffff8e9")


def test_an_ia32_boot_s_chapter_says_long_mode_never_came():
    s = [_stop(0, "breakpoint", Mode.REAL, 0xFFFFFF04, "mov cr0, eax"),
         _stop(1, "step", Mode.PROT16, 0xFFFFFF07, "ljmp 0x10:0xffffff0f", cr0=0x40000033)]
    c = mode_chapter(s)
    assert len(c.unexpected) == 1 and "never entered long mode" in c.unexpected[0]
    assert c.text.count("Not as usual:") == 1


def test_no_switch_in_the_stops_is_said_not_invented():
    s = [_stop(0, "interrupt", Mode.REAL, 0xFFFFFFF0, "mov eax, cr0"),
         _stop(1, "interrupt", Mode.REAL, 0xFFFFFFF0, "mov eax, cr0"),
         _stop(2, "handoff", Mode.LONG64, 0xFFFCC094, "mov rsp, rax")]
    s[1].problems, s[2].problems, s[2].handoff = ["target refused a request: E01"], ["later"], "sec"
    c = mode_chapter(s)
    assert c.unexpected == ["no stop shows the reset vector writing CR0, CR4 or EFER; target refused a request: "
                            "E01: the mode switches cannot be told for this boot"]
    assert mode_chapter([]) is None


def test_a_wrmsr_to_another_msr_is_not_an_efer_switch():
    s = [_stop(0, "breakpoint", Mode.PROT32, 0xFFFFF000, "wrmsr", rcx=0xC0010130),
         _stop(1, "step", Mode.PROT32, 0xFFFFF002, "nop")]
    assert mode_pairs(s) == []


# ---- walk_mode_switches: failures are problems, never exceptions ------------------------------------

class FakeSession:
    """Just enough of a SessionLike: at the reset stop; breakpoints refused when `refuse`."""

    def __init__(self, image, refuse: Exception | None = None, mode=Mode.REAL):
        self.image, self.refuse, self.mode = image, refuse, mode
        self.added, self.removed = [], []

    def current(self):
        return _stop(0, "reset", self.mode, 0xFFFFFFF0, "mov eax, cr0")

    def add_breakpoint(self, spec):
        if self.refuse is not None and len(self.added) == 2:
            raise self.refuse
        self.added.append(spec)

    def remove_breakpoint(self, spec):
        self.removed.append(spec)

    def cont(self, timeout=60.0):
        raise AssertionError("not reached")


def test_a_refused_breakpoint_is_a_problem_and_the_ones_set_are_removed():
    from inspector.live.target import TargetError
    from inspector.tour.modes import walk_mode_switches

    image, _ = flow_of("bookworm")
    s = FakeSession(image, refuse=TargetError("E01"))
    walk = walk_mode_switches(s, 5.0)
    assert list(walk) == [] and walk.problems == ["TargetError: E01"]
    assert s.removed == s.added and len(s.added) == 2


def test_a_walk_not_started_at_the_reset_stop_says_so():
    from inspector.tour.modes import walk_mode_switches

    image, _ = flow_of("bookworm")
    walk = walk_mode_switches(FakeSession(image, mode=Mode.LONG64), 5.0)
    assert list(walk) == [] and walk.problems == ["not at the reset stop (at 0xfffffff0 in long64 mode)"]


def test_a_recorder_wrapped_session_gives_the_walk_its_image():
    from inspector.tour.modes import walk_mode_switches

    class Wrapper:          # as inspector.live.record.Recorder holds the Session
        def __init__(self, session):
            self.session = session

        def current(self):
            return self.session.current()

        def add_breakpoint(self, spec):
            return self.session.add_breakpoint(spec)

        def remove_breakpoint(self, spec):
            self.session.remove_breakpoint(spec)

    image, _ = flow_of("bookworm")
    walk = walk_mode_switches(Wrapper(FakeSession(image, refuse=ValueError("replay: read-only"))), 5.0)
    assert walk.problems == ["ValueError: replay: read-only"] and len(walk.switches) == 5


def test_garbage_in_the_reset_vector_gives_problems_not_exceptions():
    """The file's code replaced by seeded random bytes (its FFS header kept): the walk ends, bounded,
    and what it could not follow is a located problem."""
    import random

    from inspector.tour.resetcode import MAX_INSTRUCTIONS

    path = bookworm("OVMF.fd")
    data = path.read_bytes()
    image, flow = flow_of("bookworm")
    start = len(data) - ((1 << 32) - flow.start)
    rng = random.Random(1)
    problems = 0
    for _ in range(6):
        body = bytes(rng.getrandbits(8) for _ in range(len(data) - start))
        bad = follow_reset_vector(load_image(path, data=data[:start] + body))
        assert bad.start == flow.start and bad.instructions <= MAX_INSTRUCTIONS
        assert all(isinstance(p, str) and "0x" in p for p in bad.problems)
        problems += bool(bad.problems)
    assert problems >= 3
