"""The live screen's CPU list: every vCPU at a stop, selecting one, stepping it, and a breakpoint
an application processor hit.

`CpuSession` plays three stops of a 4-CPU guest the way the contract of `SessionLike.select_cpu`
says (inspector/live/session_api.py): a selection re-presents the current stop about that CPU,
and `step()` steps the selected CPU. The stops are made by hand:

- stop 0, the SEC entry handoff of Debian's OVMF_CODE_4M (tests/views/live_helpers.py
  `real_stops`: registers measured on QEMU 7.2, disassembly from the image's bytes) on CPU 0,
  with CPUs 1-3 still at the reset state waiting for INIT-SIPI-SIPI (Intel SDM vol. 3A 9.4) --
  CS 0xF000 based at 0xFFFF0000, IP 0xFFF0 (9.1.4): the measured reset stop's registers;
- stop 1, CPU 3 stopped at a breakpoint in PEI with CPU 1 halted: addresses, registers and
  instructions made up for the test (not measured);
- stop 2, one instruction stepped on whichever CPU was selected.

Every expected row, register and line below is written out from those values, not read back
from the screen.
"""
from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading

import pytest
from textual.color import Color

from inspector.live.cpus import stop_note
from inspector.live.record import Recorder, ReplaySession
from inspector.live.session_api import CpuState, CpuView, Mode, Phase, Stop
from tests.realdata import ROOT, bookworm, tool
from tests.views.live_helpers import SIZE, FakeSession, real_stops, registers, shown_index, wait_for
from views.live_app import LiveApp
from views.screens.help import HelpScreen
from views.widgets.cpu_list import CpuList

# Stop 1 (made up): CPU 3 hit a breakpoint in CpuMpPei; CPU 0 runs in the PEI core, CPU 2 in
# CpuMpPei too, CPU 1 is halted in its hlt loop.
AP_BREAKPOINT = 0x7FE9C0A0
PEI_CORE_RIP = 0x7FEE1D2C
AP_RUNNING_RIP = 0x7FE9C0C4
AP_HLT_RIP = 0x7FE9C1B4
AP_STACKS = {1: 0x7FE7F000, 2: 0x7FE7E000, 3: 0x7FE7D000}
LONG_SEGMENTS = dict(cs=0x38, ss=0x30, ds=0x30, es=0x30, fs=0x30, gs=0x30, cr0=0x80010033, cr3=0x7FC01000,
                     cr4=0x668, efer=0x500)
PEI_LINES = {
    PEI_CORE_RIP: [(0x7FEE1D2C, "mov rax, qword ptr [rsp + 0x28]"), (0x7FEE1D31, "test rax, rax"),
                   (0x7FEE1D34, "je 0x7fee1d50")],
    AP_RUNNING_RIP: [(0x7FE9C0C4, "pause"), (0x7FE9C0C6, "cmp dword ptr [rbx], 0"), (0x7FE9C0C9, "je 0x7fe9c0c4")],
    AP_HLT_RIP: [(0x7FE9C1B3, "cli"), (0x7FE9C1B4, "hlt"), (0x7FE9C1B5, "jmp 0x7fe9c1b3")],
    AP_BREAKPOINT: [(0x7FE9C0A0, "push rbx"), (0x7FE9C0A1, "sub rsp, 0x20"), (0x7FE9C0A5, "mov rbx, rcx")],
}


def cpu_view(index: int, stop: Stop, state: CpuState) -> CpuView:
    return CpuView(index, str(index + 1), stop.mode, stop.linear_rip, stop.phase, stop.module, state,
                   dict(stop.registers), "info cpus")


def pei_cpu(index: int, rip: int, module: str, state: CpuState) -> CpuView:
    regs = registers(rip=rip, eflags=0x246 if state == CpuState.HALTED else 0x202, rsp=AP_STACKS.get(index, 0x7FEF0000),
                     rbx=0x7FE80000 + index, **LONG_SEGMENTS)
    return CpuView(index, str(index + 1), Mode.LONG64, rip, Phase.PEI_CORE, module, state, regs, "info cpus")


def as_stop(index: int, reason: str, cpus: list[CpuView], cpu: int, lines: dict[int, list]) -> Stop:
    """A stop about CPU `cpu` of `cpus`: its registers, mode, RIP, phase, module and instructions."""
    me = cpus[cpu]
    return Stop(index, reason, me.phase, me.mode, me.linear_rip, dict(me.registers), module=me.module,
                disassembly=lines[me.linear_rip], cpus=cpus, cpu=cpu)


def four_cpu_stops() -> tuple[list[Stop], dict[int, list]]:
    """Stops 0 and 1 of the module docstring, and the instructions at every RIP they hold."""
    reset, sec, _ = real_stops()
    lines = {reset.linear_rip: reset.disassembly, sec.linear_rip: sec.disassembly, **PEI_LINES}
    at_sec = [cpu_view(0, sec, CpuState.RUNNING)] + [cpu_view(i, reset, CpuState.WAIT_FOR_SIPI) for i in (1, 2, 3)]
    stop0 = as_stop(0, "handoff", at_sec, 0, lines)
    stop0.handoff = "sec"
    in_pei = [pei_cpu(0, PEI_CORE_RIP, "PeiCore", CpuState.RUNNING),
              pei_cpu(1, AP_HLT_RIP, "CpuMpPei", CpuState.HALTED),
              pei_cpu(2, AP_RUNNING_RIP, "CpuMpPei", CpuState.RUNNING),
              pei_cpu(3, AP_BREAKPOINT, "CpuMpPei", CpuState.RUNNING)]
    stop1 = as_stop(1, "breakpoint", in_pei, 3, lines)
    # As Session does (inspector/live/cpus.py stop_note); the status line does not repeat it.
    stop1.problems = [stop_note("breakpoint", 3, 4)]
    return [stop0, stop1], lines


# The instruction after each RIP a step starts from (the next line of its disassembly).
def next_rip(lines: dict[int, list], rip: int) -> int:
    at = [a for a, _ in lines[rip]]
    return at[at.index(rip) + 1]


class CpuSession(FakeSession):
    """FakeSession with `select_cpu`: the current stop about another CPU; `step` steps the
    selected CPU (only its RIP moves) and records which one it stepped."""

    def __init__(self, stops: list[Stop], lines: dict[int, list], **kw):
        super().__init__(stops, **kw)
        self.lines = lines
        self.selected: int | None = None
        self.shown: Stop | None = None
        self.stepped: list[int] = []

    def _current(self) -> Stop:
        return self.stops[self.position]

    def next_handoff(self, timeout: float = 60.0) -> Stop:
        self.selected = None
        return super().next_handoff(timeout)

    def select_cpu(self, index: int) -> Stop:
        self._call("select_cpu")
        self.selected = index
        about = as_stop(0, "", self._current().cpus, index, self.lines)
        self.shown = dataclasses.replace(self._current(), cpu=index, registers=about.registers, mode=about.mode,
                                   linear_rip=about.linear_rip, phase=about.phase, module=about.module,
                                   disassembly=about.disassembly)
        return self.shown

    def cont(self, timeout: float = 60.0) -> Stop:
        self._call("cont")
        if self.block_cont:
            # Bounded: a test that never interrupts fails instead of hanging.
            assert self.released.wait(10), "cont() was never interrupted"
        return self.next_handoff(timeout)

    def step(self) -> Stop:
        self._call("step")
        here = self._current()
        cpu = here.cpu if self.selected is None else self.selected
        me = here.cpus[cpu]
        if me.state in (CpuState.HALTED, CpuState.WAIT_FOR_SIPI):
            # As Session.step: the stop shown, with a problem saying why nothing was stepped.
            shown = self.shown if self.selected is not None else here
            return dataclasses.replace(shown, problems=[*shown.problems, f"CPU {cpu} is {me.state}: not stepped"])
        self.stepped.append(cpu)
        rip = next_rip(self.lines, me.linear_rip)
        self.lines.setdefault(rip, [line for line in self.lines[me.linear_rip] if line[0] >= rip])
        moved = dataclasses.replace(me, linear_rip=rip, registers=dict(me.registers, rip=rip))
        cpus = [moved if c.index == cpu else c for c in here.cpus]
        stop = as_stop(here.index + 1, "step", cpus, cpu, self.lines)
        self.stops.append(stop)
        self.position = len(self.stops) - 1
        return stop


def row(mark: str, index: int, state: str, mode: str, rip: str, phase: str, module: str, stop: str = "") -> str:
    return " | ".join((mark, str(index), state, mode, rip, phase, module, stop))


# Stop 0 as the list shows it: CPU 0 shown and the handoff's CPU.
STOP0_ROWS = [
    row("▶", 0, "running", "prot32", "fffceb84", "SEC", "SecMain", "handoff"),
    row(" ", 1, "wait-for-SIPI", "real", "fffffff0", "reset", "ResetVector"),
    row(" ", 2, "wait-for-SIPI", "real", "fffffff0", "reset", "ResetVector"),
    row(" ", 3, "wait-for-SIPI", "real", "fffffff0", "reset", "ResetVector"),
]
STOP1_ROWS = [
    row(" ", 0, "running", "long64", "000000007fee1d2c", "PEI core", "PeiCore"),
    row(" ", 1, "halted", "long64", "000000007fe9c1b4", "PEI core", "CpuMpPei"),
    row(" ", 2, "running", "long64", "000000007fe9c0c4", "PEI core", "CpuMpPei"),
    row("▶", 3, "running", "long64", "000000007fe9c0a0", "PEI core", "CpuMpPei", "breakpoint"),
]


def disassembly_lines(lines: list[tuple[int, str]], rip: int) -> list[str]:
    return [f"{'→' if a == rip else ' '} {a:08x}  {text}" for a, text in lines]


async def start(pilot, app, index: int = 0) -> None:
    await wait_for(pilot, lambda: shown_index(app) == index)


def select_calls(session) -> list:
    return [t for name, t in session.calls if name == "select_cpu"]


@pytest.mark.asyncio
class TestCpuList:
    async def test_four_cpus_are_listed_with_state_mode_rip_phase_and_module(self):
        """At the SEC handoff the list has one row per CPU: CPU 0 in SecMain marked as shown and
        as the handoff's CPU, CPUs 1-3 waiting for SIPI at the reset vector."""
        stops, lines = four_cpu_stops()
        app = LiveApp(CpuSession(stops, lines), "smp 4")
        async with app.run_test(size=SIZE) as pilot:
            await start(pilot, app)
            screen = app.live_screen
            cpu_list = screen.cpu_list
            assert cpu_list.display and cpu_list.row_texts == STOP0_ROWS
            assert cpu_list.cursor_row == 0 and str(cpu_list.border_title) == "CPUs (4)"
            assert str(screen.query_one("#registers-box").border_title) == "Registers: CPU 0"
            assert str(screen.query_one("#disassembly-box").border_title) == "Disassembly (CPU 0): SecMain"
            assert screen.status_text == "stop 0 · handoff on CPU 0 · SEC · prot32 · RIP 0xfffceb84 · handoff SEC · SecMain"

    async def test_bracket_selects_the_next_cpu_and_shows_its_registers_and_disassembly(self):
        """`]` calls select_cpu(1) in a worker; CPU 1's reset-state registers and its real-mode
        instructions at 0xfffffff0 are shown, the handoff stays marked on CPU 0; `[` goes back."""
        stops, lines = four_cpu_stops()
        session = CpuSession(stops, lines)
        app = LiveApp(session, "smp 4")
        async with app.run_test(size=SIZE) as pilot:
            await start(pilot, app)
            screen = app.live_screen
            await pilot.press("right_square_bracket")
            await wait_for(pilot, lambda: screen.stop.cpu == 1)
            assert session.selected == 1 and select_calls(session)[0] is not threading.main_thread()
            regs = screen.registers
            assert "mode  real" in regs.text and "linear fffffff0" in regs.text
            assert "rip    0000fff0" in regs.text and "cs f000@ffff0000" in regs.text
            assert "cr0    60000010" in regs.text
            # Against CPU 1 at the stop before (none here): nothing marked.
            assert regs.changed == set()
            reset_lines = stops[0].cpus[1].linear_rip
            assert screen.disassembly.text.splitlines() == disassembly_lines(lines[reset_lines], 0xFFFFFFF0)
            assert str(screen.query_one("#registers-box").border_title) == "Registers: CPU 1"
            assert str(screen.query_one("#disassembly-box").border_title) == "Disassembly (CPU 1): ResetVector"
            assert screen.cpu_list.row_texts[:2] == [
                row(" ", 0, "running", "prot32", "fffceb84", "SEC", "SecMain", "handoff"),
                row("▶", 1, "wait-for-SIPI", "real", "fffffff0", "reset", "ResetVector")]
            assert screen.cpu_list.cursor_row == 1
            assert screen.status_text == ("stop 0 · handoff on CPU 0 · showing CPU 1 · reset · real · "
                                          "RIP 0xfffffff0 · handoff SEC · ResetVector")
            # The phase bar is the boot's: selecting a CPU at reset does not move it back.
            assert screen.phase_bar.current == "sec"
            await pilot.press("left_square_bracket")
            await wait_for(pilot, lambda: screen.stop.cpu == 0)
            assert session.selected == 0 and "rip    fffceb84" in regs.text
            await pilot.press("left_square_bracket")    # wraps round to the last CPU
            await wait_for(pilot, lambda: screen.stop.cpu == 3)
            assert session.selected == 3

    async def test_an_ap_at_a_breakpoint_is_named_and_s_steps_the_selected_cpu(self):
        """Stop 1 is about CPU 3: the status line and a notification say CPU 3 hit the breakpoint.
        `2` selects CPU 2; `s` steps CPU 2 (the session was asked with CPU 2 selected), the new
        stop names CPU 2, and only its RIP is marked changed (against CPU 2 at stop 1)."""
        stops, lines = four_cpu_stops()
        session = CpuSession(stops, lines)
        app = LiveApp(session, "smp 4")
        async with app.run_test(size=SIZE) as pilot:
            await start(pilot, app)
            screen = app.live_screen
            await pilot.press("n")
            await wait_for(pilot, lambda: shown_index(app) == 1)
            assert screen.cpu_list.row_texts == STOP1_ROWS and screen.cpu_list.cursor_row == 3
            assert screen.status_text == ("stop 1 · CPU 3 hit the breakpoint at 0x7fe9c0a0 · PEI core · long64 · "
                                          "RIP 0x7fe9c0a0 · CpuMpPei")
            assert [str(n.message) for n in app._notifications] == ["CPU 3 hit the breakpoint at 0x7fe9c0a0"]
            assert f"rip    {AP_BREAKPOINT:016x}" in screen.registers.text
            # Changed against CPU 3 at stop 0 (the reset state), not against CPU 0 there (SEC:
            # RBP 0xfffcc000, RDI 0x5042, which CPU 3 never had).
            assert screen.registers.changed == {"rip", "eflags", "rsp", "rbx", "cs", "ss", "ds", "es", "fs", "gs",
                                                "cs_base", "cr0", "cr3", "cr4", "efer"}
            await pilot.press("2")
            await wait_for(pilot, lambda: screen.stop.cpu == 2)
            assert f"rip    {AP_RUNNING_RIP:016x}" in screen.registers.text
            assert f"rbx    {0x7FE80002:016x}" in screen.registers.text
            assert screen.disassembly.text.splitlines() == disassembly_lines(PEI_LINES[AP_RUNNING_RIP], AP_RUNNING_RIP)
            assert screen.status_text.startswith("stop 1 · CPU 3 hit the breakpoint at 0x7fe9c0a0 · showing CPU 2 · ")
            await pilot.press("s")
            await wait_for(pilot, lambda: shown_index(app) == 2)
            assert session.stepped == [2]
            stepped = next_rip(lines, AP_RUNNING_RIP)
            assert screen.stop.cpu == 2 and screen.registers.changed == {"rip"}
            assert f"rip    {stepped:016x}" in screen.registers.text
            assert screen.status_text == (f"stop 2 · step on CPU 2 · PEI core · long64 · RIP 0x{stepped:x} · CpuMpPei")
            assert screen.cpu_list.row_texts[2] == row("▶", 2, "running", "long64", f"{stepped:016x}", "PEI core",
                                                  "CpuMpPei", "step")
            assert screen.cpu_list.row_texts[3] == row(" ", 3, "running", "long64", "000000007fe9c0a0", "PEI core",
                                                  "CpuMpPei")

    async def test_a_refused_step_says_why_and_keeps_the_stop(self):
        """`s` on halted CPU 1: the session answers with the same stop and a problem; the status
        line and a notification give it, CPU 1's registers stay shown with their marks."""
        stops, lines = four_cpu_stops()
        session = CpuSession(stops, lines)
        app = LiveApp(session, "smp 4")
        async with app.run_test(size=SIZE) as pilot:
            await start(pilot, app)
            screen = app.live_screen
            await pilot.press("n")
            await wait_for(pilot, lambda: shown_index(app) == 1)
            await pilot.press("1")
            await wait_for(pilot, lambda: screen.stop.cpu == 1)
            changed = set(screen.registers.changed)
            assert "rip" in changed
            app.clear_notifications()
            await pilot.press("s")
            await wait_for(pilot, lambda: len(screen.stop.problems) == 2)
            assert session.stepped == [] and shown_index(app) == 1 and screen.stop.cpu == 1
            assert screen.status_text == ("CPU 1 is halted: not stepped · stop 1 · CPU 3 hit the breakpoint at "
                                          "0x7fe9c0a0 · showing CPU 1 · PEI core · long64 · RIP 0x7fe9c1b4 · CpuMpPei")
            assert [str(n.message) for n in app._notifications] == ["CPU 1 is halted: not stepped"]
            assert screen.registers.changed == changed and f"rip    {AP_HLT_RIP:016x}" in screen.registers.text

    async def test_enter_and_click_in_the_list_select_that_cpu(self):
        stops, lines = four_cpu_stops()
        session = CpuSession(stops, lines)
        app = LiveApp(session, "smp 4")
        async with app.run_test(size=SIZE) as pilot:
            await start(pilot, app)
            screen = app.live_screen
            screen.cpu_list.focus()
            await pilot.press("down", "down")
            await pilot.pause()
            assert session.selected is None       # moving the cursor selects nothing
            await pilot.press("enter")
            await wait_for(pilot, lambda: screen.stop.cpu == 2)
            assert session.selected == 2 and screen.cpu_list.row_texts[2].startswith("▶ | 2 |")
            await pilot.pause()     # the list laid out before clicking in it
            # Row 1 of the data is the list's second line under its header and top border.
            await pilot.click(CpuList, offset=(6, 3))
            await wait_for(pilot, lambda: screen.stop.cpu == 1)
            assert session.selected == 1

    async def test_selection_waits_while_the_guest_runs(self):
        """While cont() blocks, the CPU keys call nothing; after the interrupt they work."""
        stops, lines = four_cpu_stops()
        session = CpuSession(stops, lines, block_cont=True)
        app = LiveApp(session, "smp 4")
        async with app.run_test(size=SIZE) as pilot:
            await start(pilot, app)
            screen = app.live_screen
            await pilot.press("c")
            await wait_for(pilot, lambda: screen.running == "cont")
            await pilot.press("right_square_bracket", "3")
            await pilot.pause()
            assert select_calls(session) == [] and not app._notifications
            await pilot.press("i")
            await wait_for(pilot, lambda: screen.running is None and shown_index(app) == 1)
            await pilot.press("2")
            await wait_for(pilot, lambda: screen.stop.cpu == 2)
            assert len(select_calls(session)) == 1

    async def test_a_cpu_the_guest_does_not_have_is_refused(self):
        stops, lines = four_cpu_stops()
        session = CpuSession(stops, lines)
        app = LiveApp(session, "smp 4")
        async with app.run_test(size=SIZE) as pilot:
            await start(pilot, app)
            await pilot.press("7")
            await wait_for(pilot, lambda: bool(app._notifications))
            assert [str(n.message) for n in app._notifications] == ["no CPU 7: this guest has CPUs 0–3"]
            assert select_calls(session) == []

    async def test_a_recording_replayed_keeps_which_cpu_each_stop_was_about(self, tmp_path):
        """The two stops recorded (Recorder) and replayed (ReplaySession): CPU 1 selected at stop 1,
        then p and n back to it: the stop is still CPU 3's breakpoint, though the replay hands back
        its copy about CPU 1."""
        stops, lines = four_cpu_stops()
        recorder = Recorder(CpuSession(stops, lines), tmp_path / "smp4.jsonl")
        recorder.current(), recorder.next_handoff()
        recorder.close()
        session = ReplaySession(tmp_path / "smp4.jsonl")
        app = LiveApp(session, "replay")
        async with app.run_test(size=SIZE) as pilot:
            await start(pilot, app)
            screen = app.live_screen
            await pilot.press("n")
            await wait_for(pilot, lambda: shown_index(app) == 1 and screen.running is None)
            await pilot.press("1")
            await wait_for(pilot, lambda: screen.stop.cpu == 1)
            # A replay has no disassembly for a CPU the stop was not about (record.py select_cpu).
            assert screen.disassembly.text == "no disassembly at this stop"
            assert f"rip    {AP_HLT_RIP:016x}" in screen.registers.text
            await pilot.press("p")
            await wait_for(pilot, lambda: shown_index(app) == 0 and screen.running is None)
            await pilot.press("n")
            await wait_for(pilot, lambda: shown_index(app) == 1 and screen.running is None)
            assert screen.stop.cpu == 1
            assert screen.status_text == ("replay 2/2 · stop 1 · CPU 3 hit the breakpoint at 0x7fe9c0a0 · showing CPU 1 · "
                                          "PEI core · long64 · RIP 0x7fe9c1b4 · CpuMpPei  (last recorded stop)")
            assert screen.cpu_list.row_texts[3].endswith(" | breakpoint")
            assert screen.cpu_list.row_texts[1].startswith("▶ | 1 |")

    async def test_wait_for_sipi_takes_the_themes_warning_colour(self):
        """The state cell of a CPU waiting for SIPI is in the theme's warning text colour, and in
        the new theme's after a theme change; the cursor stays on the CPU shown."""
        stops, lines = four_cpu_stops()
        app = LiveApp(CpuSession(stops, lines), "smp 4")
        async with app.run_test(size=SIZE) as pilot:
            await start(pilot, app)
            cpu_list = app.live_screen.cpu_list

            def state_colour(row: int):
                return cpu_list.get_row_at(row)[2].style.color.triplet

            def warning():
                return Color.parse(app.theme_variables["text-warning"]).rich_color.triplet

            dark = warning()
            assert state_colour(1) == state_colour(3) == dark
            app.theme = "textual-light"
            # The theme's variables and then the list change on messages: wait for both (one pause
            # was not always enough on a loaded machine).
            await wait_for(pilot, lambda: warning() != dark)
            await wait_for(pilot, lambda: state_colour(1) == warning())
            assert state_colour(3) == warning() and cpu_list.cursor_row == 0

    async def test_replay_selects_cpus_too(self):
        """A replay (read-only run control) still selects CPUs: looking is not running."""
        stops, lines = four_cpu_stops()
        session = CpuSession(stops, lines, live=False)
        app = LiveApp(session, "replay")
        async with app.run_test(size=SIZE) as pilot:
            await start(pilot, app)
            await pilot.press("3")
            await wait_for(pilot, lambda: app.live_screen.stop.cpu == 3)
            assert session.selected == 3


@pytest.mark.asyncio
class TestNoSelection:
    async def test_a_session_without_select_cpu_lists_the_cpus_and_says_selection_is_unavailable(self):
        """An older session (no select_cpu) with a 4-CPU stop: the rows are shown, `]` and `2`
        notify and call nothing, the screen stays on CPU 0."""
        stops, _ = four_cpu_stops()
        session = FakeSession(stops)
        app = LiveApp(session, "old")
        async with app.run_test(size=SIZE) as pilot:
            await start(pilot, app)
            screen = app.live_screen
            assert screen.cpu_list.row_texts == STOP0_ROWS
            await pilot.press("right_square_bracket", "2")
            await wait_for(pilot, lambda: len(app._notifications) == 2)
            assert {str(n.message) for n in app._notifications} == \
                   {"CPU selection is not available: this session cannot select a CPU"}
            assert screen.stop is stops[0] and "Next CPU" not in [b.binding.description
                                                                  for b in screen.active_bindings.values()]

    @pytest.mark.parametrize("cpus", [0, 1], ids=["no-cpus-listed", "one-cpu"])
    async def test_a_single_cpu_stop_looks_as_before(self, cpus):
        """No CPUs listed (an older recording) or one: no list, the titles and status line without
        CPU numbers, and the CPU keys say why there is nothing to select."""
        reset, sec, _ = real_stops()
        sec.cpus = [cpu_view(0, sec, CpuState.RUNNING)][:cpus]
        lines = {sec.linear_rip: sec.disassembly}
        app = LiveApp(CpuSession([sec], lines), "one")
        async with app.run_test(size=SIZE) as pilot:
            await start(pilot, app, 1)
            screen = app.live_screen
            assert not screen.cpu_list.display
            assert str(screen.query_one("#registers-box").border_title) == "Registers"
            assert str(screen.query_one("#disassembly-box").border_title) == "Disassembly: SecMain"
            assert screen.status_text == "stop 1 · handoff · SEC · prot32 · RIP 0xfffceb84 · handoff SEC · SecMain"
            await pilot.press("right_square_bracket")
            await wait_for(pilot, lambda: bool(app._notifications))
            why = "this stop lists no CPUs (an older recording, or a backend that does not read them)" \
                if cpus == 0 else "the guest has one CPU"
            assert [str(n.message) for n in app._notifications] == [f"CPU selection is not available: {why}"]
            assert select_calls(app.live_screen.session) == []

    async def test_help_lists_the_cpu_keys(self):
        stops, lines = four_cpu_stops()
        app = LiveApp(CpuSession(stops, lines), "smp 4")
        async with app.run_test(size=SIZE) as pilot:
            await start(pilot, app)
            await pilot.press("question_mark")
            await pilot.pause()
            assert isinstance(app.screen, HelpScreen)
            text = app.screen.text()
            assert "[ / ]\tPrevious / next CPU: its registers and disassembly; s then steps it" in text
            assert "0 … 9\tCPU n" in text and "enter / click\tIn the CPU list: that CPU" in text
            assert "[\tPrev CPU" not in text      # listed once, in the CPU section
            await pilot.press("escape")
            await pilot.pause()
            titles = [c.title for c in app.get_system_commands(app.screen)]
            assert {"Next CPU", "Previous CPU"} <= set(titles)

    async def test_the_palette_has_no_cpu_commands_for_one_cpu(self):
        reset, sec, _ = real_stops()
        app = LiveApp(CpuSession([sec], {sec.linear_rip: sec.disassembly}), "one")
        async with app.run_test(size=SIZE) as pilot:
            await start(pilot, app, 1)
            titles = [c.title for c in app.get_system_commands(app.screen)]
            assert "Continue" in titles and not {"Next CPU", "Previous CPU"} & set(titles)


@pytest.fixture(scope="module")
def recorded_smp4(tmp_path_factory):
    """Debian 12's OVMF.fd booted by QEMU 7.2 (TCG) with 4 vCPUs from reset to the DXE core entry,
    recorded by the command users run (as conftest.py's recorded_boot, with --smp 4)."""
    image = bookworm("OVMF.fd")
    tool("qemu-system-x86_64", "qemu-system-x86")
    path = tmp_path_factory.mktemp("smp4") / "smp4.jsonl"
    done = subprocess.run([sys.executable, "-m", "inspector.cli", "qemu", str(image), "--smp", "4", "--until",
                           "dxe-core", "--record", str(path)], cwd=ROOT, capture_output=True, text=True, timeout=180)
    if done.returncode != 0:
        pytest.fail(f"recording the -smp 4 boot failed ({done.returncode}): {done.stderr[-2000:]}")
    return path


@pytest.mark.live
@pytest.mark.asyncio
async def test_a_real_smp4_boot_replayed_lists_every_cpu_and_selects_an_ap(recorded_smp4):
    """The screen over a real 4-vCPU boot: at the PEI core entry no AP has been started (MpInitLib
    runs in CpuMpPei, later), so CPUs 1-3 wait for SIPI at the reset vector; at the DXE core entry
    CpuMpPei has started and parked them, none waits for SIPI. Selecting CPU 3 there shows the
    registers recorded for it (backend tests check those against QEMU's `info registers -a`)."""
    session = ReplaySession(recorded_smp4)
    recorded = list(session.stops)
    pei = next(i for i, stop in enumerate(recorded) if stop.handoff == "pei-core")
    app = LiveApp(session, "replay smp4")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.live_screen
        await wait_for(pilot, lambda: screen.stop is not None)
        while session.position < pei:
            at = session.position
            await pilot.press("n")
            # `stop` is set last, once the stop is fully shown (the replay's position moves before).
            await wait_for(pilot, lambda: screen.stop is recorded[at + 1] and screen.running is None)
        rows = screen.cpu_list.row_texts
        assert [r.split(" | ")[1:3] for r in rows] == [["0", "running"]] + [[str(i), "wait-for-SIPI"] for i in (1, 2, 3)]
        assert all(" | real | fffffff0 | reset | " in r for r in rows[1:])
        assert rows[0].startswith("▶ | 0 | running | ") and rows[0].endswith(" | handoff")
        while session.position < session.count - 1:
            at = session.position
            await pilot.press("n")
            # `stop` is set last, once the stop is fully shown (the replay's position moves before).
            await wait_for(pilot, lambda: screen.stop is recorded[at + 1] and screen.running is None)
        dxe = recorded[-1]
        assert dxe.handoff == "dxe-core" and screen.phase_bar.current == "dxe-core"
        rows = screen.cpu_list.row_texts
        assert len(rows) == 4 and not any("wait-for-SIPI" in r for r in rows[1:])
        assert rows[0].split(" | ")[1:7] == ["0", "running", "long64", f"{dxe.linear_rip:016x}", "DXE core", "DxeCore"]
        await pilot.press("3")
        await wait_for(pilot, lambda: screen.stop.cpu == 3)
        ap = dxe.cpus[3]
        digits = 16 if ap.mode == "long64" else 8
        assert f"rip    {ap.registers['rip']:0{digits}x}" in screen.registers.text
        assert f"cr3    {ap.registers['cr3']:0{digits}x}" in screen.registers.text
        assert str(screen.query_one("#registers-box").border_title) == "Registers: CPU 3"
        assert screen.status_text.startswith("replay 5/5 · stop 4 · handoff on CPU 0 · showing CPU 3 · ")


class TestSnapshot:
    def test_four_cpus_at_the_sec_handoff_three_waiting_for_sipi(self, snap_compare):
        """Stop 0 as it arrives: CPU 0 at the SEC entry (▶, handoff), CPUs 1-3 waiting for SIPI at
        the reset vector (the theme's warning colour)."""

        async def run_before(pilot) -> None:
            await start(pilot, pilot.app)
            await pilot.pause()

        stops, lines = four_cpu_stops()
        assert snap_compare(LiveApp(CpuSession(stops, lines), "smp 4"), terminal_size=SIZE, run_before=run_before)

    def test_four_cpus_an_ap_at_a_breakpoint_and_cpu_1_selected(self, snap_compare):
        """Stop 1 of a 4-CPU guest: CPU 3 hit the breakpoint (its `stop` cell), CPU 1 selected
        (▶, the cursor, its registers and its hlt loop), CPU 1 shown halted."""

        async def run_before(pilot) -> None:
            app = pilot.app
            await start(pilot, app)
            await pilot.press("n")
            await wait_for(pilot, lambda: shown_index(app) == 1)
            await pilot.press("1")
            await wait_for(pilot, lambda: app.live_screen.stop.cpu == 1)
            app.clear_notifications()
            await pilot.pause()

        stops, lines = four_cpu_stops()
        assert snap_compare(LiveApp(CpuSession(stops, lines), "smp 4"), terminal_size=SIZE, run_before=run_before)
