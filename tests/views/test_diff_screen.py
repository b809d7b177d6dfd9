"""The diff screen (`fwinspect A B`) driven headless (Textual `run_test` + Pilot) on real images.

Two pairs: Debian 12's OVMF.fd against Debian 13's (real differences: modules added, removed and
changed, a volume grown), and Debian 12's OVMF.fd against a copy with one byte of SecMain's code
changed (SECFV is not compressed, so the byte sits at a known offset of both files). The diff
tree is inspector/diff.py's; every expected place and value comes from the image files or the
decoded images (inspector.image.load_image), never from what the app printed.
"""
from __future__ import annotations

import pytest
from rich.style import Style
from textual.widgets import Input

from decoders.model import Node
from inspector.diff import diff_images, load_pair
from tests.realdata import bookworm, trixie
from tests.views.handtree import hand_tree
from views.diff_app import DiffApp, pair_names
from views.screens.diff import DiffScreen
from views.screens.help import HelpScreen
from views.widgets.diff_fields import DECODED, DiffFieldTable
from views.widgets.diff_hex import DIFF, DiffHexView, difference_ranges, first_difference
from views.widgets.diff_tree import MARKERS, DiffTree, change_of

SIZE = (120, 40)
SECFV = "763BED0D-DE9F-48F5-81F1-3E90E1B1A015"
SEC_MAIN = "DF1CCEF6-F301-4A63-9661-FC6030DCC880"  # OvmfPkg/Sec/SecMain.inf FILE_GUID
# The byte changed in the copy: 0x1000 into SecMain's FFS file, inside its PE32 section's .text.
CHANGED_AT_FROM_FILE = 0x1000


# -- data ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_pair():
    """Debian 12's OVMF.fd (A) against Debian 13's (B), decoded, and their diff."""
    img_a, img_b = load_pair(bookworm("OVMF.fd"), trixie("OVMF.fd"))
    return diff_images(img_a.root, img_b.root), img_a, img_b


@pytest.fixture(scope="module")
def real_pair_all():
    img_a, img_b = load_pair(bookworm("OVMF.fd"), trixie("OVMF.fd"))
    return diff_images(img_a.root, img_b.root, all_files=True), img_a, img_b


@pytest.fixture(scope="module")
def one_byte(tmp_path_factory):
    """Debian 12's OVMF.fd (A) and a copy (B) with one byte of SecMain's code flipped; SecMain's
    place comes from the FFS headers (tests/views/handtree.py), not from the diff."""
    path_a = bookworm("OVMF.fd")
    data = bytearray(path_a.read_bytes())
    secfv = next(n for n in hand_tree(bytes(data)).children if SECFV in n.title)
    sec_main = next(f for f in secfv.children if SEC_MAIN in f.title)
    at = sec_main.offset + CHANGED_AT_FROM_FILE
    data[at] ^= 0xFF
    path_b = tmp_path_factory.mktemp("one-byte") / "OVMF-one-byte.fd"
    path_b.write_bytes(bytes(data))
    img_a, img_b = load_pair(path_a, path_b)
    return diff_images(img_a.root, img_b.root), img_a, img_b, sec_main, at


def _ident(node: Node) -> str:
    return str(node.get("FvName") or node.get("Name") or node.get("FileSystemGuid")).lower()


def contract_diff(a: Node, b: Node) -> Node:
    """A diff tree made by hand the way inspector/diff.py's docstring says, over two hand trees
    (tests/views/handtree.py): volumes by FvName, files by GUID, pad files left out; `Change` by
    bytes; B's bytes with A's in OffsetA/SpaceA/SizeA, a removed node at A's bytes. The snapshot of
    it stays put whatever diff.py's wording becomes."""
    def node(kind: str, na: Node | None, nb: Node | None, title: str) -> Node:
        at = nb if nb is not None else na
        change = "added" if na is None else "removed" if nb is None else \
            "unchanged" if na.bytes == nb.bytes else "changed"
        d = Node(kind, title, at.space, at.offset, at.size)
        d.add("Change", change)
        d.add("Name", _ident(at))
        d.add("SizeA", None if na is None else na.size)
        d.add("SizeB", None if nb is None else nb.size)
        if na is not None:
            d.add("OffsetA", na.offset)
            d.add("SpaceA", na.space.name)
        if change == "changed" and kind == "diff-file":
            d.add("Changes", ["content"])
        return d

    root = node("diff", a, b, f"{a.title} -> {b.title}")
    root.append(Node("diff-summary", "Summary: files +1 -1 ~1"))
    files_of = lambda fv: {_ident(f): f for f in fv.children if f.kind == "ffs" and f.title != "Pad file"}  # noqa: E731
    volumes_a = {_ident(v): v for v in a.children}
    for vb in b.children:
        va = volumes_a.get(_ident(vb))
        dv = root.append(node("diff-volume", va, vb, vb.title))
        fa, fb = files_of(va), files_of(vb)
        for key in list(fa) + [k for k in fb if k not in fa]:
            dv.append(node("diff-file", fa.get(key), fb.get(key), (fb.get(key) or fa.get(key)).title))
        if any(c.get("Change") != "unchanged" for c in dv.children):
            dv.fields[0].value = "changed"
    return root


@pytest.fixture(scope="module")
def contract_pair():
    """Debian 12's OVMF.fd (A) and a copy (B) where a byte of SecMain changed and the volume-top
    file was renamed (a new GUID: removed from A, added in B), with their diff made by hand."""
    data_a = bookworm("OVMF.fd").read_bytes()
    tree_a = hand_tree(data_a)
    secfv = next(n for n in tree_a.children if SECFV in n.title)
    sec_main = next(f for f in secfv.children if SEC_MAIN in f.title)
    top = secfv.children[-1]
    data = bytearray(data_a)
    data[sec_main.offset + CHANGED_AT_FROM_FILE] ^= 0xFF
    data[top.offset] ^= 0x01  # first byte of EFI_FFS_FILE_HEADER.Name
    tree_b = hand_tree(bytes(data), "OVMF-edited.fd")
    return contract_diff(tree_a, tree_b), tree_a, tree_b


def app_for(pair, name_a: str = "OVMF.fd (12)", name_b: str = "OVMF.fd (13)") -> DiffApp:
    root, img_a, img_b = pair[:3]
    return DiffApp(name_a, name_b, loaded=(root, img_a, img_b))


def ffs_by_ui(root: Node, ui: str) -> Node:
    return next(n for n in root.walk() if n.kind == "ffs" and n.get("UI") == ui)


def diff_file(root: Node, ui: str) -> Node:
    return next(n for n in root.walk() if n.kind == "diff-file" and n.get("UiName") == ui)


def first_rows(texts) -> dict[str, tuple[str, str, str]]:
    """Rows by field name, the first of a name (the place's Size before a decoded header's Size)."""
    out: dict[str, tuple[str, str, str]] = {}
    for r in texts:
        out.setdefault(r[0], r)
    return out


def hex_lines(view: DiffHexView) -> list[str]:
    return [view.render_line(y).text for y in range(view.scrollable_content_region.height)]


def diff_cells(view: DiffHexView, offset: int) -> list[str]:
    """The texts drawn in the differing-byte style on the row holding `offset`."""
    style = view._styles()["levels"][DIFF]
    row = offset // 16
    return [seg.text for seg in view.render_row(row) if seg.style == style]


async def settle(pilot) -> None:
    await pilot.pause()
    await pilot.pause()


async def select(pilot, node: Node) -> None:
    await settle(pilot)  # the screen has selected its first change
    screen = pilot.app.screen
    assert screen.node_tree.reveal(node)
    await settle(pilot)
    assert screen.current is node


# -- one byte changed ------------------------------------------------------------------------------

@pytest.mark.asyncio
class TestOneByteChanged:
    async def test_opens_on_the_changed_module(self, one_byte):
        """The first change is selected on open: SecMain's file, the one module that differs."""
        root, img_a, img_b, sec_main, at = one_byte
        app = app_for(one_byte, "OVMF.fd", "OVMF-one-byte.fd")
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, DiffScreen)
            current = screen.current
            assert current.kind == "diff-file" and current.get("UiName") == "SecMain"
            assert current.get("Name") == SEC_MAIN.lower()
            assert screen.node_tree.current is current

    async def test_fields_show_a_and_b(self, one_byte):
        root, img_a, img_b, sec_main, at = one_byte
        app = app_for(one_byte, "OVMF.fd", "OVMF-one-byte.fd")
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            table = app.screen.query_one(DiffFieldTable)
            headers = [str(c.label) for c in table.columns.values()]
            assert headers == ["Field", "A: OVMF.fd", "B: OVMF-one-byte.fd"]
            rows = first_rows(table.row_texts())
            assert rows["Change"][1:] == ("changed", "")
            # SecMain sits at the same place in both files (only a byte inside it changed).
            assert rows["Offset"][1:] == (f"0x{sec_main.offset:x}", f"0x{sec_main.offset:x}")
            assert rows["Size"][1:] == (f"0x{sec_main.size:x}", f"0x{sec_main.size:x}")
            assert rows["Changes"][1] == "code"

    async def test_hex_views_highlight_exactly_the_changed_byte(self, one_byte):
        root, img_a, img_b, sec_main, at = one_byte
        app = app_for(one_byte, "OVMF.fd", "OVMF-one-byte.fd")
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            hex_a, hex_b = app.screen.hex_a, app.screen.hex_b
            span = (sec_main.offset, sec_main.offset + sec_main.size)
            assert hex_a.span == span and hex_b.span == span
            assert hex_a.space is img_a.root.space and hex_b.space is img_b.root.space
            assert hex_a.differing() == [(at, at + 1)]
            assert hex_b.differing() == [(at, at + 1)]
            # Drawn: only that byte's hex digits and its ASCII cell, in the differing style.
            old, new = img_a.data[at], img_b.data[at]
            assert old ^ new == 0xFF
            ascii_of = lambda b: chr(b) if 0x20 <= b < 0x7F else "."  # noqa: E731
            assert diff_cells(hex_a, at) == [f"{old:02x}", ascii_of(old)]
            assert diff_cells(hex_b, at) == [f"{new:02x}", ascii_of(new)]
            # Both views are scrolled to the changed byte's row, which shows each file's bytes.
            row = at - at % 16
            line_a = next(s for s in hex_lines(hex_a) if s.startswith(f"{row:06x} "))
            line_b = next(s for s in hex_lines(hex_b) if s.startswith(f"{row:06x} "))
            assert bytes(img_a.data[row:row + 8]).hex(" ") in line_a
            assert bytes(img_b.data[row:row + 8]).hex(" ") in line_b
            assert f"{old:02x}" in line_a.split()[2:18] and f"{new:02x}" in line_b.split()[2:18]

    async def test_n_on_the_only_change_stays_and_says_one_of_one(self, one_byte):
        app = app_for(one_byte)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            first = app.screen.current
            await pilot.press("n")
            await settle(pilot)
            assert app.screen.current is first
            assert app.screen.node_tree.border_subtitle.startswith("change 1 of 1")


# -- Debian 12 against Debian 13 -------------------------------------------------------------------

@pytest.mark.asyncio
class TestRealPair:
    async def test_title_names_both_files(self, real_pair):
        names = pair_names(bookworm("OVMF.fd"), trixie("OVMF.fd"))
        # Two files called OVMF.fd: the title tells them apart by their paths.
        assert names[0] != names[1] and all(n.endswith("OVMF.fd") for n in names)
        app = app_for(real_pair, *names)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            assert names[0] in app.sub_title and names[1] in app.sub_title
            assert app.sub_title.index(names[0]) < app.sub_title.index(names[1])

    async def test_tree_marks_each_node_by_its_change(self, real_pair):
        root = real_pair[0]
        app = app_for(real_pair)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            tree = app.screen.query_one(DiffTree)
            shown = {id(item.data): item for item in tree.root.children}
            assert [item.data for item in tree.root.children] == root.children
            seen = set()
            for child in root.children:
                change = change_of(child)
                item = shown[id(child)]
                label = tree.render_label(item, Style(), Style())
                assert label.plain.startswith(MARKERS[change] + " "), label.plain
                # The marker takes the colour of its change (the theme's success/error/warning).
                colour = tree.get_component_rich_style(f"diff-tree--{change}", partial=True).color
                assert label.get_style_at_offset(app.console, 0).color == colour
                seen.add(change)
            assert {"changed", "added", "removed"} <= seen  # the SEV sections: one removed, two added
            # The mark diff.py puts at the start of some titles is not drawn twice.
            assert not any(item.label.plain.startswith(("~ ", "+ ", "- ")) for item in tree.root.children)

    async def test_added_and_removed_nodes_have_one_side(self, real_pair):
        root, img_a, img_b = real_pair
        added = next(n for n in root.walk() if n.kind == "diff-file" and change_of(n) == "added")
        removed = next(n for n in root.walk() if n.kind == "diff-file" and change_of(n) == "removed")
        app = app_for(real_pair)
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            await select(pilot, added)
            assert screen.hex_a.space is None and "not in A" in hex_lines(screen.hex_a)[0]
            assert screen.hex_b.span == (added.offset, added.offset + added.size)
            # All of an added file's bytes are new.
            assert screen.hex_b.differing() == [(added.offset, added.offset + added.size)]
            rows = first_rows(screen.fields.row_texts())
            assert rows["Offset"][1:] == ("", f"0x{added.offset:x}")
            await select(pilot, removed)
            assert screen.hex_b.space is None and "not in B" in hex_lines(screen.hex_b)[0]
            # A removed node points at A's bytes: a file of A's tree with that GUID.
            in_a = next(n for n in img_a.root.walk() if n.kind == "ffs" and str(n.get("Name")).lower()
                        == removed.get("Name"))
            assert screen.hex_a.space is in_a.space
            assert screen.hex_a.span == (in_a.offset, in_a.offset + in_a.size)
            rows = first_rows(screen.fields.row_texts())
            assert rows["Offset"][1:] == (f"0x{in_a.offset:x}", "")

    async def test_changed_module_fields_a_then_b(self, real_pair):
        """PlatformPei grew from Debian 12 to 13: its sizes and places, A's first, B's second, as
        the decoded FFS files of each image have them."""
        root, img_a, img_b = real_pair
        fa, fb = ffs_by_ui(img_a.root, "PlatformPei"), ffs_by_ui(img_b.root, "PlatformPei")
        assert fa.size != fb.size
        app = app_for(real_pair)
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            await select(pilot, diff_file(root, "PlatformPei"))
            rows = first_rows(screen.fields.row_texts())
            assert rows["Size"][1:] == (f"0x{fa.size:x}", f"0x{fb.size:x}")
            assert rows["Offset"][1:] == (f"0x{fa.offset:x}", f"0x{fb.offset:x}")
            # The hex views: each side's own space and bytes.
            assert screen.hex_a.space is fa.space and screen.hex_b.space is fb.space
            assert screen.hex_a.span == (fa.offset, fa.offset + fa.size)
            assert screen.hex_b.span == (fb.offset, fb.offset + fb.size)
            # The FFS header's Size field differs: shown A | B below the diff's own fields.
            texts = screen.fields.row_texts()
            names = [r[0] for r in texts]
            assert any(DECODED in n for n in names)
            decoded = texts[next(i for i, n in enumerate(names) if DECODED in n) + 1:]
            size_row = next(r for r in decoded if r[0] == "Size")
            assert size_row[1:] == (fa.field("Size").text, fb.field("Size").text)

    async def test_only_the_nodes_bytes_are_compared(self, real_pair):
        """PlatformPei is 0x6242 bytes in A and 0xd842 in B: A's bytes past its end are not its
        own and are never marked as differing, though B has other bytes at that position."""
        root, img_a, img_b = real_pair
        fa, fb = ffs_by_ui(img_a.root, "PlatformPei"), ffs_by_ui(img_b.root, "PlatformPei")
        app = app_for(real_pair)
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            await select(pilot, diff_file(root, "PlatformPei"))
            end = fa.offset + fa.size
            row = end // 16
            levels = screen.hex_a.byte_levels(row)
            inside, outside = levels[:end % 16], levels[end % 16:]
            assert outside and all(level == 0 for level in outside)
            # Inside, a byte is marked differing exactly when B's byte at that position differs.
            for i, level in enumerate(inside):
                at = row * 16 + i
                differs = img_a.root.space.data is not None and \
                    fa.space.data[at] != fb.space.data[fb.offset + at - fa.offset]
                assert level == (3 if differs else 1)

    async def test_volume_pairs_a_then_b(self, real_pair):
        """FVMAIN_COMPACT: its used and free space A | B as diff.py counted them, and its
        FvLength as each image's volume header has it."""
        root, img_a, img_b = real_pair
        volume = next(n for n in root.children if n.kind == "diff-volume" and n.get("Label") == "FVMAIN_COMPACT")
        assert volume.get("FreeA") != volume.get("FreeB")
        fv_a = next(n for n in img_a.root.children if n.kind == "fv" and "FVMAIN_COMPACT" in n.title)
        fv_b = next(n for n in img_b.root.children if n.kind == "fv" and "FVMAIN_COMPACT" in n.title)
        app = app_for(real_pair)
        async with app.run_test(size=SIZE) as pilot:
            await select(pilot, volume)
            rows = first_rows(app.screen.fields.row_texts())
            assert rows["Free"][1:] == (f"0x{volume.get('FreeA'):x}", f"0x{volume.get('FreeB'):x}")
            assert rows["Used"][1:] == (f"0x{volume.get('UsedA'):x}", f"0x{volume.get('UsedB'):x}")
            assert rows["FvLength"][1:] == (f"0x{fv_a.get('FvLength'):x}", f"0x{fv_b.get('FvLength'):x}")
            assert rows["Size"][1:] == (f"0x{fv_a.size:x}", f"0x{fv_b.size:x}")

    async def test_field_row_marks_its_bytes_on_each_side(self, real_pair):
        root, img_a, img_b = real_pair
        fa, fb = ffs_by_ui(img_a.root, "PlatformPei"), ffs_by_ui(img_b.root, "PlatformPei")
        app = app_for(real_pair)
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            await select(pilot, diff_file(root, "PlatformPei"))
            table = screen.fields
            names = [r[0] for r in table.row_texts()]
            target = len(names) - 1 - names[::-1].index("Size")  # the FFS header's Size, below DECODED
            table.focus()
            await settle(pilot)
            for _ in range(target):
                await pilot.press("down")
            await settle(pilot)
            sa, sb = fa.field("Size"), fb.field("Size")
            assert screen.hex_a.mark == (sa.offset, sa.offset + sa.size)
            assert screen.hex_b.mark == (sb.offset, sb.offset + sb.size)

    async def test_n_and_shift_n_walk_every_change_in_tree_order(self, real_pair):
        app = app_for(real_pair)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen = app.screen
            changes = screen.changes()
            assert len(changes) > 20
            # Modules, not their sections; the summary is no change of its own.
            assert all(n.kind not in ("diff-section", "diff-summary") for n in changes)
            assert screen.current is changes[0]
            walked = [screen.current]
            for _ in range(12):
                await pilot.press("n")
                await settle(pilot)
                walked.append(screen.current)
                assert screen.node_tree.current is screen.current  # the tree follows
            assert walked == changes[:13]
            assert screen.node_tree.border_subtitle.startswith(f"change 13 of {len(changes)}")
            for expected in reversed(changes[:12]):
                await pilot.press("N")
                await settle(pilot)
                assert screen.current is expected
            await pilot.press("N")  # before the first: wraps to the last
            await settle(pilot)
            assert screen.current is changes[-1]
            await pilot.press("n")  # and back round
            await settle(pilot)
            assert screen.current is changes[0]

    async def test_g_goes_to_an_offset_in_the_hex_view_with_focus(self, real_pair):
        root, img_a, img_b = real_pair
        fa, fb = ffs_by_ui(img_a.root, "PlatformPei"), ffs_by_ui(img_b.root, "PlatformPei")
        app = app_for(real_pair)
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            await select(pilot, diff_file(root, "PlatformPei"))
            await pilot.press("g")  # nothing focused of the two: B's
            await settle(pilot)
            await pilot.press(*f"0x{fb.offset + 0x40:x}", "enter")
            await settle(pilot)
            assert screen.hex_b.cursor == fb.offset + 0x40
            screen.hex_a.focus()
            await pilot.press("g")
            await settle(pilot)
            await pilot.press(*f"0x{fa.offset + 0x40:x}", "enter")
            await settle(pilot)
            assert screen.hex_a.cursor == fa.offset + 0x40
            line = next(s for s in hex_lines(screen.hex_a) if s.startswith(f"{fa.offset + 0x40 & ~15:06x} "))
            assert bytes(fa.space.data[fa.offset + 0x40 & ~15:][:8]).hex(" ") in line

    async def test_p_shows_the_enclosing_bytes_uncompared(self, real_pair):
        """PlatformPei lives in PEIFV, decompressed from FVMAIN_COMPACT: `p` shows, in B's view,
        the compressed section it came from, in the image; nothing there is marked as differing."""
        root, img_a, img_b = real_pair
        fb = ffs_by_ui(img_b.root, "PlatformPei")
        section = fb.space.parent
        app = app_for(real_pair)
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            await select(pilot, diff_file(root, "PlatformPei"))
            await pilot.press("p")
            await settle(pilot)
            assert screen.hex_b.space is section.space is img_b.root.space
            assert screen.hex_b.span == (section.offset, section.offset + section.size)
            assert screen.hex_b.differing() == []
            assert all(level in (0, 1) for level in screen.hex_b.byte_levels(section.offset // 16 + 1))

    async def test_x_exports_the_diff_tree(self, real_pair, tmp_path, monkeypatch):
        import json

        monkeypatch.chdir(tmp_path)
        app = app_for(real_pair, "bookworm/OVMF.fd", "trixie/OVMF.fd")
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("x")
            await app.workers.wait_for_complete()
            await settle(pilot)
        out = json.loads((tmp_path / "diff-OVMF-OVMF.json").read_text())
        assert out["kind"] == "diff" and len(out["children"]) == len(real_pair[0].children)

    async def test_slash_finds_a_module(self, real_pair):
        root = real_pair[0]
        app = app_for(real_pair)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("slash")
            await settle(pilot)
            app.screen.query_one("#search-input", Input).value = "CpuIo2Dxe"
            await pilot.press("enter")
            await settle(pilot)
            assert app.screen.current is diff_file(root, "CpuIo2Dxe")
            assert app.screen.node_tree.current is app.screen.current

    async def test_question_mark_lists_the_diff_keys(self, real_pair):
        app = app_for(real_pair)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("question_mark")
            await settle(pilot)
            assert isinstance(app.screen, HelpScreen)
            text = app.screen.text()
            for line in ("n\tNext change", "N\tPrevious change", "u\tShow/hide unchanged", "/\tSearch", "q\tQuit"):
                assert line in text
            await pilot.press("escape")
            await settle(pilot)
            assert isinstance(app.screen, DiffScreen)

    async def test_palette_offers_the_diff_actions(self, real_pair):
        app = app_for(real_pair)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            titles = [c.title for c in app.get_system_commands(app.screen)]
            for title in ("Next change", "Previous change", "Show or hide unchanged", "Search nodes",
                          "Help: keys", "Export JSON"):
                assert title in titles

    async def test_q_quits(self, real_pair):
        app = app_for(real_pair)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("q")
            await settle(pilot)
            assert not app.is_running


@pytest.mark.asyncio
class TestNodesWithoutBytes:
    async def test_summary_says_it_has_no_bytes(self, real_pair):
        root = real_pair[0]
        summary = next(n for n in root.children if n.kind == "diff-summary")
        app = app_for(real_pair)
        async with app.run_test(size=SIZE) as pilot:
            await select(pilot, summary)
            for view in (app.screen.hex_a, app.screen.hex_b):
                assert view.space is None and "no bytes of its own" in hex_lines(view)[0]
            rows = first_rows(app.screen.fields.row_texts())
            assert "Offset" not in rows  # no place on either side
            assert rows["FilesAdded"][1] == f"0x{summary.get('FilesAdded'):x}"

    async def test_measurements_are_one_change_with_digests_a_then_b(self, real_pair):
        from inspector.diff_measure import measurement_diff

        root, img_a, img_b = real_pair
        measures = measurement_diff(img_a, img_b, "A", "B")
        root.children.append(measures)
        try:
            app = app_for(real_pair)
            async with app.run_test(size=SIZE) as pilot:
                await settle(pilot)
                changes = app.screen.changes()
                inside = [n for n in changes if n is measures or n in list(measures.walk())]
                assert inside == [measures]  # n stops once, not at each MRTD page
                mrtd = next(n for n in measures.walk() if n.field("MRTD.per-page.A") is not None)
                await select(pilot, mrtd)
                rows = first_rows(app.screen.fields.row_texts())
                assert rows["MRTD.per-page"][1:] == (mrtd.field("MRTD.per-page.A").text,
                                                     mrtd.field("MRTD.per-page.B").text)
        finally:
            root.children.remove(measures)


@pytest.mark.asyncio
class TestUnchanged:
    async def test_u_shows_unchanged_nodes_dimmed_and_hides_them_again(self, real_pair_all):
        root = real_pair_all[0]
        unchanged = [n for n in root.walk() if change_of(n) == "unchanged"]
        assert unchanged  # with all_files, Debian 12 and 13 share a few files
        target = unchanged[0]
        parent = next(n for n in root.walk() if target in n.children)
        app = app_for(real_pair_all)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen = app.screen
            tree = screen.node_tree
            assert screen.node_tree.reveal(parent)
            await settle(pilot)

            def shown_under_parent() -> list[Node]:
                item = tree._shown[id(parent)]
                item.expand()  # fills its lines (NodeTree fills a branch when it is expanded)
                tree._fill(item)
                return [c.data for c in item.children]

            before = shown_under_parent()
            assert before and target not in before
            await pilot.press("u")
            await settle(pilot)
            assert screen.current is parent  # the cursor kept its node
            tree.reveal(parent)
            await settle(pilot)
            assert target in shown_under_parent()
            item = tree._shown[id(target)]
            label = tree.render_label(item, Style(), Style())
            assert label.plain.startswith("= ")
            muted = tree.get_component_rich_style("diff-tree--unchanged", partial=True).color
            assert label.get_style_at_offset(app.console, len(label.plain) - 1).color == muted
            await pilot.press("u")
            await settle(pilot)
            tree.reveal(parent)
            await settle(pilot)
            assert target not in shown_under_parent()

    async def test_search_hit_on_a_hidden_unchanged_node_shows_it(self, real_pair_all):
        root = real_pair_all[0]
        target = next(n for n in root.walk() if n.kind == "diff-file" and change_of(n) == "unchanged")
        app = app_for(real_pair_all)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen = app.screen
            assert not screen.index.show_unchanged
            await pilot.press("slash")
            await settle(pilot)
            screen.query_one("#search-input", Input).value = target.get("Name")
            await pilot.press("enter")
            await settle(pilot)
            assert screen.current is target and screen.node_tree.current is target
            assert screen.index.show_unchanged  # shown, so the hit can be seen in the tree
            assert "= hidden" not in screen.node_tree.border_subtitle

    async def test_n_never_stops_at_an_unchanged_node(self, real_pair_all):
        app = app_for(real_pair_all)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("u")
            await settle(pilot)
            for _ in range(5):
                await pilot.press("n")
                await settle(pilot)
                assert change_of(app.screen.current) in ("added", "removed", "changed")


@pytest.mark.asyncio
class TestIdentical:
    async def test_same_image_twice_says_so(self):
        img_a, img_b = load_pair(bookworm("OVMF.fd"), bookworm("OVMF.fd"))
        root = diff_images(img_a.root, img_b.root)
        assert change_of(root) == "unchanged"
        app = DiffApp("OVMF.fd", "OVMF.fd", loaded=(root, img_a, img_b))
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen = app.screen
            assert screen.changes() == []
            assert screen.node_tree.border_subtitle.startswith("0 changes")
            assert any("no differences" in n.message for n in app._notifications)
            n = len(app._notifications)
            await pilot.press("n")
            await settle(pilot)
            assert len(app._notifications) == n + 1


@pytest.mark.asyncio
class TestLoading:
    async def test_loader_runs_in_a_worker_then_shows_the_diff(self, one_byte):
        root, img_a, img_b = one_byte[:3]
        app = DiffApp("A", "B", loader=lambda: (root, img_a, img_b))
        async with app.run_test(size=SIZE) as pilot:
            for _ in range(50):
                await pilot.pause(0.05)
                if isinstance(app.screen, DiffScreen) and app.screen.current is not None:
                    break
            assert isinstance(app.screen, DiffScreen)
            assert app.screen.root is root

    async def test_loader_failure_is_shown_not_raised(self):
        def fail():
            raise ValueError("B is not an image")

        app = DiffApp("A", "B", loader=fail)
        async with app.run_test(size=SIZE) as pilot:
            for _ in range(50):
                await pilot.pause(0.05)
                if "could not decode" in str(app.screen.query_one("#loading-text").render()):
                    break
            assert "B is not an image" in str(app.screen.query_one("#loading-text").render())


@pytest.mark.asyncio
class TestContractTree:
    """A diff tree made by hand to inspector/diff.py's contract: the screen needs nothing more."""

    async def test_every_change_kind_marked_and_walked(self, contract_pair):
        root, tree_a, tree_b = contract_pair
        secfv = next(n for n in root.children if SECFV in n.title)
        kinds = {c.get("Change"): c for c in secfv.children}
        assert set(kinds) == {"changed", "removed", "added"}
        app = app_for(contract_pair, "OVMF.fd", "OVMF-edited.fd")
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen = app.screen
            assert [n.get("Change") for n in screen.changes()] == ["changed", "removed", "added"]
            assert screen.current is kinds["changed"]
            await pilot.press("n")
            await settle(pilot)
            assert screen.current is kinds["removed"]
            assert "not in B" in hex_lines(screen.hex_b)[0]
            await pilot.press("n")
            await settle(pilot)
            assert screen.current is kinds["added"]
            assert "not in A" in hex_lines(screen.hex_a)[0]
            # The renamed file: the same bytes but its name's first byte, at the same place.
            top = kinds["added"]
            assert screen.hex_b.span == (top.offset, top.offset + top.size)

    async def test_u_shows_the_unchanged_volumes(self, contract_pair):
        root = contract_pair[0]
        unchanged = [c for c in root.children if c.get("Change") == "unchanged"]
        assert len(unchanged) == 2  # the variable store's volume and FVMAIN_COMPACT
        app = app_for(contract_pair, "OVMF.fd", "OVMF-edited.fd")
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            tree = app.screen.node_tree
            shown = lambda: [c.data for c in tree.root.children]  # noqa: E731
            assert not any(n in shown() for n in unchanged)
            await pilot.press("u")
            await settle(pilot)
            assert shown() == root.children
            assert all(tree.root.children[root.children.index(n)].label.plain == n.title for n in unchanged)
            assert "= hidden" not in tree.border_subtitle
            await pilot.press("u")
            await settle(pilot)
            assert not any(n in shown() for n in unchanged)
            assert "= hidden" in tree.border_subtitle


class TestComparison:
    def test_first_difference_and_runs(self):
        a, b = bytes(range(64)), bytearray(range(64))
        b[5] ^= 1
        b[9:12] = b"xyz"
        assert first_difference(a, 0, 64, b, 0, 64) == 5
        assert difference_ranges(a, 0, 64, b, 0, 64) == [(5, 6), (9, 12)]
        # Shifted spans: position i of one against position i of the other.
        assert first_difference(a, 8, 16, a, 8, 16) is None
        assert difference_ranges(a, 0, 4, a, 0, 6) == [(4, 6)]  # B's extra bytes differ

    @pytest.mark.asyncio
    async def test_a_side_running_past_its_bytes_does_not_break_the_view(self, contract_pair):
        """A hostile diff node whose A side claims more bytes than A's space has."""
        root, tree_a, tree_b = contract_pair
        bad = Node("diff-file", "too big", tree_b.space, 0x1FF000, 0x1000)
        bad.add("Change", "changed")
        bad.add("OffsetA", 0x1FF800)
        bad.add("SpaceA", tree_a.space.name)
        bad.add("SizeA", 0x100000)
        root.children.append(bad)
        try:
            app = app_for(contract_pair)
            async with app.run_test(size=SIZE) as pilot:
                await select(pilot, bad)
                runs_a = app.screen.hex_a.differing()
                assert runs_a and runs_a[-1][1] <= len(tree_a.space.data)
                assert hex_lines(app.screen.hex_a) and hex_lines(app.screen.hex_b)
        finally:
            root.children.remove(bad)


# -- the command line -------------------------------------------------------------------------------

class TestCommandLine:
    def test_two_images_start_the_diff_app(self, monkeypatch, tmp_path):
        from inspector import cli

        started = []
        monkeypatch.setattr(cli, "start_app", lambda kind, *args: started.append((kind, args)) or 0)
        a, b = bookworm("OVMF.fd"), trixie("OVMF.fd")
        assert cli.main([str(a), str(b)]) == 0
        (kind, (path_a, path_b, load)), = started
        assert kind == "diff" and (path_a, path_b) == (a, b)
        root, img_a, img_b = load()
        assert root.kind == "diff" and img_a.root.space.data == a.read_bytes()
        assert root.children[-1].kind == "diff-measurements"  # as `fwinspect diff` shows it

    def test_a_second_source_that_is_not_an_image_is_a_usage_error(self, capsys, tmp_path, monkeypatch):
        from inspector import cli

        started = []
        monkeypatch.setattr(cli, "start_app", lambda kind, *args: started.append(kind) or 0)

        rsdp = tmp_path / "rsdp.bin"
        rsdp.write_bytes(b"RSD PTR " + bytes(28))
        assert cli.main([str(bookworm("OVMF.fd")), str(rsdp)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "rsdp.bin" in err and "not a firmware image" in err
        assert cli.main([str(bookworm("OVMF.fd")), str(tmp_path / "missing.fd")]) == 2
        assert cli.main([str(bookworm("OVMF.fd")), str(tmp_path)]) == 2
        assert started == []  # the app never started


# -- snapshots --------------------------------------------------------------------------------------

class TestSnapshot:
    def test_one_byte_changed_in_sec_main(self, snap_compare, one_byte):
        """Opened on SecMain, the module with the changed byte: its fields A | B, and A's bytes
        over B's, the one differing byte highlighted in both."""
        assert snap_compare(app_for(one_byte, "OVMF.fd", "OVMF-one-byte.fd"), terminal_size=SIZE,
                            run_before=settle)

    def test_hand_made_diff_every_mark_and_a_removed_file(self, snap_compare, contract_pair):
        """The diff tree made by hand to diff.py's contract, unchanged volumes shown (u): the four
        marks in their colours, unchanged dimmed; the removed volume-top file selected, its bytes
        in A's view, B's view saying it is not in B."""
        async def run_before(pilot) -> None:
            await settle(pilot)
            await pilot.press("u", "n")
            await settle(pilot)

        assert snap_compare(app_for(contract_pair, "OVMF.fd", "OVMF-edited.fd"), terminal_size=SIZE,
                            run_before=run_before)
