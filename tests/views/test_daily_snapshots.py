"""Snapshots (pytest-textual-snapshot) of the daily interactions' views: the hex cursor with its
path line, a field's detail view, and a PE image's disassembly, on Debian's OVMF.fd.

Regenerate after an intended visual change with
`python -m pytest tests/views/test_daily_snapshots.py --snapshot-update` and look at the SVGs.
"""
from __future__ import annotations

from tests.realdata import bookworm
from tests.views.handtree import hand_tree
from views.app import FwInspectApp
from views.widgets.field_table import FieldTable

SIZE = (120, 40)


async def settle(pilot, node=None) -> None:
    """Wait until `node` (when given) is the one shown and the field table has sized its columns:
    DataTable does that on an idle event (its _on_idle), so a screenshot taken earlier may show a
    row cut differently."""
    screen = pilot.app.screen
    table = screen.query_one(FieldTable)
    for _ in range(100):
        await pilot.pause()
        if (node is None or screen.current is node) and table.row_count and \
                not table._require_update_dimensions and not table._new_rows:
            await pilot.pause()
            return
        await pilot.pause(0.01)
    raise AssertionError("the field table did not settle")


async def goto(pilot, where: str) -> None:
    await pilot.press("g")
    await pilot.pause()
    pilot.app.screen.query_one("#prompt-input").value = where
    await pilot.press("enter")
    await pilot.pause()


class TestHexCursor:
    def test_cursor_in_secmain_with_its_path(self, snap_compare):
        """The cursor on byte 0x1cc111 (reverse video, in the hex and the ASCII columns) after g
        and two arrows; the line under the bytes names SecMain's file, SECFV and the image."""
        root = hand_tree(bookworm("OVMF.fd").read_bytes())

        async def run_before(pilot) -> None:
            await pilot.pause()
            await goto(pilot, "0x1cc100")
            await pilot.press("down", "right")
            await settle(pilot)

        assert snap_compare(FwInspectApp(root, "OVMF.fd"), terminal_size=SIZE, run_before=run_before)


class TestDetail:
    def test_fvname_of_fvmain_compact(self, snap_compare):
        """Enter on FvName: its value, the raw GUID, where it is and its 16 bytes, in a box over
        the main screen."""
        root = hand_tree(bookworm("OVMF.fd").read_bytes())

        async def run_before(pilot) -> None:
            await pilot.pause()
            screen = pilot.app.screen
            screen.node_tree.reveal(root.children[1])
            await settle(pilot, root.children[1])
            table = screen.query_one(FieldTable)
            table.focus()
            table.move_cursor(row=9)
            await pilot.press("enter")
            await pilot.pause()

        assert snap_compare(FwInspectApp(root, "OVMF.fd"), terminal_size=SIZE, run_before=run_before)


class TestDisassembly:
    def test_secmain_from_its_entry_point(self, snap_compare):
        """d on SecMain: X64, runs in place from flash, the entry line marked with an arrow."""
        from inspector.sources import load_source

        root = load_source(bookworm("OVMF.fd"))[1]
        secmain = next(f for f in root.find("ffs") if f.get("UI") == "SecMain")

        async def run_before(pilot) -> None:
            await pilot.pause()
            pilot.app.screen.node_tree.reveal(secmain)
            # The field table behind the box: a row's text shows through past the box's edge.
            await settle(pilot, secmain)
            await pilot.press("d")
            await pilot.pause()

        assert snap_compare(FwInspectApp(root, "OVMF.fd"), terminal_size=SIZE, run_before=run_before)
