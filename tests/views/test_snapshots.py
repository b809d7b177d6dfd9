"""Snapshot of the main screen (pytest-textual-snapshot), on the hand-built tree over OVMF.fd.

Regenerate after an intended visual change with
`python -m pytest tests/views/test_snapshots.py --snapshot-update` and look at the SVG.
"""
from __future__ import annotations

from tests.realdata import bookworm
from tests.views.handtree import hand_tree
from views.app import FwInspectApp
from views.widgets.field_table import FieldTable


class TestMainScreen:
    def test_fv_selected_with_field_marked(self, snap_compare):
        """FVMAIN_COMPACT selected: its header fields listed, its bytes tinted in the hex view,
        and FvLength (the third row) marked more strongly; SECFV's tree branch is expanded."""
        root = hand_tree(bookworm("OVMF.fd").read_bytes())

        async def run_before(pilot) -> None:
            await pilot.pause()  # let the screen compose first
            screen = pilot.app.screen
            screen.node_tree.reveal(root.children[2].children[1])
            await pilot.pause()
            screen.node_tree.reveal(root.children[1])
            await pilot.pause()
            screen.query_one(FieldTable).focus()
            await pilot.press("down", "down")
            await pilot.pause()

        assert snap_compare(FwInspectApp(root, "OVMF.fd"), terminal_size=(120, 40), run_before=run_before)
