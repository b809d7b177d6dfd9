"""The live screen driven headless (Textual `run_test` + Pilot) over a real recorded boot.

The stops are those of Debian's OVMF.fd booting under QEMU 7.2 from reset to the DXE core entry,
recorded at test time (conftest.py `recorded_boot`): reset, SEC, PEI core, DXE IPL, DXE core.
Run-control mechanics (a target that dies, a cont() that blocks until interrupted) come from
FakeSession playing those stops as a live session; replay and the snapshot use ReplaySession on
the recording itself. Expected values come from the recorded stops (what the session handed the
screen), from the image's own bytes (disassembled here with capstone) and from the guest's HOB
list bytes walked here with `struct` (PI vol. 3, 5.2: EFI_HOB_GENERIC_HEADER), never from what the
app printed.
"""
from __future__ import annotations

import dataclasses
import io
import json
import struct
import threading

import capstone
import pytest
from rich.console import Console
from textual.color import Color

from inspector.live.record import ReplaySession, load_recording
from inspector.live.session_api import PHASES, Stop
from inspector.live.target import TargetDead, TargetTimeout
from tests.realdata import bookworm
from tests.views.live_helpers import SIZE, FakeSession, disassemble, flash_bytes, real_stops, shown_index, wait_for
from views.live_app import LiveApp
from views.screens.help import HelpScreen
from views.widgets.field_table import FieldTable
from views.widgets.node_tree import NodeTree
from views.widgets.registers import GENERAL

# Re-exported for tests/inspector/test_record.py, which imports them from here.
__all__ = ["SIZE", "FakeSession", "real_stops", "shown_index", "wait_for"]

pytestmark = pytest.mark.live

# The recording's stops, one per handoff (inspector/live/script.py records every handoff on the
# way to --until).
RESET, SEC, PEI_CORE, DXE_IPL, DXE_CORE = range(5)
RUN_CONTROL = ("cont", "step", "next", "run_to", "breakpoint", "console")
EFI_HOB_TYPE_END_OF_HOB_LIST = 0xFFFF
# PI vol. 3, 5.2: EFI_HOB_TYPE_* values.
HOB_TYPES = {1: "HANDOFF", 2: "MEMORY_ALLOCATION", 3: "RESOURCE_DESCRIPTOR", 4: "GUID_EXTENSION", 5: "FV",
             6: "CPU", 7: "MEMORY_POOL", 9: "FV2", 0xB: "UEFI_CAPSULE", 0xC: "FV3",
             EFI_HOB_TYPE_END_OF_HOB_LIST: "END_OF_HOB_LIST"}


@pytest.fixture
def stops(recorded_boot) -> list[Stop]:
    """The recorded stops, loaded fresh for each test (FakeSession may append to them)."""
    return load_recording(recorded_boot)


def diff(now: Stop, before: Stop) -> set[str]:
    return {name for name, value in now.registers.items() if before.registers.get(name) != value}


def hob_headers(hob_list) -> list[tuple[int, int, int]]:
    """(offset, HobType, HobLength) of each HOB in the recorded guest bytes of the list."""
    raw = bytes(hob_list.space.data)
    headers, off = [], hob_list.offset
    while off + 8 <= len(raw):
        hob_type, length = struct.unpack_from("<HH", raw, off)
        headers.append((off, hob_type, length))
        if hob_type == EFI_HOB_TYPE_END_OF_HOB_LIST or length == 0:
            break
        off += length
    return headers


async def move_to(pilot, app, index: int) -> None:
    """Press n until stop `index` is shown."""
    await wait_for(pilot, lambda: shown_index(app) is not None)
    while shown_index(app) < index:
        before = shown_index(app)
        await pilot.press("n")
        await wait_for(pilot, lambda: shown_index(app) == before + 1)


def image_lines(image: bytes, address: int, mode: int, cs_base: int = 0) -> list[str]:
    """The instructions at linear `address` of the flash image, as the disassembly pane writes
    them: decoded at the offset in CS (branch targets are CS offsets), shown at linear addresses."""
    size = min(64, (1 << 32) - address)
    code = flash_bytes(image, address, size)
    return [f"{a + cs_base:x}  {text}" for a, text in disassemble(code, address - cs_base, mode)]


@pytest.mark.asyncio
class TestPhasesAndRegisters:
    async def test_phase_bar_marks_current_and_reached_phases(self, stops):
        """At reset the bar highlights `reset`; at the DXE core entry `DXE core` is current and
        every phase before it is marked reached."""
        assert [s.handoff for s in stops] == list(PHASES[:5])
        app = LiveApp(FakeSession(stops), "boot")
        async with app.run_test(size=SIZE) as pilot:
            await move_to(pilot, app, RESET)
            bar = app.live_screen.phase_bar
            assert bar.current == "reset" and bar.plain.startswith(" reset ")
            await move_to(pilot, app, DXE_CORE)
            assert bar.current == "dxe-core"
            assert bar.reached == {"reset", "sec", "pei-core", "dxe-ipl", "dxe-core"}
            assert bar.plain == "✓reset › ✓SEC › ✓PEI core › ✓DXE IPL ›  DXE core  › BDS"

    async def test_next_runs_in_a_worker_and_marks_the_changed_registers(self, stops):
        """`n` calls next_handoff off the UI thread; the registers are the recorded ones, exactly
        those that differ from the previous stop marked; the disassembly at RIP is the image's
        own bytes there (reset: its last 16 bytes in real mode; SEC: 64-bit, OVMF.fd's reset
        vector enters long mode before SEC)."""
        session = FakeSession(stops)
        app = LiveApp(session, "boot")
        image = bookworm("OVMF.fd").read_bytes()
        async with app.run_test(size=SIZE) as pilot:
            screen = app.live_screen
            await move_to(pilot, app, RESET)
            regs = screen.registers
            assert regs.changed == set()            # nothing to compare the first stop with
            assert "linear fffffff0" in regs.text   # CS.base + IP at reset (Intel SDM vol. 3A 9.1.4)
            # Real mode at reset: CS base 0xFFFF0000, IP 0xFFF0 (Intel SDM vol. 3A 9.1.4).
            want = image_lines(image, 0xFFFFFFF0, capstone.CS_MODE_16, cs_base=0xFFFF0000)
            shown = screen.disassembly.text.splitlines()
            assert shown[0] == "→ " + want[0] and [line[2:] for line in shown[1:len(want)]] == want[1:]
            await move_to(pilot, app, SEC)
            name, thread = session.calls[-1]
            assert name == "next_handoff" and thread is not threading.main_thread()
            sec = stops[SEC]
            assert sec.mode == "long64" and f"rip    {sec.registers['rip']:016x}" in regs.text
            assert f"cr0    {sec.registers['cr0']:016x}" in regs.text
            assert regs.changed == diff(sec, stops[RESET])
            assert screen.disassembly.text.splitlines()[0] == "→ " + image_lines(image, sec.linear_rip,
                                                                                  capstone.CS_MODE_64)[0]
            assert str(screen.query_one("#disassembly-box").border_title) == "Disassembly: SecMain"
            await move_to(pilot, app, DXE_CORE)
            dxe = stops[DXE_CORE]
            assert "mode  long64" in regs.text and f"efer   {dxe.registers['efer']:016x}" in regs.text
            assert regs.changed == diff(dxe, stops[DXE_IPL])
            # At the DXE core entry RCX holds the HOB list (DxeIpl's handoff, PI vol. 2 DxeMain).
            hob_list = next(n for n in dxe.tree.children if n.kind == "hob-list")
            assert dxe.registers["rcx"] == hob_list.address
            assert str(screen.query_one("#disassembly-box").border_title) == "Disassembly: DxeCore"

    async def test_changed_registers_take_the_themes_error_colour(self, stops):
        """A changed register's value is drawn in the theme's error text colour, an unchanged one
        in the plain text colour; after a theme change, in the new theme's."""
        app = LiveApp(FakeSession(stops), "boot")
        async with app.run_test(size=SIZE) as pilot:
            await move_to(pilot, app, SEC)
            regs = app.live_screen.registers

            def colour_of(name: str):
                """The colour of the value drawn after the register's name (None: plain text)."""
                console = Console(width=80, color_system="truecolor", file=io.StringIO())
                segments = [seg for seg in console.render(regs.table()) if seg.text.strip()]
                at = next(i for i, seg in enumerate(segments) if seg.text == f"{name:<6} ")
                style = segments[at + 1].style
                return None if style is None or style.color is None else style.color.triplet

            def error_colour():
                return Color.parse(app.theme_variables["text-error"]).rich_color.triplet

            kept = next(name for name in GENERAL if name not in regs.changed)
            assert "rip" in regs.changed
            assert colour_of("rip") == error_colour() and colour_of(kept) is None
            dark = error_colour()
            app.theme = "textual-light"
            await pilot.pause()
            assert error_colour() != dark and colour_of("rip") == error_colour()

    async def test_each_key_is_timed_to_its_redraw(self, stops):
        """Each `n` records its key time and one redraw after its stop is shown; the figures are
        printed (budgets are checked in benchmarks/, not here)."""
        app = LiveApp(FakeSession(stops), "boot")
        async with app.run_test(size=SIZE) as pilot:
            screen = app.live_screen
            await move_to(pilot, app, RESET)
            await wait_for(pilot, lambda: len(screen.redraw_times) == 1)
            await move_to(pilot, app, DXE_IPL)
            await wait_for(pilot, lambda: len(screen.redraw_times) == 4)
            assert [name for name, _ in screen.key_times] == ["next_handoff"] * 3
            timings = [r - k for (_, k), r in zip(screen.key_times, screen.redraw_times[1:])]
        print(f"\nkey `n` to redraw: {', '.join(f'{t * 1000:.1f} ms' for t in timings)}")


@pytest.mark.asyncio
class TestTree:
    async def test_tree_shows_the_hob_list_and_selecting_a_hob_fills_fields(self, stops):
        """At the DXE core entry the tree holds the HOB list RCX points at: one child per HOB of
        the guest's bytes, and moving to a HOB lists its HobType/HobLength and marks its bytes."""
        dxe = stops[DXE_CORE]
        hob_list = next(n for n in dxe.tree.children if n.kind == "hob-list")
        headers = hob_headers(hob_list)
        app = LiveApp(FakeSession(stops), "boot")
        async with app.run_test(size=SIZE) as pilot:
            await move_to(pilot, app, DXE_CORE)
            screen = app.live_screen
            tree = screen.node_tree
            assert tree.index.root is dxe.tree
            assert [str(c.label) for c in tree.root.children] == [c.title for c in dxe.tree.children]
            tree.focus()
            await pilot.press("down", "space")      # root -> the HOB list, expanded
            await pilot.pause()
            hobs = tree.root.children[0].children
            assert tree.root.children[0].data is hob_list
            assert len(hobs) == len(headers) == 72
            assert str(hobs[0].label).startswith("HANDOFF")           # HobType 1 = PHIT
            assert str(hobs[-1].label).startswith("END_OF_HOB_LIST")
            await pilot.press("down", "down")       # the PHIT, then the second HOB
            await pilot.pause()
            node = screen.current
            offset, hob_type, length = headers[1]
            assert node is hobs[1].data and node.offset == offset
            table = screen.query_one(FieldTable)
            rows = {str(table.get_row_at(i)[0]): str(table.get_row_at(i)[3]) for i in range(table.row_count)}
            assert int(rows["HobLength"], 0) == length
            assert rows["HobType"] == HOB_TYPES[hob_type]
            # The hex view shows the HOB's bytes at its address in guest memory.
            hex_view = screen.hex_view
            assert hex_view.span == (offset, offset + length)
            base = hob_list.space.base
            assert hex_view.row_text(offset // 16).find(f"{base + offset // 16 * 16:x}") >= 0

    async def test_the_tree_is_refilled_in_place_at_each_stop(self, stops):
        """One NodeTree widget for the whole session: a stop changes its lines, not the widget,
        and the focus stays on it."""
        app = LiveApp(FakeSession(stops), "boot")
        async with app.run_test(size=SIZE) as pilot:
            await move_to(pilot, app, RESET)
            screen = app.live_screen
            tree = screen.node_tree
            assert app.focused is tree and tree.index.root is stops[RESET].tree
            await move_to(pilot, app, PEI_CORE)
            assert screen.node_tree is tree and app.focused is tree
            assert tree.index.root is stops[PEI_CORE].tree
            assert [str(c.label) for c in tree.root.children] == [c.title for c in stops[PEI_CORE].tree.children]
            # Nothing was selected below the root: the new stop shows its root.
            assert screen.current is stops[PEI_CORE].tree and tree.cursor_node is tree.root

    async def test_the_selected_node_stays_selected_when_the_next_stop_has_it(self, recorded_boot, stops):
        """A HOB selected at one stop is selected again at the next when that stop's tree has a
        node of the same kind and title at the same place (the second load gives new objects)."""
        again = dataclasses.replace(load_recording(recorded_boot)[DXE_CORE], index=DXE_CORE + 1)
        app = LiveApp(FakeSession([stops[DXE_CORE], again]), "boot")
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: shown_index(app) == DXE_CORE)
            screen = app.live_screen
            await pilot.press("down", "space", "down", "down")
            await pilot.pause()
            hob_list = next(n for n in stops[DXE_CORE].tree.children if n.kind == "hob-list")
            assert screen.current is hob_list.children[1]
            await pilot.press("n")
            await wait_for(pilot, lambda: shown_index(app) == DXE_CORE + 1)
            new_list = next(n for n in again.tree.children if n.kind == "hob-list")
            assert screen.current is new_list.children[1] and new_list is not hob_list
            assert screen.node_tree.cursor_node.data is new_list.children[1]
            assert screen.hex_view.span == (new_list.children[1].offset,
                                            new_list.children[1].offset + new_list.children[1].size)

    async def test_stop_without_tree_shows_placeholder(self, stops):
        session = FakeSession([dataclasses.replace(stops[RESET], tree=None)])
        app = LiveApp(session, "boot")
        async with app.run_test(size=SIZE) as pilot:
            await move_to(pilot, app, RESET)
            assert str(app.live_screen.node_tree.root.label) == "stop 0: nothing decoded here"

    async def test_a_burst_of_selections_fills_the_fields_once(self, stops):
        """NodeSelected replaces a queued one from the same tree (a held arrow key): 72 selections
        posted at once fill the field table once, for the last."""
        app = LiveApp(FakeSession(stops), "boot")
        async with app.run_test(size=SIZE) as pilot:
            await move_to(pilot, app, DXE_CORE)
            screen = app.live_screen
            tree = screen.node_tree
            hob_list = next(n for n in stops[DXE_CORE].tree.children if n.kind == "hob-list")
            shown = []
            show_node = screen.show_node
            screen.show_node = lambda node, cursor=None: (shown.append(node), show_node(node, cursor))
            for hob in hob_list.children:
                tree.post_message(NodeTree.NodeSelected(tree, hob))
            await pilot.pause()
            assert shown == [hob_list.children[-1]]


@pytest.mark.asyncio
class TestErrorsAndInterrupt:
    async def test_dead_target_disables_run_control_and_the_app_keeps_working(self, stops):
        """next_handoff raising TargetDead: the status says so, the run keys are disabled (greyed
        in the footer; pressing them calls nothing), the tree still moves, and q quits."""
        session = FakeSession(stops, fail=TargetDead("connection closed: QEMU exited"))
        session.position = PEI_CORE     # attached at the PEI core entry: a tree with children
        app = LiveApp(session, "boot")
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: shown_index(app) == PEI_CORE)
            screen = app.live_screen
            assert {a: screen.check_action(a, ()) for a in RUN_CONTROL + ("interrupt",)} == \
                   dict.fromkeys(RUN_CONTROL, True) | {"interrupt": None}
            await pilot.press("n")
            await wait_for(pilot, lambda: screen.dead is not None)
            assert screen.status_text == ("error: target gone: TargetDead: connection closed: QEMU exited"
                                          " — run control disabled; q quits")
            assert screen.running is None and screen.status.has_class("error")
            assert {a: screen.check_action(a, ()) for a in RUN_CONTROL + ("interrupt",)} == \
                   dict.fromkeys(RUN_CONTROL + ("interrupt",))
            assert {k: b.enabled for k, b in screen.active_bindings.items() if k in "csnrb"} == \
                   dict.fromkeys("csnrb", False)
            calls, notes = len(session.calls), len(app._notifications)
            await pilot.press("c", "s", "n", "r")
            await pilot.pause()
            assert len(session.calls) == calls and len(app._notifications) == notes
            assert isinstance(app.screen, type(screen))     # r opened no prompt
            await pilot.press("down")
            await pilot.pause()
            assert screen.current is stops[PEI_CORE].tree.children[0]
            await pilot.press("question_mark")
            await pilot.pause()
            assert isinstance(app.screen, HelpScreen) and "c\tContinue" in app.screen.text()
            await pilot.press("escape", "q")
            await wait_for(pilot, lambda: not app.is_running)

    async def test_timeout_is_shown_and_the_next_call_works(self, stops):
        """A TargetTimeout is shown but does not disable run control: the next `n` runs."""
        session = FakeSession(stops, fail=TargetTimeout("no stop within 60 s"))
        app = LiveApp(session, "boot")
        async with app.run_test(size=SIZE) as pilot:
            await move_to(pilot, app, RESET)
            screen = app.live_screen
            await pilot.press("n")
            await wait_for(pilot, lambda: screen.error is not None)
            assert screen.status_text == "error: TargetTimeout: no stop within 60 s" and screen.dead is None
            assert screen.check_action("next", ()) is True
            session.fail = None
            await pilot.press("n")
            await wait_for(pilot, lambda: shown_index(app) == SEC)
            assert screen.error is None and not screen.status.has_class("error")
            assert screen.status_text == f"stop 1 · handoff · SEC · long64 · RIP 0x{stops[SEC].linear_rip:x}" \
                                         " · handoff SEC · SecMain"

    async def test_interrupt_returns_a_blocked_cont(self, stops):
        """`c` starts cont() (which blocks like a running guest); while it runs the other run
        keys are disabled and interrupt enabled; ctrl+c sends interrupt() from another worker and
        the stop is shown."""
        session = FakeSession(stops, block_cont=True)
        app = LiveApp(session, "boot")
        async with app.run_test(size=SIZE) as pilot:
            await move_to(pilot, app, RESET)
            screen = app.live_screen
            assert screen.active_bindings["i"].enabled is False and screen.active_bindings["c"].enabled
            await pilot.press("c")
            await wait_for(pilot, lambda: "cont" in [c[0] for c in session.calls])
            assert screen.running == "cont" and screen.status_text.startswith("running…")
            assert screen.status.has_class("running")
            assert screen.active_bindings["i"].enabled and screen.active_bindings["s"].enabled is False
            await pilot.press("s")      # disabled while running: nothing is called
            await pilot.pause()
            assert "step" not in [c[0] for c in session.calls]
            await pilot.press("ctrl+c")
            await wait_for(pilot, lambda: screen.running is None and shown_index(app) == 1)
            names = [c[0] for c in session.calls]
            assert names[-2:] == ["cont", "interrupt"]
            assert all(t is not threading.main_thread() for _, t in session.calls)
            assert screen.stop.reason == "interrupt" and " interrupt " in screen.status_text
            # Stopped one instruction on: only RIP moved.
            assert screen.registers.changed == {"rip"} and not screen.status.has_class("running")

    async def test_quit_while_running_interrupts_first(self, stops):
        """q during a blocked cont(): the guest is interrupted so no worker thread holds the exit."""
        session = FakeSession(stops, block_cont=True)
        app = LiveApp(session, "boot")
        async with app.run_test(size=SIZE) as pilot:
            await move_to(pilot, app, RESET)
            await pilot.press("c")
            await wait_for(pilot, lambda: "cont" in [c[0] for c in session.calls])
            await pilot.press("q")
            await wait_for(pilot, lambda: not app.is_running)
        assert "interrupt" in [c[0] for c in session.calls] and session.released.is_set()


@pytest.mark.asyncio
class TestKeys:
    async def test_run_to_asks_for_the_phase(self, stops):
        """`r` asks which phase; a name that is no phase is refused, `dxe-core` runs there."""
        session = FakeSession(stops)
        app = LiveApp(session, "boot")
        async with app.run_test(size=SIZE) as pilot:
            await move_to(pilot, app, RESET)
            await pilot.press("r", *"pei", "enter")
            await pilot.pause()
            assert "run_to" not in [c[0] for c in session.calls]
            assert any("'pei' is not a phase" in str(n.message) for n in app._notifications)
            await pilot.press("r", *"dxe-core", "enter")
            await wait_for(pilot, lambda: shown_index(app) == DXE_CORE)
            assert session.calls[-1][0] == "run_to" and app.live_screen.phase_bar.current == "dxe-core"

    async def test_b_sets_a_breakpoint_in_a_worker_and_reports_bad_specs(self, stops):
        session = FakeSession(stops)
        app = LiveApp(session, "boot")
        async with app.run_test(size=SIZE) as pilot:
            await move_to(pilot, app, RESET)
            entry = f"0x{stops[SEC].linear_rip:x}"
            await pilot.press("b", *entry, "enter")
            await wait_for(pilot, lambda: entry in app.live_screen.status_text)
            assert session.breakpoints == [entry]
            assert [t for n, t in session.calls if n == "add_breakpoint"][0] is not threading.main_thread()
            await pilot.press("b", *"Nowhere", "enter")
            await wait_for(pilot, lambda: any("no module named" in str(n.message) for n in app._notifications))
            assert app.is_running

    async def test_colon_sends_a_console_command_and_shows_the_answer(self, stops):
        session = FakeSession(stops)
        app = LiveApp(session, "boot")
        async with app.run_test(size=SIZE) as pilot:
            await move_to(pilot, app, RESET)
            await pilot.press("colon", *"info registers", "enter")
            await wait_for(pilot, lambda: "answer to info registers" in app.live_screen.log_pane.text)
            assert "» info registers" in app.live_screen.log_pane.text
            await pilot.press("colon", *"boom", "enter")
            await wait_for(pilot, lambda: "error: RuntimeError: E14" in app.live_screen.log_pane.text)
            assert app.is_running

    async def test_help_and_palette_list_the_run_control(self, stops):
        app = LiveApp(FakeSession(stops), "boot")
        async with app.run_test(size=SIZE) as pilot:
            await move_to(pilot, app, RESET)
            titles = [c.title for c in app.get_system_commands(app.screen)]
            assert {"Next handoff", "Continue", "Step", "Interrupt", "Run to phase", "Breakpoint",
                    "Console command", "Go to offset or address", "Export JSON"} <= set(titles)
            assert "Previous stop" not in titles
            await pilot.press("question_mark")
            await pilot.pause()
            text = app.screen.text()
            for key, what in (("c", "Continue"), ("s", "Step"), ("n", "Next handoff"), ("i", "Interrupt"),
                              ("^c", "Interrupt"), ("r", "Run to phase"), ("q", "Quit"), ("?", "Keys"),
                              ("g", "Go to offset/address"), ("shift+left", "Go to parent")):
                assert f"{key}\t{what}" in text
            assert "Previous stop" not in text

    async def test_palette_commands_obey_the_same_checks_as_keys(self, stops):
        """The palette's Continue goes through check_action: after the target died it calls
        nothing, like the c key."""
        session = FakeSession(stops, fail=TargetDead("gone"))
        app = LiveApp(session, "boot")
        async with app.run_test(size=SIZE) as pilot:
            await move_to(pilot, app, RESET)
            await pilot.press("n")
            await wait_for(pilot, lambda: app.live_screen.dead is not None)
            calls = len(session.calls)
            (command,) = [c for c in app.get_system_commands(app.screen) if c.title == "Continue"]
            assert await command.callback() is False
            assert len(session.calls) == calls


@pytest.mark.asyncio
class TestReplay:
    async def test_replay_moves_with_n_and_p_and_offers_no_run_control(self, recorded_boot, stops):
        """A ReplaySession of the recording: n / p move through the stops; c, s, i, r, b and :
        are not offered (not in the footer; pressing them does nothing)."""
        session = ReplaySession(recorded_boot)
        app = LiveApp(session, "replay")
        async with app.run_test(size=SIZE) as pilot:
            screen = app.live_screen
            await wait_for(pilot, lambda: shown_index(app) == RESET)
            assert screen.status_text.startswith("replay 1/5 · stop 0 · reset")
            await pilot.press("n")
            await wait_for(pilot, lambda: shown_index(app) == SEC)
            await pilot.press("p")
            await wait_for(pilot, lambda: shown_index(app) == RESET)
            assert screen.status_text.endswith("(first recorded stop)")
            assert {a: screen.check_action(a, ()) for a in RUN_CONTROL + ("interrupt",)} == \
                   dict.fromkeys(RUN_CONTROL + ("interrupt",), False)
            assert set(screen.active_bindings) & {"c", "s", "i", "r", "b", "colon"} == set()
            assert screen.active_bindings["n"].binding.description == "Next stop"
            await pilot.press("c", "s", "i", "r", "b")
            await pilot.pause()
            assert shown_index(app) == RESET and isinstance(app.screen, type(screen))
            titles = [c.title for c in app.get_system_commands(app.screen)]
            assert "Previous stop" in titles and "Continue" not in titles
            await pilot.press("question_mark")
            await pilot.pause()
            assert "p\tPrevious stop" in app.screen.text() and "Continue" not in app.screen.text()


class TestSnapshot:
    def test_live_screen_at_dxe_core_entry(self, snap_compare, recorded_boot):
        """A replay of the real boot at the DXE core entry: phase bar at DXE core, registers in
        long mode with the changes since the DXE IPL stop marked, DxeCore's first instructions,
        the HOB list expanded with its second HOB selected, its fields and bytes."""

        async def run_before(pilot) -> None:
            app = pilot.app
            await move_to(pilot, app, DXE_CORE)
            app.live_screen.node_tree.focus()
            await pilot.press("down", "space", "down", "down")
            await pilot.pause()

        app = LiveApp(ReplaySession(recorded_boot), "replay ovmf-to-dxe-core.jsonl (5 stops)")
        assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


@pytest.mark.asyncio
async def test_live_screen_goes_to_addresses_and_exports_the_stop_tree(stops, tmp_path, monkeypatch):
    """`g` and `x` work on the live screen as on the inspect screen (both are NodeScreens)."""
    monkeypatch.chdir(tmp_path)
    app = LiveApp(FakeSession(stops), "boot")
    async with app.run_test(size=SIZE) as pilot:
        await move_to(pilot, app, DXE_CORE)
        screen = app.live_screen
        hob_list = next(n for n in stops[DXE_CORE].tree.children if n.kind == "hob-list")
        screen.show_node(hob_list)
        await pilot.press("g", *f"0x{hob_list.address + 0x10:x}", "enter")
        await pilot.pause()
        assert screen.hex_view.cursor == hob_list.offset + 0x10
        await pilot.press("x")
        await wait_for(pilot, lambda: any(str(n.message).startswith("wrote ") for n in app._notifications))
        written = json.loads((tmp_path / "boot-stop.json").read_text())
        assert written["kind"] == stops[DXE_CORE].tree.kind and written["title"] == stops[DXE_CORE].tree.title
