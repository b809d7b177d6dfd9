"""Enter on a field opens its detail view on the live screen too (NodeScreen handles it for every
screen with a fields pane), and `fwinspect SOURCE --symbols DIR` hands the folder to the app."""
from __future__ import annotations

import struct

import pytest

from inspector.live.record import load_recording
from tests.views.live_helpers import SIZE, FakeSession
from views.live_app import LiveApp
from views.screens.detail import DetailScreen
from views.widgets.field_table import FieldTable

DXE_CORE = 4


@pytest.mark.asyncio
async def test_enter_on_a_hob_field_at_a_live_stop_shows_its_value_and_bytes(recorded_boot):
    stops = load_recording(recorded_boot)
    hob_list = next(n for n in stops[DXE_CORE].tree.children if n.kind == "hob-list")
    phit = hob_list.children[0]
    raw = bytes(phit.space.data)
    # EFI_HOB_HANDOFF_INFO_TABLE (PI vol. 3, 5.3): the generic header, then Version (UINT32) at +8.
    hob_type, = struct.unpack_from("<H", raw, phit.offset)
    assert hob_type == 1
    app = LiveApp(FakeSession(stops), "boot")
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(DXE_CORE):
            await pilot.press("n")
            await pilot.pause()
        for _ in range(100):
            if app.live_screen.node_tree.index.root is stops[DXE_CORE].tree:
                break
            await pilot.pause(0.05)
        screen = app.live_screen
        screen.show_node(phit)
        await pilot.pause()
        table = screen.query_one(FieldTable)
        table.focus()
        table.move_cursor(row=0)                 # HobType
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, DetailScreen)
        text = app.screen.plain
        assert text.startswith("Value\n")
        assert f"offset 0x{phit.offset:x}  size 0x2" in text
        assert "01 00" in text                   # HobType 1 (HANDOFF), little-endian
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen


def test_open_passes_symbols_to_the_app(tmp_path, monkeypatch):
    import views.app
    from inspector.cli import main

    seen = {}

    def fake_run_app(root, name, loader=None, **kw):
        seen.update(name=name, **kw)

    monkeypatch.setattr(views.app, "run_app", fake_run_app)
    image = tmp_path / "x.fd"
    image.write_bytes(b"\0" * 64)
    assert main(["open", str(image), "--symbols", str(tmp_path)]) == 0
    assert seen == {"name": str(image), "symbols": str(tmp_path)}
    assert main([str(image)]) == 0
    assert seen["symbols"] is None
