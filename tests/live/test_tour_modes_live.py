"""The reset vector's mode switches on a real boot (inspector/tour/modes.py): walk_mode_switches
from the reset stop, then the "to-long-mode" chapter, under QEMU 7.2 (TCG).

QEMU is the oracle: at every stop of the walk (before each switch, one step after it, and at the
jump to SEC) the monitor's `info registers` is read on the same stopped CPU, and the stop's CR0,
CR3, CR4, EFER and EIP must equal it. The switch addresses are the ones objdump gives
(tests/inspector/test_tour_modes.py). Two boots: Debian 12's OVMF.fd (4-level), and our DEBUG
build on `-cpu max` with PagingLevel=5, whose reset vector turns on CR4.LA57
(OvmfPkg/ResetVector/Ia32/PageTables64.asm, Enable5LevelPaging); and Debian 12's Ia32X64
OVMF_CODE_4M.fd, whose reset vector stops at 32-bit protected mode (OvmfPkg/ResetVector/Main.asm,
ARCH_IA32). The bookworm walk is recorded (inspector/live/record.py) and its replay must tell the
same chapter. The reset vector runs in milliseconds; each boot goes only to SEC. QEMU is ended by
its PID; every wait is bounded.
"""
from __future__ import annotations

import re

import pytest

from inspector.image import load_image
from inspector.live.qemu import QemuProcess
from inspector.live.record import Recorder, load_recording
from inspector.live.session import Session
from inspector.tour.modes import CR0_PE, CR0_PG, CR4_LA57, CR4_PAE, EFER_LMA, EFER_LME, mode_chapter, mode_pairs, \
    walk_mode_switches
from tests.realdata import bookworm, firmware, tool

pytestmark = pytest.mark.live

MEMORY = "256M"
WALK_TIMEOUT = 60.0      # the reset vector takes milliseconds; generous for 2 loaded cores
SEC_TIMEOUT = 60.0
LA57_ARGS = ["-cpu", "max", "-fw_cfg", "name=opt/org.tianocode/PagingLevel,string=5"]
BOOKWORM_SWITCHES = [0xFFFFFEB4, 0xFFFFFEC4, 0xFFFFF89C, 0xFFFFF8B5, 0xFFFFF8E9]
BOOKWORM_EXIT = 0xFFFFFF49
# The DEBUG build, not TDX: the plain path's Enable5LevelPaging (the TDX AP/BSP ones are not run).
DEBUG_SWITCHES = [0xFFFFFEA4, 0xFFFFFEB4, 0xFFFFF6C7, 0xFFFFF50C, 0xFFFFF525, 0xFFFFF559]
DEBUG_EXIT = 0xFFFFFF4D


class Watched:
    """The session, reading the monitor's `info registers` right after each stop it returns."""

    def __init__(self, session: Session):
        self.session = session
        self.info: dict[int, str] = {}

    def _seen(self, stop):
        self.info[stop.index] = self.session.console("info registers")
        return stop

    def current(self):
        return self._seen(self.session.current())

    def cont(self, timeout: float = 60.0):
        return self._seen(self.session.cont(timeout))

    def step(self):
        return self._seen(self.session.step())

    def add_breakpoint(self, spec):
        return self.session.add_breakpoint(spec)

    def remove_breakpoint(self, spec):
        self.session.remove_breakpoint(spec)

    def console(self, line):
        return self.session.console(line)


def monitor_registers(text: str) -> dict[str, int]:
    """CR0, CR3, CR4, EFER and EIP/RIP from QEMU's `info registers` (target/i386/cpu-dump.c)."""
    out = {}
    for name, key in (("CR0", "cr0"), ("CR3", "cr3"), ("CR4", "cr4"), ("EFER", "efer")):
        out[key] = int(re.search(rf"\b{name}=([0-9a-f]+)", text).group(1), 16)
    m = re.search(r"\b[ER]IP=([0-9a-f]+)", text)
    out["rip"] = int(m.group(1), 16)
    cs = re.search(r"^CS =([0-9a-f]{4}) ([0-9a-f]+)", text, re.M)
    out["cs"], out["cs_base"] = int(cs.group(1), 16), int(cs.group(2), 16)
    return out


def boot(path, extra=(), record=None):
    """Reset, the walk (each stop's `info registers` read), then run_to("sec"); with `record`, the
    session is recorded as `fwinspect tour --record` records it (a Recorder around the Session)."""
    tool("qemu-system-x86_64", "qemu-system-x86")
    qemu = QemuProcess(path, memory=MEMORY, extra_args=list(extra)).start()
    try:
        session = Session(qemu.attach("rsp"), load_image(path), qemu)
        front = Recorder(session, record) if record is not None else session
        watched = Watched(front)
        reset = watched.current()
        walk = walk_mode_switches(watched, WALK_TIMEOUT)
        breakpoints_after = dict(session.breakpoints)
        sec = front.run_to("sec", SEC_TIMEOUT)
        return {"reset": reset, "walk": walk, "info": watched.info, "sec": sec, "image": session.image,
                "sec_entry": session.handoffs.static_entry("sec"), "breakpoints_after": breakpoints_after,
                "recording": record}
    finally:
        if record is not None:
            front.close()           # closes the session (QEMU too) and the recording
        qemu.close()


@pytest.fixture(scope="module")
def bookworm_boot(tmp_path_factory):
    return boot(bookworm("OVMF.fd"), record=tmp_path_factory.mktemp("modes") / "bookworm.jsonl")


@pytest.fixture(scope="module")
def la57_boot():
    return boot(firmware("ovmf-debug/OVMF.fd"), LA57_ARGS)


def check_stops_equal_the_monitor(b):
    walk = b["walk"]
    assert walk.problems == [] and len(walk) >= 2
    for stop in walk:
        theirs = monitor_registers(b["info"][stop.index])
        ours = stop.registers
        keys = ("cr0", "cr3", "cr4", "efer")
        assert {k: ours[k] for k in keys} == {k: theirs[k] for k in keys}, stop.index
        assert ours["rip"] & 0xFFFFFFFF == theirs["rip"] & 0xFFFFFFFF and ours["cs"] == theirs["cs"], stop.index
        ip = theirs["rip"] & (0xFFFF if stop.mode == "real" else ~0)
        assert stop.linear_rip == theirs["cs_base"] + ip, stop.index


def test_every_stop_of_the_walk_has_the_registers_info_registers_shows(bookworm_boot):
    check_stops_equal_the_monitor(bookworm_boot)


def test_the_walk_stops_at_each_switch_then_at_the_jump_to_sec(bookworm_boot):
    b = bookworm_boot
    walk = b["walk"]
    assert [s.linear_rip for s, _a, _r in mode_pairs(walk, b["image"])] == BOOKWORM_SWITCHES
    assert [s.reason for s in walk] == ["breakpoint", "step"] * len(BOOKWORM_SWITCHES) + ["breakpoint"]
    # each "after" is the instruction after the switch (its length from the disassembly addresses)
    for before, after, _r in mode_pairs(walk):
        assert after.linear_rip == before.disassembly[1][0]
    exit_stop = walk[-1]
    assert exit_stop.linear_rip == BOOKWORM_EXIT and exit_stop.disassembly[0][1] == "jmp rsi"
    assert exit_stop.registers["rsi"] == b["sec_entry"]


def test_pe_goes_0_to_1_at_the_first_switch_in_real_mode(bookworm_boot):
    b = bookworm_boot
    before, after, register = mode_pairs(b["walk"])[0]
    assert register == "CR0" and before.mode == "real" and before.registers["cs_base"] == 0xFFFF0000
    theirs = [monitor_registers(b["info"][s.index]) for s in (before, after)]
    assert theirs[0]["cr0"] & CR0_PE == 0 and theirs[1]["cr0"] & CR0_PE == CR0_PE
    assert after.mode == "prot16"                          # CS keeps its real-mode descriptor
    assert mode_pairs(b["walk"])[1][0].mode == "prot32"    # the far jump loaded the 32-bit CS


def test_long_mode_is_active_after_the_cr0_pg_write(bookworm_boot):
    b = bookworm_boot
    pairs = mode_pairs(b["walk"])
    pg = [(bf, af) for bf, af, r in pairs if r == "CR0" and (af.registers["cr0"] & ~bf.registers["cr0"]) & CR0_PG]
    assert len(pg) == 1
    before, after = pg[0]
    theirs = [monitor_registers(b["info"][s.index]) for s in (before, after)]
    assert theirs[0]["efer"] & (EFER_LME | EFER_LMA) == EFER_LME and theirs[0]["cr4"] & CR4_PAE
    assert theirs[1]["efer"] & EFER_LMA == EFER_LMA
    # the earlier switches: LME by the wrmsr, PAE by a CR4 write, each with LMA still 0
    lme = [(bf, af) for bf, af, r in pairs if r == "EFER"]
    assert len(lme) == 1 and lme[0][1].registers["efer"] & (EFER_LME | EFER_LMA) == EFER_LME
    assert b["walk"][-1].mode == "long64"


def test_the_chapter_tells_the_walk_with_the_monitor_s_values(bookworm_boot):
    b = bookworm_boot
    # as inspector/tour/run.py tells it: from all the boot's stops (reset, the walk, SEC)
    c = mode_chapter([b["reset"], *b["walk"], b["sec"]], b["image"])
    assert c.unexpected == [] and c.chapter == "to-long-mode" and c.stop == b["walk"][0].index
    v = {x.name: x.value for x in c.values}
    pairs = mode_pairs(b["walk"])
    pg_index = [i for i, (_b, _a, r) in enumerate(pairs) if r == "CR0"][-1]
    last_info = monitor_registers(b["info"][pairs[pg_index][1].index])
    assert v[f"cr3_{pg_index}"] == last_info["cr3"] and v[f"efer_new_{pg_index}"] == last_info["efer"]
    assert v[f"levels_{pg_index}"] == 4 and v["sec_entry"] == b["sec_entry"]
    first = monitor_registers(b["info"][pairs[0][1].index])
    assert v["new_0"] == first["cr0"] and f"-> 0x{first['cr0']:x}, setting PE" in c.text


def test_the_walk_leaves_no_breakpoint_and_run_to_sec_still_reaches_sec(bookworm_boot):
    b = bookworm_boot
    assert b["breakpoints_after"] == {}
    sec = b["sec"]
    assert sec.handoff == "sec" and sec.problems == [] and sec.linear_rip == b["sec_entry"] and sec.mode == "long64"


def test_5_level_the_reset_vector_s_cr4_write_sets_la57(la57_boot):
    b = la57_boot
    check_stops_equal_the_monitor(b)
    pairs = mode_pairs(b["walk"], b["image"])
    assert [s.linear_rip for s, _a, _r in pairs] == DEBUG_SWITCHES and b["walk"][-1].linear_rip == DEBUG_EXIT
    la57 = [(bf, af) for bf, af, r in pairs if r == "CR4" and (af.registers["cr4"] & ~bf.registers["cr4"]) & CR4_LA57]
    assert len(la57) == 1
    before, after = la57[0]
    theirs = [monitor_registers(b["info"][s.index]) for s in (before, after)]
    assert theirs[0]["cr4"] & CR4_LA57 == 0 and theirs[1]["cr4"] & CR4_LA57 == CR4_LA57
    assert theirs[1]["cr0"] & CR0_PG == 0           # LA57 is set before paging, as it must be (#GP otherwise)
    c = mode_chapter(b["walk"], b["image"])
    assert c.unexpected == [] and "CR4.LA57=1" in c.text
    v = {x.name: x.value for x in c.values}
    pg = [i for i, (_b, _a, r) in enumerate(pairs) if r == "CR0"][-1]
    assert v[f"levels_{pg}"] == 5 and v[f"la57_{pg}"] is True
    assert b["sec"].handoff == "sec" and b["sec"].registers["cr4"] & CR4_LA57


def test_the_replayed_recording_tells_the_same_chapter(bookworm_boot):
    """The chapter is computed from the stops alone: the recording's stops tell it word for word."""
    b = bookworm_boot
    replayed = load_recording(b["recording"])
    assert [s.index for s in replayed] == [b["reset"].index, *(s.index for s in b["walk"]), b["sec"].index]
    live = mode_chapter([b["reset"], *b["walk"], b["sec"]], b["image"])
    again = mode_chapter(replayed, b["image"])
    assert again.text == live.text and again.to_json() == live.to_json()


@pytest.fixture(scope="module")
def ia32_boot():
    return boot(bookworm("OVMF_CODE_4M.fd"))


def test_an_ia32_boot_stops_at_protected_mode_and_the_chapter_says_so(ia32_boot):
    b = ia32_boot
    check_stops_equal_the_monitor(b)
    pairs = mode_pairs(b["walk"], b["image"])
    assert [(s.linear_rip, r) for s, _a, r in pairs] == [(0xFFFFFF04, "CR0"), (0xFFFFFF14, "CR4")]
    exit_stop = b["walk"][-1]
    assert exit_stop.linear_rip == 0xFFFFFF7B and exit_stop.disassembly[0][1] == "jmp esi"
    assert exit_stop.mode == "prot32" and exit_stop.registers["rsi"] & 0xFFFFFFFF == b["sec_entry"]
    assert all(monitor_registers(b["info"][s.index])["efer"] & EFER_LMA == 0 for s in b["walk"])
    c = mode_chapter([b["reset"], *b["walk"], b["sec"]], b["image"])
    assert len(c.unexpected) == 1 and "never entered long mode" in c.unexpected[0]
    assert f"for SEC's entry at 0x{b['sec_entry']:x}, in 32-bit protected mode" in c.text
    assert b["sec"].handoff == "sec" and b["sec"].mode == "prot32"
