"""The inspector's daily interactions driven headless (Textual `run_test` + Pilot): the hex cursor
and the path of nodes holding its byte, byte search, save, copy, the detail view, disassembly and
opening another source.

Two trees: the hand-built one over Debian's OVMF.fd (tests/views/handtree.py: volumes and the
files of uncompressed volumes, no decompressed space) and the real decode of the same file
(inspector.sources.load_source), whose FVMAIN_COMPACT holds an LZMA section with PEIFV and DXEFV.
Expected bytes come from the image file itself (and from `lzma` and capstone run here), never from
what the app printed.
"""
from __future__ import annotations

import lzma
import os
import re

import pytest

from decoders.model import Node, Space
from tests.realdata import bookworm
from tests.views.handtree import hand_tree
from views.app import FwInspectApp
from views.screens.detail import DetailScreen
from views.screens.disasm import DisasmScreen
from views.screens.inspect import InspectScreen
from views.screens.loading import LoadingScreen
from views.screens.prompt import PromptScreen
from views.widgets.field_table import FieldTable
from views.widgets.hex_view import HexView
from views.widgets.node_tree import NodeTree

SIZE = (120, 40)
BASE = 0xFFE00000            # the 2 MiB image ends at 4 GiB - 1
SECFV = 0x1CC000
SECMAIN = 0x1CC078           # SECFV's first file (UEFIExtract: DF1CCEF6-…, size 0x8F7E)
SECMAIN_SIZE = 0x8F7E
SECMAIN_GUID = "DF1CCEF6-F301-4A63-9661-FC6030DCC880"
FVMAIN_COMPACT_GUID = "48DB5E17-707C-472D-91CD-1613E7EF51B0"
SEC_ENTRY = 0xFFFD26A4       # SecMain's entry: it runs in place from flash (ImageBase 0xfffcc094 + 0x6610)
RANGE = re.compile(r"\[([\w-]+) 0x([0-9a-f]+)\.\.0x([0-9a-f]+)\]")


@pytest.fixture(scope="module")
def ovmf() -> bytes:
    return bookworm("OVMF.fd").read_bytes()


@pytest.fixture
def tree(ovmf) -> Node:
    return hand_tree(ovmf)


@pytest.fixture(scope="module")
def decoded() -> Node:
    from inspector.sources import load_source

    return load_source(bookworm("OVMF.fd"))[1]


def fv_at(root: Node, offset: int) -> Node:
    return next(n for n in root.children if n.kind == "fv" and n.offset == offset)


def notes(app) -> list[tuple[str, str, str]]:
    """(title, message, severity) of every notification shown so far."""
    return [(n.title, n.message, n.severity) for n in app._notifications]


def path_line(screen) -> str:
    return str(screen.query_one("#hex-path").render())


def ranges(line: str) -> list[tuple[str, int, int]]:
    return [(k, int(a, 16), int(b, 16)) for k, a, b in RANGE.findall(line)]


async def answer(pilot, text: str) -> None:
    """Type `text` into the prompt on screen (replacing its default) and press enter."""
    await pilot.pause()
    prompt = pilot.app.screen
    assert isinstance(prompt, PromptScreen)
    prompt.query_one("#prompt-input").value = text
    await pilot.press("enter")
    await pilot.pause()


async def done(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def select(pilot, node: Node) -> None:
    assert pilot.app.screen.node_tree.reveal(node)
    await pilot.pause()


@pytest.mark.asyncio
class TestHexCursor:
    async def test_keys_move_the_cursor_and_the_path_line_follows(self, tree):
        app = FwInspectApp(tree, "OVMF.fd")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            screen = app.screen
            hv = screen.query_one(HexView)
            hv.focus()
            await pilot.press("down")          # first key: the cursor appears on the node's first byte
            await pilot.pause()
            assert hv.cursor == 0
            await pilot.press("down", "right", "right")
            await pilot.pause()
            assert hv.cursor == 0x12
            await pilot.press("left")
            await pilot.pause()
            assert hv.cursor == 0x11
            # FV at 0 (the NV store) holds it, then the image.
            assert path_line(screen).startswith(f"0x11 @0x{BASE + 0x11:x}  ")
            assert ranges(path_line(screen)) == [("fv", 0, 0x20000), ("image", 0, 0x200000)]
            await pilot.press("end")
            await pilot.pause()
            assert hv.cursor == 0x1FFFFF
            await pilot.press("home", "left", "up")   # nothing before the first byte
            await pilot.pause()
            assert hv.cursor == 0
            rows = hv.scrollable_content_region.height
            await pilot.press(*["down"] * rows)        # one row past the last one shown
            await pilot.pause()
            assert hv.cursor == rows * 16 and int(hv.scroll_offset.y) == 1
            await pilot.press("home")
            await pilot.pause()
            await pilot.press("pagedown")
            await pilot.pause()
            assert hv.cursor == rows * 16
            assert int(hv.scroll_offset.y) <= rows < int(hv.scroll_offset.y) + rows

    async def test_the_cursor_byte_is_drawn_reversed_in_hex_and_ascii(self, tree, ovmf):
        app = FwInspectApp(tree, "OVMF.fd")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            hv = app.screen.query_one(HexView)
            hv.focus()
            await pilot.press("down", "down", "right")     # byte 0x11
            await pilot.pause()

            def reversed_on_screen(y: int) -> list[str]:
                # What the view draws (through its row cache), not a freshly built row.
                return [seg.text for seg in hv.render_line(y) if seg.style and seg.style.reverse]

            assert reversed_on_screen(1) == [f"{ovmf[0x11]:02x}", chr(ovmf[0x11])]   # 0x2b, "+" in ASCII
            await pilot.press("up")
            await pilot.pause()
            assert reversed_on_screen(1) == []
            assert reversed_on_screen(0) == ["00", "."]

    async def test_goto_puts_the_cursor_and_names_the_nodes_innermost_first(self, tree):
        app = FwInspectApp(tree, "OVMF.fd")
        secmain = next(f for f in fv_at(tree, SECFV).children if f.offset == SECMAIN)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await pilot.press("g")
            await answer(pilot, "0xfffcc100")        # an address: offset 0x1cc100, inside SecMain's file
            screen = app.screen
            assert screen.query_one(HexView).cursor == 0x1CC100
            assert screen.path_nodes == [secmain, fv_at(tree, SECFV), tree]
            line = path_line(screen)
            assert line.startswith("0x1cc100 @0xfffcc100  File ")
            assert ranges(line) == [("ffs", SECMAIN, SECMAIN + SECMAIN_SIZE), ("fv", SECFV, 0x200000),
                                    ("image", 0, 0x200000)]

    async def test_click_on_a_hex_cell_or_an_ascii_cell_moves_the_cursor(self, tree):
        app = FwInspectApp(tree, "OVMF.fd")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            hv = app.screen.query_one(HexView)
            # Row layout: "000000 ffe00000  xx xx … xx  xx … xx  ascii": 6 offset digits, 8 address
            # digits, so byte 0 is at column 17, byte i at 17 + 3i (+1 from byte 8), ASCII at 67.
            # The border adds one column and one row before the content.
            await pilot.click(HexView, offset=(1 + 17 + 3 * 5, 1 + 2))
            await pilot.pause()
            assert hv.cursor == 0x25
            await pilot.click(HexView, offset=(1 + 17 + 3 * 9 + 1 + 1, 1 + 3))   # second digit of byte 9
            await pilot.pause()
            assert hv.cursor == 0x39
            await pilot.click(HexView, offset=(1 + 67 + 15, 1 + 4))
            await pilot.pause()
            assert hv.cursor == 0x4F
            assert ranges(path_line(app.screen))[0] == ("fv", 0, 0x20000)

    async def test_enter_in_the_bytes_selects_the_innermost_node_in_the_tree(self, tree):
        app = FwInspectApp(tree, "OVMF.fd")
        secmain = next(f for f in fv_at(tree, SECFV).children if f.offset == SECMAIN)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            screen = app.screen
            await pilot.press("g")
            await answer(pilot, "0x1cc100")
            await pilot.press("enter")
            await pilot.pause()
            assert screen.current is secmain
            nt = screen.query_one(NodeTree)
            assert nt.current is secmain and nt.cursor_node.parent.is_expanded
            hv = screen.query_one(HexView)
            assert hv.cursor == 0x1CC100 and hv.span == (SECMAIN, SECMAIN + SECMAIN_SIZE)

    async def test_selecting_a_node_clears_the_cursor_and_the_path(self, tree):
        app = FwInspectApp(tree, "OVMF.fd")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await pilot.press("g")
            await answer(pilot, "0x20")
            await select(pilot, fv_at(tree, 0x20000))
            assert app.screen.query_one(HexView).cursor is None
            assert app.screen.path_nodes == []
            assert path_line(app.screen).startswith("Bytes: arrows or a click move the cursor")

    async def test_path_in_a_decompressed_volume_continues_to_the_image(self, decoded):
        dxe = next(f for f in decoded.find("ffs") if f.get("UI") == "DxeCore")
        pe = next(dxe.find("pe"))
        text = next(s for s in pe.children if s.title.startswith(".text"))
        app = FwInspectApp(decoded, "OVMF.fd")
        async with app.run_test(size=SIZE) as pilot:
            await select(pilot, pe)
            hv = app.screen.query_one(HexView)
            assert hv.space.name == "OVMF.fd/lzma@0x20090"
            hv.focus()
            hv.move_cursor_to(text.offset + 0x10)
            await pilot.pause()
            kinds = [n.kind for n in app.screen.path_nodes if n.kind != "evidence"]
            # .text < PE < PE32 section < DxeCore < DXEFV < its FV-image section < the LZMA section
            # (in the image) < its file < FVMAIN_COMPACT < the image.
            assert kinds == ["pe-section", "pe", "section", "ffs", "fv", "section", "section", "ffs", "fv", "image"]
            assert app.screen.path_nodes[0] is text
            await pilot.press("enter")
            await pilot.pause()
            assert app.screen.current is text
            assert app.screen.query_one(NodeTree).current is text


@pytest.mark.asyncio
class TestFindBytes:
    async def test_text_hits_are_a_list_stepped_with_n_and_shift_n(self, tree, ovmf):
        # Every "_FVH" of the file: the three volume signatures (+0x28 in the header), then four
        # in SecMain's code and data (it looks for volumes), read straight from the file.
        offsets = [m.start() for m in re.finditer(b"_FVH", ovmf)]
        assert offsets[:3] == [0x28, 0x20028, 0x1CC028] and len(offsets) == 7
        secmain = next(f for f in fv_at(tree, SECFV).children if f.offset == SECMAIN)
        app = FwInspectApp(tree, "OVMF.fd")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            screen = app.screen
            await pilot.press("f")
            await answer(pilot, "ascii:_FVH")
            await done(pilot)
            assert screen.find_status == "hit 1 of 7 (OVMF.fd, 0x28, ascii) in FV at 0x0 · given as ascii: — ascii 5f 46 56 48"
            assert screen.current is fv_at(tree, 0)
            await pilot.press("n")
            await pilot.pause()
            assert screen.find_status.startswith("hit 2 of 7 (OVMF.fd, 0x20028, ascii) in FV FVMAIN_COMPACT")
            assert screen.current is fv_at(tree, 0x20000)
            hv = screen.query_one(HexView)
            assert hv.cursor == 0x20028 and hv.mark == (0x20028, 0x2002C)
            assert screen.query_one(NodeTree).current is screen.current
            await pilot.press("N", "N")
            await pilot.pause()
            assert screen.find_status.startswith(f"hit 7 of 7 (OVMF.fd, 0x{offsets[6]:x}, ascii) in File ")
            assert screen.current is secmain and hv.cursor == offsets[6]
            assert screen.query_one(NodeTree).current is secmain

    async def test_hit_in_a_decompressed_volume_selects_its_node(self, decoded, ovmf):
        app = FwInspectApp(decoded, "OVMF.fd")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            screen = app.screen
            await pilot.press("f")
            await answer(pilot, "utf16:DxeCore")
            await done(pilot)
            # The UI section of DxeCore, in DXEFV inside the LZMA section: not in the image's bytes.
            assert "DxeCore".encode("utf-16-le") not in ovmf
            assert screen.find_status.startswith("hit 1 of 1 (OVMF.fd/lzma@0x20090, 0x")
            assert ", utf-16le) in USER_INTERFACE section" in screen.find_status
            node = screen.current
            assert node.kind == "section" and node.space.name == "OVMF.fd/lzma@0x20090"
            assert screen.query_one(NodeTree).current is node
            hv = screen.query_one(HexView)
            offset = hv.cursor
            assert bytes(hv.space.data[offset:offset + 14]) == "DxeCore".encode("utf-16-le")

    async def test_bad_patterns_say_why(self, tree):
        app = FwInspectApp(tree, "OVMF.fd")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            screen = app.screen
            await pilot.press("f")
            await answer(pilot, "hex:4g")
            assert screen.find_status.startswith("find: ")
            assert "4g" in screen.find_status
            assert notes(app)[-1][0] == "Find bytes" and notes(app)[-1][2] == "error"
            await pilot.press("f")
            await answer(pilot, "")
            assert screen.find_status == "find: empty pattern: give hex bytes, text:…, a GUID or u32:…"
            assert screen.current is tree       # nothing moved
            await pilot.press("f")
            await answer(pilot, "ascii:no such bytes anywhere")
            await done(pilot)
            assert screen.find_status.startswith("no hit in 1 spaces: ")

    async def test_a_pattern_matching_everywhere_lists_the_first_10000(self, tree):
        app = FwInspectApp(tree, "OVMF.fd")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            screen = app.screen
            await pilot.press("f")
            await answer(pilot, "??")
            await done(pilot)
            assert len(screen.find_result.hits) == 10_000 and screen.find_result.truncated
            assert screen.find_status.startswith("hit 1 of the first 10,000 hits (OVMF.fd, 0x0, hex) in FV at 0x0")
            await pilot.press("N")
            await pilot.pause()
            assert screen.find_status.startswith("hit 10,000 of the first 10,000 hits (OVMF.fd, 0x270f, hex)")

    async def test_n_steps_the_last_search_made(self, tree):
        app = FwInspectApp(tree, "OVMF.fd")
        pads = [n for n in tree.walk() if n.title.startswith("Pad file")]
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            screen = app.screen
            await pilot.press("f")
            await answer(pilot, "ascii:_FVH")
            await done(pilot)
            await pilot.press("slash", *"pad file", "enter", "escape")
            await pilot.pause()
            assert screen.current is pads[0]
            await pilot.press("n")
            await pilot.pause()
            assert screen.current is pads[1]         # the node search's next match, not a byte hit


@pytest.mark.asyncio
class TestSave:
    async def test_w_writes_the_node_bytes_to_the_path_given(self, tree, ovmf, tmp_path, monkeypatch):
        monkeypatch.chdir(tmp_path)
        secmain = next(f for f in fv_at(tree, SECFV).children if f.offset == SECMAIN)
        app = FwInspectApp(tree, "OVMF.fd")
        async with app.run_test(size=SIZE) as pilot:
            await select(pilot, secmain)
            await pilot.press("w")
            await pilot.pause()
            prompt = app.screen
            assert prompt.query_one("#prompt-input").value == str(tmp_path / f"File_{SECMAIN_GUID}.bin")
            await answer(pilot, str(tmp_path / "secmain.ffs"))
            await done(pilot)
            assert notes(app)[-1] == ("Saved", f"wrote {tmp_path / 'secmain.ffs'} (0x8f7e bytes)", "information")
        assert (tmp_path / "secmain.ffs").read_bytes() == ovmf[SECMAIN:SECMAIN + SECMAIN_SIZE]
        assert sorted(p.name for p in tmp_path.iterdir()) == ["secmain.ffs"]   # no temporary left

    async def test_shift_w_writes_what_the_lzma_section_decompresses_to(self, decoded, ovmf, tmp_path):
        section = next(n for n in decoded.find("section") if n.title == "GUID_DEFINED section: LZMA")
        # The independent oracle: the section's data (after its 0x18-byte GUID-defined header)
        # through Python's lzma, as LzmaCustomDecompressLib reads it (the .lzma "alone" format).
        start = section.offset + section.get("DataOffset")
        expected = lzma.decompress(ovmf[start:section.offset + section.size], format=lzma.FORMAT_ALONE)
        assert len(expected) == 0xCE0090
        app = FwInspectApp(decoded, "OVMF.fd")
        async with app.run_test(size=SIZE) as pilot:
            await select(pilot, section)
            await pilot.press("W")
            await answer(pilot, str(tmp_path / "fvmain.bin"))
            await done(pilot)
            await pilot.press("w")
            await answer(pilot, str(tmp_path / "stored.bin"))
            await done(pilot)
        assert (tmp_path / "fvmain.bin").read_bytes() == expected
        assert (tmp_path / "stored.bin").read_bytes() == ovmf[section.offset:section.offset + section.size]

    async def test_shift_w_on_a_node_without_a_decompressed_space_says_so(self, tree):
        app = FwInspectApp(tree, "OVMF.fd")
        async with app.run_test(size=SIZE) as pilot:
            await select(pilot, fv_at(tree, SECFV))
            await pilot.press("W")
            await pilot.pause()
            assert isinstance(app.screen, InspectScreen)
            title, message, severity = notes(app)[-1]
            assert severity == "warning"
            assert message.endswith("has no decompressed content: w saves its bytes as stored")

    async def test_an_unwritable_path_is_a_message_and_leaves_nothing(self, tree, tmp_path):
        (tmp_path / "a-file").write_bytes(b"x")
        app = FwInspectApp(tree, "OVMF.fd")
        async with app.run_test(size=SIZE) as pilot:
            await select(pilot, fv_at(tree, SECFV))
            await pilot.press("w")
            await answer(pilot, str(tmp_path / "a-file" / "out.bin"))
            await done(pilot)
            assert notes(app)[-1] == ("", f"not saved: {tmp_path / 'a-file' / 'out.bin'}: Not a directory", "error")
            await pilot.press("w")
            await answer(pilot, str(tmp_path))
            await done(pilot)
            assert notes(app)[-1] == ("", f"not saved: {tmp_path} is a folder", "error")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]

    async def test_a_write_that_fails_half_way_keeps_the_old_file(self, tree, tmp_path, monkeypatch):
        target = tmp_path / "secfv.bin"
        target.write_bytes(b"old")

        def full_disk(src, dst):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "replace", full_disk)
        app = FwInspectApp(tree, "OVMF.fd")
        async with app.run_test(size=SIZE) as pilot:
            await select(pilot, fv_at(tree, SECFV))
            await pilot.press("w")
            await answer(pilot, str(target))
            await done(pilot)
            assert notes(app)[-1] == ("", f"not saved: {target}: No space left on device", "error")
        assert target.read_bytes() == b"old"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["secfv.bin"]


@pytest.mark.asyncio
class TestCopy:
    async def test_y_on_a_field_copies_its_whole_value(self, tree):
        app = FwInspectApp(tree, "OVMF.fd")
        async with app.run_test(size=SIZE) as pilot:
            await select(pilot, fv_at(tree, 0x20000))
            table = app.screen.query_one(FieldTable)
            table.focus()
            table.move_cursor(row=9)             # FvName
            await pilot.press("y")
            await pilot.pause()
            assert app.clipboard == FVMAIN_COMPACT_GUID
            assert notes(app)[-1] == ("Copied FvName", FVMAIN_COMPACT_GUID, "information")
            table.move_cursor(row=0)             # ZeroVector: 16 bytes, copied as hex
            await pilot.press("y")
            await pilot.pause()
            assert app.clipboard == "00" * 16

    async def test_y_on_the_tree_copies_the_node_guid_or_address(self, tree):
        app = FwInspectApp(tree, "OVMF.fd")
        async with app.run_test(size=SIZE) as pilot:
            await select(pilot, fv_at(tree, 0x20000))
            await pilot.press("y")
            await pilot.pause()
            # The volume's own name (FvName), not the file-system GUID it also holds.
            assert app.clipboard == FVMAIN_COMPACT_GUID
            await select(pilot, tree)
            await pilot.press("y")
            await pilot.pause()
            assert app.clipboard == f"0x{BASE:x}"
            assert notes(app)[-1][0] == "Copied address"

    async def test_y_on_the_bytes_copies_the_cursor_address(self, tree):
        app = FwInspectApp(tree, "OVMF.fd")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("g")
            await answer(pilot, "0x1cc100")
            await pilot.press("y")
            await pilot.pause()
            assert app.clipboard == "0xfffcc100"


@pytest.mark.asyncio
class TestDetail:
    async def test_enter_on_a_field_shows_its_value_and_bytes(self, tree):
        app = FwInspectApp(tree, "OVMF.fd")
        async with app.run_test(size=SIZE) as pilot:
            await select(pilot, fv_at(tree, 0x20000))
            table = app.screen.query_one(FieldTable)
            table.focus()
            table.move_cursor(row=9)             # FvName at 0x20060 (the extended header)
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, DetailScreen)
            assert app.screen.plain == (
                "Value\nFVMAIN_COMPACT (48DB5E17-707C-472D-91CD-1613E7EF51B0)\n\n"
                "Raw value\n48DB5E17-707C-472D-91CD-1613E7EF51B0\n\n"
                "Where\noffset 0x20060  size 0x10  address 0xffe20060  in OVMF.fd\n\n"
                "Bytes\n020060  ffe20060  17 5e db 48 7c 70 2d 47 91 cd 16 13 e7 ef 51 b0  .^.H|p-G......Q.")
            await pilot.press("escape")
            await pilot.pause()
            assert isinstance(app.screen, InspectScreen)

    async def test_a_long_value_is_shown_whole(self, decoded):
        mrtd = next(decoded.find("mrtd"))
        value = mrtd.get("MRTD").hex()
        assert len(value) == 96
        app = FwInspectApp(decoded, "OVMF.fd")
        async with app.run_test(size=SIZE) as pilot:
            await select(pilot, mrtd)
            app.screen.query_one(FieldTable).focus()
            await pilot.press("enter")
            await pilot.pause()
            # All 96 digits, where the fields pane shows the first 50 (its bytes have no location:
            # a computed value).
            assert app.screen.plain == f"Value\n{value}\n\nWhere\nno location recorded (node mrtd at 0x0)"

    async def test_a_hostile_value_keeps_its_lines_and_loses_its_control_characters(self, ovmf):
        root = Node("x", "x", Space("blob", ovmf[:64]), 0, 64)
        root.add("Path", "PciRoot(0x0)/Pci(0x1,0x1)\x1b[31m/" + "Sata(0x0,0xFFFF,0x0)/" * 20, 4, 2)
        app = FwInspectApp(root, "blob")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            app.screen.query_one(FieldTable).focus()
            await pilot.press("enter")
            await pilot.pause()
            plain = app.screen.plain
            assert plain.startswith("Value\nPciRoot(0x0)/Pci(0x1,0x1)\ufffd[31m/Sata(0x0,0xFFFF,0x0)/")
            assert plain.count("Sata(0x0,0xFFFF,0x0)") == 20
            assert plain.endswith(f"Bytes\n0004  {'00 00':<47}  ..")


@pytest.mark.asyncio
class TestDisassembly:
    async def test_d_disassembles_secmain_from_its_entry_point(self, decoded, ovmf):
        from capstone import CS_ARCH_X86, CS_MODE_64, Cs

        secmain = next(f for f in decoded.find("ffs") if f.get("UI") == "SecMain")
        # Independent: capstone in 64-bit mode over the file's bytes at the entry's flash offset.
        cs = Cs(CS_ARCH_X86, CS_MODE_64)
        start = SEC_ENTRY - BASE
        expected = [f"{i.address:08x}  {bytes(i.bytes).hex(' ')}" for i in
                    cs.disasm(ovmf[start:start + 64], SEC_ENTRY, 4)]
        app = FwInspectApp(decoded, "OVMF.fd")
        async with app.run_test(size=SIZE) as pilot:
            await select(pilot, secmain)
            await pilot.press("d")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, DisasmScreen)
            lines = screen.plain.splitlines()
            assert lines[0] == "PE32+ X64 boot-service driver, entry 0xfffd26a4: X64, base 0xfffcc094, entry 0xfffd26a4"
            assert lines[1] == "64-bit long mode"
            code = [ln for ln in lines if re.match(r"[→ ] [0-9a-f]{8}  ", ln)]
            assert len(code) == 64
            assert code[0] == "→ fffd26a4  b8 00 b0 80 00            mov eax, 0x80b000"
            assert [ln[2:].split("  ")[0] + "  " + ln[12:37].strip() for ln in code[:4]] == expected

    async def test_g_in_the_disassembly_goes_to_an_address_inside_the_image(self, decoded):
        secmain = next(f for f in decoded.find("ffs") if f.get("UI") == "SecMain")
        app = FwInspectApp(decoded, "OVMF.fd")
        async with app.run_test(size=SIZE) as pilot:
            await select(pilot, secmain)
            await pilot.press("d")
            await pilot.pause()
            screen = app.screen
            await pilot.press("g")
            await answer(pilot, "0xfffd26c6")
            code = [ln for ln in screen.plain.splitlines() if re.match(r"[→ ] [0-9a-f]{8}  ", ln)]
            assert code[0] == "  fffd26c6  48 b8 a5 5a a5 5a a5 5a … movabs rax, 0x5aa55aa55aa55aa5"
            # Outside the image: the reason, and the view stays where it was.
            await pilot.press("g")
            await answer(pilot, "0x1000")
            assert notes(app)[-1][0] == "Disassembly" and notes(app)[-1][2] == "error"
            assert "0x1000 is not in the stored bytes" in notes(app)[-1][1]
            assert screen.address == 0xFFFD26C6
            await pilot.press("e")
            await pilot.pause()
            assert screen.address is None and screen.plain.splitlines()[4].startswith("→ fffd26a4")
            await pilot.press("escape")
            await pilot.pause()
            assert isinstance(app.screen, InspectScreen)

    async def test_symbols_of_a_build_folder_name_the_code(self):
        from inspector.sources import load_source
        from tests.realdata import debug_symbols, firmware

        root = load_source(firmware("ovmf-debug/OVMF.fd"))[1]
        platform_pei = next(f for f in root.find("ffs") if f.get("UI") == "PlatformPei")
        app = FwInspectApp(root, "OVMF.fd", symbols=str(debug_symbols()))
        async with app.run_test(size=SIZE) as pilot:
            await select(pilot, platform_pei)
            await pilot.press("d")
            await pilot.pause()
            code = [ln for ln in app.screen.plain.splitlines() if re.match(r"[→ ] [0-9a-f]{8}  ", ln)]
            # The entry is edk2's _ModuleEntryPoint (the .debug file of this very build).
            assert code[0].startswith("→ ") and code[0].endswith("  <_ModuleEntryPoint>")
            assert re.search(r"  <_ModuleEntryPoint\+0x[0-9a-f]+>$", code[1])
            assert f"symbols from {debug_symbols() / 'PlatformPei.debug'}" in app.screen.plain.splitlines()

    async def test_d_without_an_image_says_so(self, tree):
        app = FwInspectApp(tree, "OVMF.fd")
        async with app.run_test(size=SIZE) as pilot:
            await select(pilot, fv_at(tree, SECFV))
            await pilot.press("d")
            await pilot.pause()
            assert isinstance(app.screen, InspectScreen)
            assert notes(app)[-1][1].endswith("no PE or TE image here (select a driver, its PE32/TE section or the image)")


@pytest.mark.asyncio
class TestOpen:
    async def test_o_opens_another_source_in_place_and_the_title_names_it(self, tree, ovmf):
        other = hand_tree(ovmf[:0x20000], "NV.fd")
        opened = []

        def opener(path: str):
            opened.append(path)
            return "image", other

        app = FwInspectApp(tree, "/usr/share/ovmf/OVMF.fd", opener=opener)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert (app.title, app.sub_title) == ("fwinspect: OVMF.fd", "/usr/share/ovmf/OVMF.fd")
            await pilot.press("o")
            await pilot.pause()
            assert app.screen.query_one("#prompt-input").value == "/usr/share/ovmf/"
            await answer(pilot, "/tmp/NV.fd")
            await done(pilot)
            assert opened == ["/tmp/NV.fd"]
            screen = app.screen
            assert isinstance(screen, InspectScreen) and screen.root is other
            assert [c.data for c in screen.query_one(NodeTree).root.children] == other.children
            assert (app.title, app.sub_title) == ("fwinspect: NV.fd", "/tmp/NV.fd (image)")
            assert len(app.screen_stack) == 1
            # The new tree's byte index answers the cursor.
            await pilot.press("g")
            await answer(pilot, "0x10")
            assert screen.path_nodes == [other.children[0], other]

    async def test_o_on_a_real_file_decodes_it(self, tree):
        code = bookworm("OVMF_CODE_4M.fd")
        app = FwInspectApp(tree, "OVMF.fd")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("o")
            await answer(pilot, str(code))
            await done(pilot)
            assert app.title == "fwinspect: OVMF_CODE_4M.fd"
            assert app.screen.root.kind == "image" and app.screen.root.size == code.stat().st_size

    async def test_a_source_that_cannot_be_opened_keeps_what_was_open(self, tree, tmp_path):
        app = FwInspectApp(tree, "OVMF.fd")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("o")
            await answer(pilot, str(tmp_path / "missing.fd"))
            await done(pilot)
            assert not isinstance(app.screen, LoadingScreen)
            assert app.screen.root is tree and app.title == "fwinspect: OVMF.fd"
            title, message, severity = notes(app)[-1]
            assert (title, severity) == ("Open", "error")
            assert message == f"could not open {tmp_path / 'missing.fd'}: No such file or directory"


@pytest.mark.asyncio
class TestKeysListed:
    async def test_help_and_palette_list_the_daily_keys(self, tree):
        from views.screens.help import HelpScreen

        app = FwInspectApp(tree, "OVMF.fd")
        async with app.run_test(size=SIZE) as pilot:
            titles = {c.title for c in app.get_system_commands(app.screen)}
            assert {"Find bytes", "Save bytes", "Save decompressed bytes", "Copy", "Disassemble", "Open"} <= titles
            await pilot.press("question_mark")
            await pilot.pause()
            assert isinstance(app.screen, HelpScreen)
            rows = dict(line.split("\t") for line in app.screen.text().splitlines())
            assert rows["f"] == "Find bytes"
            assert rows["w"] == "Save bytes" and rows["W"] == "Save decompressed bytes"
            assert (rows["y"], rows["d"], rows["o"]) == ("Copy", "Disassemble", "Open")
            assert rows["enter (bytes)"] == "Select the innermost node holding the cursor byte"
            assert rows["enter (fields)"] == "The whole value of the field, with its bytes"


@pytest.mark.asyncio
class TestSlashBytes:
    async def test_slash_with_a_pattern_prefix_searches_bytes_and_enter_steps(self, tree):
        app = FwInspectApp(tree, "OVMF.fd")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            screen = app.screen
            await pilot.press("slash", *"ascii:_FVH", "enter")
            await done(pilot)
            assert screen.find_status.startswith("hit 1 of 7 (OVMF.fd, 0x28, ascii) in FV at 0x0")
            assert str(screen.search_bar.query_one("#search-status").render()) == "1 of 7"
            await pilot.press("enter")
            await pilot.pause()
            assert screen.find_status.startswith("hit 2 of 7 (OVMF.fd, 0x20028, ascii)")
            assert str(screen.search_bar.query_one("#search-status").render()) == "2 of 7"
            assert screen.current is fv_at(tree, 0x20000)
            # Without a prefix, the same bar searches nodes as before.
            screen.search_bar.input.value = "Pad file"
            await pilot.press("enter")
            await pilot.pause()
            assert screen.current.title.startswith("Pad file")


@pytest.mark.asyncio
class TestFieldTableWidths:
    async def test_fields_drawn_before_the_columns_are_measured_are_redrawn(self, tree):
        """A node's rows drawn in the last node's column widths (DataTable measures new rows on
        idle) are drawn again once measured: the offsets are whole, not cut to "0x1cc0"."""
        secmain = next(f for f in fv_at(tree, SECFV).children if f.offset == SECMAIN)
        app = FwInspectApp(tree, "OVMF.fd")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            table = app.screen.query_one(FieldTable)
            table.node = secmain
            assert "0x1cc078" not in table.render_line(1).text   # drawn in the root's widths
            await pilot.pause()
            assert table.render_line(1).text.split()[:2] == ["Name", "0x1cc078"]
