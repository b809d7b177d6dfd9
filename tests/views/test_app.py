"""The inspector app driven headless (Textual `run_test` + Pilot) on real OVMF bytes.

The tree shown is built by hand over Debian's OVMF.fd (tests/views/handtree.py, checked here
against UEFIExtract on the same file), and also, once it exists, by `decoders.fd.decode_image`.
Expected bytes are read from the image file itself, never from what the app printed.
"""
from __future__ import annotations

import json
import threading

import pytest
from rich.style import Style
from rich.text import Text
from textual.color import Color
from textual.widgets import DataTable

from decoders.model import Node, Space
from tests.realdata import bookworm, uefiextract_report
from tests.views.handtree import big_tree, hand_tree
from views.app import FwInspectApp
from views.screens.help import HelpScreen
from views.screens.prompt import PromptScreen
from views.widgets.field_table import FieldTable
from views.widgets.hex_view import HexView
from views.widgets.node_tree import NodeTree

SIZE = (120, 40)
FVMAIN_COMPACT = "48db5e17-707c-472d-91cd-1613e7ef51b0"  # OvmfPkg/OvmfPkgX64.fdf FvNameGuid
SECFV = "763BED0D-DE9F-48F5-81F1-3E90E1B1A015"


@pytest.fixture(scope="module")
def ovmf() -> bytes:
    return bookworm("OVMF.fd").read_bytes()


@pytest.fixture
def tree(ovmf) -> Node:
    return hand_tree(ovmf)


def fv_at(root: Node, offset: int) -> Node:
    return next(n for n in root.children if n.kind == "fv" and n.offset == offset)


def table_rows(table: DataTable) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def screen_lines(hex_view: HexView) -> list[str]:
    """What the hex view draws now, line by line, through its Line API."""
    return [hex_view.render_line(y).text for y in range(hex_view.scrollable_content_region.height)]


def hex_row(data: bytes, offset: int) -> str:
    """xxd-like rendering of 16 bytes of the file, with the gap after the 8th byte."""
    b = data[offset:offset + 16]
    return b[:8].hex(" ") + "  " + b[8:].hex(" ")


async def select(pilot, node: Node) -> None:
    assert pilot.app.screen.node_tree.reveal(node)
    await pilot.pause()


class TestHandTreeIsReal:
    def test_hand_tree_volumes_match_uefiextract(self, ovmf, tree, tmp_path):
        """The tree the view tests show has UEFIExtract's volumes and files (base, size, GUID)."""
        rows = uefiextract_report(bookworm("OVMF.fd"), tmp_path)
        volumes = [(r.base, r.size, r.name.upper()) for r in rows if r.type == "Volume" and r.base is not None]
        ours = [(n.offset, n.size, str(n.get("FvName") or n.get("FileSystemGuid")).upper()) for n in tree.children]
        assert ours == volumes
        files = {(r.base, r.size, r.name.upper()) for r in rows
                 if r.type == "File" and r.base is not None and r.subtype != "Pad"}
        ours_files = {(f.offset, f.size, str(f.get("Name")).upper()) for f in tree.find("ffs")
                      if not f.title.startswith("Pad")}
        assert ours_files == files


@pytest.mark.asyncio
class TestTreeAndFields:
    async def test_tree_shows_root_children(self, tree):
        app = FwInspectApp(tree, "OVMF.fd")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            nt = app.screen.query_one(NodeTree)
            labels = [c.label.plain for c in nt.root.children]
            assert labels == [c.title for c in tree.children]
            assert any(SECFV in label for label in labels)
            # Lazy: the children of a collapsed FV are not in the Tree widget yet.
            assert all(len(c.children) == 0 for c in nt.root.children)

    async def test_selecting_node_fills_fields(self, ovmf, tree):
        app = FwInspectApp(tree, "OVMF.fd")
        async with app.run_test(size=SIZE) as pilot:
            fv = fv_at(tree, 0x20000)
            await select(pilot, fv)
            rows = table_rows(app.screen.query_one(FieldTable))
            by_name = {r[0]: r for r in rows}
            # FV header at 0x20000 (PI vol. 3, 3.2.1 EFI_FIRMWARE_VOLUME_HEADER: ZeroVector, then FileSystemGuid)
            assert by_name["ZeroVector"][1:3] == ["0x20000", "0x10"]
            assert by_name["FileSystemGuid"][1] == "0x20010"
            assert "8C8CE578-8A3D-4F1C-9935-896185C32DD3" in by_name["FileSystemGuid"][3]
            assert by_name["FvLength"][1:] == ["0x20020", "0x8", "0x1ac000"]
            assert by_name["Signature"][3] == "_FVH"
            assert FVMAIN_COMPACT.upper() in by_name["FvName"][3]
            assert app.screen.current is fv

    async def test_hex_view_shows_node_offset_and_file_bytes(self, ovmf, tree):
        app = FwInspectApp(tree, "OVMF.fd")
        async with app.run_test(size=SIZE) as pilot:
            await select(pilot, fv_at(tree, 0x20000))
            hv = app.screen.query_one(HexView)
            lines = screen_lines(hv)
            line = next(s for s in lines if s.startswith("020000 "))
            # offset, then address (image ends at 4 GiB: 0x100000000 - 2 MiB + 0x20000), then bytes.
            assert line.split()[:2] == ["020000", "ffe20000"]
            assert hex_row(ovmf, 0x20000) in line
            guid_line = next(s for s in lines if s.startswith("020020 "))
            assert hex_row(ovmf, 0x20020) in guid_line
            assert "_FVH" in guid_line  # ASCII column shows the signature at +0x28
            assert hv.span == (0x20000, 0x20000 + 0x1AC000)

    async def test_field_row_marks_its_bytes(self, tree):
        app = FwInspectApp(tree, "OVMF.fd")
        async with app.run_test(size=SIZE) as pilot:
            await select(pilot, fv_at(tree, 0x1CC000))
            table = app.screen.query_one(FieldTable)
            table.focus()
            await pilot.press("down")  # ZeroVector -> FileSystemGuid
            await pilot.pause()
            assert app.screen.query_one(HexView).mark == (0x1CC010, 0x1CC020)

    async def test_problem_marker_and_problem_row(self, ovmf):
        bad = bytearray(ovmf)
        bad[0x20000 + 0x2C] ^= 0x01  # one Attributes bit: the header checksum no longer sums to 0
        root = hand_tree(bytes(bad))
        app = FwInspectApp(root, "OVMF.fd")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            nt = app.screen.query_one(NodeTree)

            def label(item) -> Text:
                return nt.render_label(item, Style.null(), Style.null())

            assert label(nt.root).plain.endswith("○")  # something below the root has a problem
            marked = [label(c) for c in nt.root.children if label(c).plain.endswith("●")]
            assert len(marked) == 1 and FVMAIN_COMPACT.upper() in marked[0].plain
            # The marker takes the theme's error text colour, not a colour of its own.
            marker_style = marked[0].spans[-1].style
            error = Color.parse(app.theme_variables["text-error"])
            assert marker_style.color.triplet == error.rich_color.triplet
            await select(pilot, fv_at(root, 0x20000))
            rows = table_rows(app.screen.query_one(FieldTable))
            assert rows[-1][0] == "error" and rows[-1][1] == "0x20032"


@pytest.mark.asyncio
class TestSearch:
    @pytest.mark.parametrize("query", [FVMAIN_COMPACT, FVMAIN_COMPACT.upper()])
    async def test_slash_guid_jumps_to_node(self, tree, query):
        app = FwInspectApp(tree, "OVMF.fd")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("slash")
            await pilot.pause()
            await pilot.press(*query, "enter")
            await pilot.pause()
            screen = app.screen
            assert screen.current is fv_at(tree, 0x20000)
            assert screen.query_one(NodeTree).current is screen.current
            assert str(screen.search_bar.query_one("#search-status").render()) == "1 of 1"

    async def test_enter_walks_matches_and_expands_ancestors(self, tree):
        app = FwInspectApp(tree, "OVMF.fd")
        files = [n for n in tree.walk() if n.title.startswith("Pad file")]
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("slash", *"pad file", "enter")
            await pilot.pause()
            assert app.screen.current is files[0]
            await pilot.press("enter")
            await pilot.pause()
            assert app.screen.current is files[1]
            assert str(app.screen.search_bar.query_one("#search-status").render()) == f"2 of {len(files)}"
            # The hit's parent FV was expanded to show it.
            assert app.screen.query_one(NodeTree).cursor_node.parent.is_expanded

    @pytest.mark.parametrize("query", ["0x1ff7c0", "0xfffff7c0"])
    async def test_offset_or_address_finds_deepest_node(self, tree, query):
        app = FwInspectApp(tree, "OVMF.fd")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("slash", *query, "enter")
            await pilot.pause()
            node = app.screen.current
            # 0x1ff7c0 lies in SECFV's last file (UEFIExtract: 1BA0062E… at 0x1FF648, size 0x9B8)
            assert node.kind == "ffs" and node.offset == 0x1FF648
            assert app.screen.query_one(HexView).cursor == 0x1FF7C0

    async def test_no_match_says_so(self, tree):
        app = FwInspectApp(tree, "OVMF.fd")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("slash", *"no such thing", "enter")
            await pilot.pause()
            assert str(app.screen.search_bar.query_one("#search-status").render()) == "no match"


@pytest.mark.asyncio
class TestKeys:
    async def test_x_exports_json(self, tree, tmp_path, monkeypatch):
        monkeypatch.chdir(tmp_path)
        app = FwInspectApp(tree, "/usr/share/ovmf/OVMF.fd")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("x")
            await app.workers.wait_for_complete()
            await pilot.pause()
        out = json.loads((tmp_path / "OVMF.fd.json").read_text())
        assert out["kind"] == "image"
        assert [c["offset"] for c in out["children"]] == [c.offset for c in tree.children]

    async def test_export_as_asks_for_path(self, tree, tmp_path):
        app = FwInspectApp(tree, "OVMF.fd")
        target = tmp_path / "tree.json"
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("X")
            await pilot.pause()
            prompt = app.screen
            assert isinstance(prompt, PromptScreen)
            prompt.query_one("#prompt-input").value = str(target)
            await pilot.press("enter")
            await app.workers.wait_for_complete()
            await pilot.pause()
        assert json.loads(target.read_text())["kind"] == "image"

    async def test_question_mark_lists_keys(self, tree):
        app = FwInspectApp(tree, "OVMF.fd")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("question_mark")
            await pilot.pause()
            assert isinstance(app.screen, HelpScreen)
            keys = {line.split("\t")[0] for line in app.screen.text().splitlines()}
            assert {"x", "/", "g", "q", "?", "ctrl+p"} <= keys
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, HelpScreen)

    @pytest.mark.parametrize("where", ["0x20000", "0xffe20000"])
    async def test_g_scrolls_hex_view(self, ovmf, tree, where):
        app = FwInspectApp(tree, "OVMF.fd")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()  # the root (whole image) is selected
            await pilot.press("g")
            await pilot.pause()
            await pilot.press(*where, "enter")
            await pilot.pause()
            hv = app.screen.query_one(HexView)
            assert hv.cursor == 0x20000
            lines = screen_lines(hv)
            assert any(s.startswith("020000 ") and hex_row(ovmf, 0x20000) in s for s in lines)

    async def test_p_shows_the_space_a_blob_came_from(self, ovmf, tree):
        # A child space over the bytes of SECFV's first file, as a decompressed blob would be.
        parent = next(f for f in fv_at(tree, 0x1CC000).children if not f.title.startswith("Pad"))
        blob = Space("blob", ovmf[parent.offset:parent.offset + parent.size], parent=parent)
        inner = parent.append(Node("section", "inner", blob, 0x10, 0x20))
        app = FwInspectApp(tree, "OVMF.fd")
        async with app.run_test(size=SIZE) as pilot:
            await select(pilot, inner)
            hv = app.screen.query_one(HexView)
            # A 0x8f7e-byte space needs 4 offset digits and has no base, so no address column.
            assert hv.space is blob and any(s.startswith("0010  ") for s in screen_lines(hv))
            await pilot.press("p")
            await pilot.pause()
            assert hv.space is tree.space
            assert hv.span == (parent.offset, parent.offset + parent.size)
            line = next(s for s in screen_lines(hv) if s.startswith(f"{parent.offset & ~15:06x} "))
            assert hex_row(ovmf, parent.offset & ~15) in line

    async def test_palette_offers_every_action(self, tree):
        app = FwInspectApp(tree, "OVMF.fd")
        async with app.run_test(size=SIZE):
            titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {"Search nodes", "Go to offset or address", "Export JSON", "Help: keys", "Quit"} <= titles

    async def test_q_quits(self, tree):
        app = FwInspectApp(tree, "OVMF.fd")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("q")
            await pilot.pause()
        assert app.return_code == 0


@pytest.mark.asyncio
class TestRobustness:
    async def test_space_without_data_shows_message(self):
        root = Node("hob-list", "HOBs", Space("guest memory", None, base=0x800000), 0x9000, 0x2000)
        app = FwInspectApp(root, "live")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert "no bytes to show" in screen_lines(app.screen.query_one(HexView))[0]

    async def test_hostile_titles_and_values_stay_one_line(self, ovmf):
        space = Space("blob", ovmf[:64])
        root = Node("x", "[bold]not markup\n\x1b[31m" + "A" * 10_000, space, 0, 64)
        root.add("Name", "line1\nline2" * 1000, 0, 4)
        root.append(Node("y", "child past the end", space, 1 << 40, 16))
        app = FwInspectApp(root, "blob")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            label = app.screen.query_one(NodeTree).root.label.plain
            assert "\n" not in label and len(label) <= 200 and label.startswith("[bold]")
            await pilot.press("down")
            await pilot.pause()
            assert app.screen.current.title == "child past the end"


@pytest.mark.asyncio
class TestLargeSpaces:
    """How long these take is measured in benchmarks/bench_app.py; here, only what they show."""

    async def test_tree_of_3000_nodes_opens_and_moves(self, ovmf):
        root = big_tree(ovmf, 3000)
        assert sum(1 for _ in root.walk()) == 3000
        app = FwInspectApp(root, "synthetic")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await pilot.press("down", "enter", "down")  # open the first volume, select its first file
            await pilot.pause()
            assert app.screen.current is root.children[0].children[0]

    async def test_hex_view_jump_in_16_mib(self):
        blob = bytes(range(256)) * (16 << 12)  # 16 MiB
        root = Node("blob", "16 MiB", Space("blob", blob), 0, len(blob))
        app = FwInspectApp(root, "blob")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            hv = app.screen.query_one(HexView)
            assert hv.virtual_size.height == len(blob) // 16
            app.screen.goto("0xfffff0")
            await pilot.pause()
            assert any(s.startswith("fffff0 ") for s in screen_lines(hv))


@pytest.mark.asyncio
class TestWithFdDecoder:
    """The same app on the FD decoder's tree, once decoders.fd.decode_image exists."""

    @pytest.fixture
    def decoded(self, ovmf) -> Node:
        try:
            from decoders.fd import decode_image
        except ImportError as e:
            pytest.skip(f"decoders.fd.decode_image not importable yet: {e}")
        root = decode_image(ovmf, name="OVMF.fd")
        if next(root.find("fv"), None) is None:
            pytest.skip("decode_image yields no fv nodes yet")
        return root

    async def test_decoded_tree_first_frame_and_guid_search(self, decoded):
        app = FwInspectApp(decoded, "OVMF.fd")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            nt = app.screen.query_one(NodeTree)
            assert [c.data for c in nt.root.children] == decoded.children
            # DXEFV lives inside FVMAIN_COMPACT's LZMA section (OvmfPkg/OvmfPkgX64.fdf, [FV.FVMAIN_COMPACT]).
            await pilot.press("slash", *"7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1", "enter")
            await pilot.pause()
            hit = app.screen.current
            assert hit is not None and "7CB8BDC9-F8EB-4F34-AAEA-3EE4AF6516A1" in json.dumps(hit.to_json()).upper()


@pytest.mark.asyncio
class TestLoader:
    async def test_loader_runs_in_worker_then_shows_tree(self, ovmf):
        from views.screens.inspect import InspectScreen
        from views.screens.loading import LoadingScreen

        go = threading.Event()

        def loader() -> Node:
            go.wait(10)
            return hand_tree(ovmf)

        app = FwInspectApp(None, "OVMF.fd", loader=loader)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert isinstance(app.screen, LoadingScreen)
            go.set()
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert isinstance(app.screen, InspectScreen)
            assert [c.data.offset for c in app.screen.query_one(NodeTree).root.children] == [0, 0x20000, 0x1CC000]

    async def test_loader_failure_is_shown_not_raised(self):
        from views.screens.loading import LoadingScreen

        def broken() -> Node:
            raise ValueError("0x28: expected _FVH")

        app = FwInspectApp(None, "bad.fd", loader=broken)
        async with app.run_test(size=SIZE) as pilot:
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert isinstance(app.screen, LoadingScreen)
            assert "expected _FVH" in str(app.screen.query_one("#loading-text").render())
            await pilot.press("q")
        assert app.return_code == 0
