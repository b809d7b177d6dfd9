"""The tour screen driven headless (Textual `run_test` + Pilot) on real trees.

Chapters are written here with inspector.tour.model.Writer, the way inspector/tour writes them:
offline ones over Debian's OVMF.fd as inspector.image.load_image decodes it, and a boot chapter
over the tree decoded at the DXE core entry of a real recorded boot of that image (conftest.py
`recorded_boot`: QEMU 7.2, TCG). Expected places come from the specs' layouts applied to the
file's or the guest's own bytes (PI vol. 3: EFI_FIRMWARE_VOLUME_HEADER, EFI_HOB_HANDOFF_INFO_TABLE),
never from what the app printed.
"""
from __future__ import annotations

import struct

import pytest
from textual.widgets import OptionList
from textual.widgets._footer import FooterKey

from decoders.model import Node
from decoders.mrtd import compute_mrtd, mrtd_node
from decoders.ovmf.metadata import tdx_sections
from inspector.image import load_image
from inspector.live.record import load_recording
from inspector.tour.model import Chapter, Value, Writer
from tests.realdata import bookworm
from tests.views.live_helpers import wait_for
from views.screens.help import HelpScreen
from views.screens.tour import ContentsScreen
from views.tour_app import TourApp, run_tour
from views.widgets.chapter_text import UNEXPECTED_PREFIX, ChapterText, unexpected_spans, value_spans
from views.widgets.field_table import FieldTable

SIZE = (120, 40)
FOUR_GIB = 1 << 32
# PI vol. 3, 3.2.1 EFI_FIRMWARE_VOLUME_HEADER: ZeroVector[16], FileSystemGuid (16), then FvLength (UINT64).
FV_LENGTH_OFFSET, FV_LENGTH_SIZE = 0x20, 8
# PI vol. 3, 5.3 EFI_HOB_HANDOFF_INFO_TABLE: Header (8), Version (4), BootMode (4), EfiMemoryTop (UINT64).
PHIT_MEMORY_TOP_OFFSET = 0x10
FVMAIN_COMPACT = "48DB5E17-707C-472D-91CD-1613E7EF51B0"  # OvmfPkg/OvmfPkgX64.fdf
SECFV = "763BED0D-DE9F-48F5-81F1-3E90E1B1A015"
DXE_CORE = 4  # the recording's stops: reset, SEC, PEI core, DXE IPL, DXE core
UNUSUAL = "this image carries no TD HOB"


@pytest.fixture(scope="module")
def image():
    return load_image(bookworm("OVMF.fd"))


def volume(root: Node, guid: str) -> Node:
    return next(n for n in root.children if n.kind == "fv" and guid in n.title)


def flash_chapter(image) -> Chapter:
    """Three volumes, two lengths, a line that is not as usual, and a command of each kind."""
    root = image.root
    w = Writer("flash-image", "offline", "The flash image", root=root)
    count = w.count("volumes", root, "fv")
    main = w.field("main", volume(root, FVMAIN_COMPACT), "FvLength")
    sec = w.field("sec", volume(root, SECFV), "FvLength")
    w.say("The image holds {volumes} firmware volumes.", count)
    w.say("FVMAIN_COMPACT is {main} bytes long and SECFV {sec}.", main, sec)
    w.unexpected(UNUSUAL)
    w.try_this("g 0xFFFFFFF0", "/ SECFV", "open fv")
    return w.done("fwinspect fd OVMF.fd")


def table_chapter(image) -> Chapter:
    root = image.root
    table = next(root.find("ovmf-guid-table"))
    w = Writer("reset-vector", "offline", "The reset vector table", root=root)
    w.say("The table behind the reset vector has {entries} entries.", w.count("entries", table))
    return w.done()


def dxe_chapter(stop) -> Chapter:
    hob_list = next(n for n in stop.tree.children if n.kind == "hob-list")
    phit = hob_list.children[0]
    w = Writer("dxe-core", "dxe-core", "The DXE core takes the HOB list", root=stop.tree, stop=stop.index)
    hobs = w.count("hobs", hob_list)
    top = w.field("top", phit, "EfiMemoryTop")
    w.say("RCX points at a HOB list of {hobs} HOBs; its PHIT puts the top of memory at {top}.", hobs, top)
    w.try_this(f"g 0x{hob_list.address:x}")
    return w.done()


@pytest.fixture
def stops(recorded_boot):
    return load_recording(recorded_boot)


async def started(pilot) -> ChapterText:
    """The chapter text, once the screen is up and the chapter has the focus."""
    await wait_for(pilot, lambda: isinstance(pilot.app.focused, ChapterText))
    return pilot.app.focused


async def move_to_item(pilot, text: ChapterText, pick) -> None:
    """Press down until the cursor is on the item `pick` accepts."""
    for _ in range(len(text.items)):
        if pick(text.current):
            return
        await pilot.press("down")
    assert pick(text.current), "no such item in the chapter"


def footer_disabled(app) -> dict[str, bool]:
    """Whether the footer shows each chapter key greyed."""
    return {k.action: k.has_class("-disabled") for k in app.screen.query(FooterKey)
            if k.action in ("next_chapter", "previous_chapter")}


def is_value(chapter: Chapter, name: str):
    return lambda item: item.value is not None and chapter.values[item.value].name == name


def is_command(command: str):
    return lambda item: item.command == command


class TestSpans:
    def test_values_are_found_as_whole_words_longest_first(self):
        """ "0x1000" is not taken for the start of "0x10000", nor "3" for the 3 inside "0x30"."""
        text = "At 0x30 there are 3 tables; 0x10000 bytes, not 0x1000."
        values = [Value("small", 0x1000, "0x1000"), Value("big", 0x10000, "0x10000"), Value("n", 3, "3")]
        assert value_spans(text, values) == [(18, 19, 2), (28, 35, 1), (47, 53, 0)]

    def test_a_value_said_twice_is_marked_twice_and_shared_texts_once_each(self):
        text = "2 and 2, then 7 and 7."
        values = [Value("a", 2, "2"), Value("b", 2, "2"), Value("c", 7, "7")]
        assert value_spans(text, values) == [(0, 1, 0), (6, 7, 1), (14, 15, 2), (20, 21, 2)]

    def test_unexpected_lines_are_found_with_their_prefix_and_the_rest_listed(self):
        text = f"Usual. {UNEXPECTED_PREFIX}no PEI. More."
        assert unexpected_spans(text, ["no PEI", "no BDS"]) == ([(7, 7 + len(UNEXPECTED_PREFIX) + 6)], ["no BDS"])


@pytest.mark.asyncio
class TestChapters:
    @pytest.mark.live
    async def test_n_and_p_move_chapters_and_are_greyed_at_the_ends(self, image, stops):
        """n goes forward and p back; at the first chapter p cannot run (greyed, pressing it does
        nothing) and at the last n cannot. Each chapter shows its own root: the image's tree for
        an offline chapter, the tree decoded at its stop for a boot chapter."""
        chapters = [flash_chapter(image), table_chapter(image), dxe_chapter(stops[DXE_CORE])]
        app = TourApp(chapters, stops, image)
        async with app.run_test(size=SIZE) as pilot:
            text = await started(pilot)
            screen = app.tour_screen
            assert screen.position == 0 and text.chapter is chapters[0]
            assert screen.check_action("previous_chapter", ()) is None
            assert screen.check_action("next_chapter", ()) is True
            await wait_for(pilot, lambda: footer_disabled(app) == {"next_chapter": False, "previous_chapter": True})
            await pilot.press("p")
            assert screen.position == 0
            await pilot.press("n")
            assert screen.position == 1 and text.chapter is chapters[1]
            assert screen.node_tree.index.root is image.root
            assert screen.check_action("previous_chapter", ()) is True
            await pilot.press("n")
            assert screen.position == 2 and text.chapter is chapters[2]
            assert screen.node_tree.index.root is stops[DXE_CORE].tree
            assert screen.current is stops[DXE_CORE].tree
            assert screen.check_action("next_chapter", ()) is None
            # The footer shows n greyed and p live once the last chapter is reached.
            await wait_for(pilot, lambda: footer_disabled(app) == {"next_chapter": True, "previous_chapter": False})
            await pilot.press("n")
            assert screen.position == 2
            await pilot.press("p", "p")
            assert screen.position == 0 and screen.node_tree.index.root is image.root
            assert text.plain.startswith("The flash image\nchapter 1 of 3 · from the image\n\n")

    async def test_contents_lists_every_title_and_goes_to_the_chosen_one(self, image):
        chapters = [flash_chapter(image), table_chapter(image)]
        app = TourApp(chapters, None, image)
        async with app.run_test(size=SIZE) as pilot:
            await started(pilot)
            await pilot.press("t")
            await wait_for(pilot, lambda: isinstance(app.screen, ContentsScreen))
            options = app.screen.query_one(OptionList)
            assert [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)] == \
                ["1. The flash image", "2. The reset vector table"]
            assert options.highlighted == 0
            await pilot.press("down", "enter")
            await wait_for(pilot, lambda: not isinstance(app.screen, ContentsScreen))
            assert app.tour_screen.position == 1
            assert app.tour_screen.chapter_text.chapter is chapters[1]


@pytest.mark.asyncio
class TestValues:
    async def test_enter_on_a_value_selects_its_node_and_field(self, image):
        """FVMAIN_COMPACT's FvLength: the tree's cursor on that volume, the field table on the
        FvLength row, and its 8 bytes marked in the hex view where the PI spec puts them."""
        chapter = flash_chapter(image)
        fv = volume(image.root, FVMAIN_COMPACT)
        app = TourApp([chapter], None, image)
        async with app.run_test(size=SIZE) as pilot:
            text = await started(pilot)
            await move_to_item(pilot, text, is_value(chapter, "main"))
            await pilot.press("enter")
            await pilot.pause()
            screen = app.tour_screen
            assert screen.current is fv
            assert screen.node_tree.cursor_node.data is fv
            table = screen.query_one(FieldTable)
            assert str(table.get_row_at(table.cursor_row)[0]) == "FvLength"
            start = fv.offset + FV_LENGTH_OFFSET
            assert screen.hex_view.mark == (start, start + FV_LENGTH_SIZE)
            raw = image.data[start:start + FV_LENGTH_SIZE]
            assert f"0x{int.from_bytes(raw, 'little'):x}" in text.plain
            # The focus stays in the chapter: the next value is a key away.
            assert app.focused is text

    async def test_clicking_a_value_selects_its_node(self, image):
        chapter = flash_chapter(image)
        fv = volume(image.root, SECFV)
        app = TourApp([chapter], None, image)
        async with app.run_test(size=SIZE) as pilot:
            text = await started(pilot)
            needle = next(v.text for v in chapter.values if v.name == "sec")
            # Where the value is drawn: the first line of the widget that shows it (with its
            # sentence's " SECFV " before it, not the volume's name).
            where = next((x, y) for y in range(text.size.height)
                         if (x := text.render_line(y).text.find(f"SECFV {needle}")) >= 0)
            await pilot.click(ChapterText, offset=(where[0] + len("SECFV ") + 1, where[1]))
            await pilot.pause()
            assert app.tour_screen.current is fv
            assert app.tour_screen.hex_view.mark == (fv.offset + FV_LENGTH_OFFSET,
                                                     fv.offset + FV_LENGTH_OFFSET + FV_LENGTH_SIZE)

    async def test_a_value_of_a_computed_node_shows_its_fields_without_moving_the_tree(self, image):
        """The MRTD is computed from the image, not decoded into its tree: choosing it fills the
        field table with that node (MRTD row selected) and leaves the tree where it was."""
        mrtd = mrtd_node(compute_mrtd(image.data, tdx_sections(image.tdx_metadata()), order="per-page"))
        w = Writer("mrtd", "offline", "MRTD", root=image.root)
        w.say("The TDX module measures {mrtd}.", w.field("mrtd", mrtd, "MRTD"))
        chapter = w.done()
        assert chapter.values[0].path is None
        app = TourApp([chapter], None, image)
        async with app.run_test(size=SIZE) as pilot:
            await started(pilot)
            await pilot.press("enter")
            await pilot.pause()
            screen = app.tour_screen
            assert screen.current is mrtd
            assert screen.node_tree.cursor_node.data is image.root
            table = screen.query_one(FieldTable)
            assert str(table.get_row_at(table.cursor_row)[0]) == "MRTD"
            assert str(table.get_row_at(table.cursor_row)[3]) == mrtd.field("MRTD").text

    @pytest.mark.live
    async def test_a_boot_value_selects_its_node_in_the_stop_tree(self, stops, image):
        """The PHIT's EfiMemoryTop at the DXE core entry: the path is from the stop's tree."""
        stop = stops[DXE_CORE]
        chapter = dxe_chapter(stop)
        hob_list = next(n for n in stop.tree.children if n.kind == "hob-list")
        phit = hob_list.children[0]
        app = TourApp([chapter], stops, image)
        async with app.run_test(size=SIZE) as pilot:
            text = await started(pilot)
            await move_to_item(pilot, text, is_value(chapter, "top"))
            await pilot.press("enter")
            await pilot.pause()
            screen = app.tour_screen
            assert screen.current is phit and screen.node_tree.cursor_node.data is phit
            start = phit.offset + PHIT_MEMORY_TOP_OFFSET
            assert screen.hex_view.mark == (start, start + 8)
            top, = struct.unpack_from("<Q", bytes(phit.space.data), start)
            assert f"top of memory at 0x{top:x}." in text.plain


    @pytest.mark.live
    async def test_a_register_value_shows_the_stops_registers_with_it_selected(self, stops, image):
        """CR3 at the DXE core entry comes from the stop's registers, not its tree: choosing it
        fills the field table with the stop's registers (cpu-registers), CR3's row selected."""
        from inspector.tour.stopparts import reg_value
        stop = stops[DXE_CORE]
        w = Writer("regs", "dxe-core", "Registers", root=stop.tree, stop=stop.index)
        w.say("CR3 holds {reg_cr3}.", reg_value(w, stop, "cr3"))
        chapter = w.done()
        app = TourApp([chapter], stops, image)
        async with app.run_test(size=SIZE) as pilot:
            await started(pilot)
            await pilot.press("enter")
            await pilot.pause()
            screen = app.tour_screen
            assert screen.current.kind == "cpu-registers"
            table = screen.query_one(FieldTable)
            assert str(table.get_row_at(table.cursor_row)[0]) == "cr3"
            assert str(table.get_row_at(table.cursor_row)[3]) == f"0x{stop.registers['cr3']:x}"


@pytest.mark.asyncio
class TestChapterText:
    async def test_moving_the_cursor_scrolls_its_line_into_view(self, image):
        """In a chapter taller than its box, up from the first value goes to the last command,
        which is then on screen; down again goes back to the top."""
        root = image.root
        w = Writer("long", "offline", "A long chapter", root=root)
        for i in range(12):
            w.say(f"Sentence {i} of a long chapter says again that the image holds {{volumes}} volumes.",
                  w.count("volumes", root, "fv"))
        w.try_this("g 0xFFFFFFF0", "open fv")
        app = TourApp([w.done()], None, image)
        async with app.run_test(size=(120, 30)) as pilot:
            text = await started(pilot)
            box = app.screen.query_one("#chapter-box")
            height = box.scrollable_content_region.height
            line = next(y for y in range(text.size.height) if "open fv" in text.render_line(y).text)
            assert line >= height  # below the box at first
            await pilot.press("up")
            await pilot.pause()
            assert text.current.command == "open fv"
            assert box.scroll_y <= line < box.scroll_y + height
            await pilot.press("down")
            await pilot.pause()
            assert text.cursor == 0 and box.scroll_y == 0


@pytest.mark.asyncio
class TestTryThis:
    async def test_g_goes_to_the_address_from_any_bytes_shown(self, image):
        """`g 0xFFFFFFF0` puts the hex cursor on the reset vector's byte of the flash image (its
        last 16 bytes), also when the bytes shown were those of a decompressed volume."""
        chapter = flash_chapter(image)
        app = TourApp([chapter], None, image)
        async with app.run_test(size=SIZE) as pilot:
            text = await started(pilot)
            screen = app.tour_screen
            inner = next(n for n in image.root.walk() if n.space is not None and n.space is not image.root.space)
            screen.show_node(inner)
            await move_to_item(pilot, text, is_command("g 0xFFFFFFF0"))
            await pilot.press("enter")
            await pilot.pause()
            hex_view = screen.hex_view
            offset = 0xFFFFFFF0 - (FOUR_GIB - len(image.data))
            assert hex_view.space is image.root.space and hex_view.cursor == offset
            row = hex_view.row_text(offset // 16)
            last = image.data[-16:]
            assert row.startswith(f"{offset:06x} fffffff0  {last[:8].hex(' ')}  {last[8:].hex(' ')}")

    @pytest.mark.live
    async def test_g_in_a_boot_chapter_goes_to_guest_memory(self, stops, image):
        stop = stops[DXE_CORE]
        hob_list = next(n for n in stop.tree.children if n.kind == "hob-list")
        app = TourApp([dxe_chapter(stop)], stops, image)
        async with app.run_test(size=SIZE) as pilot:
            text = await started(pilot)
            await move_to_item(pilot, text, lambda item: item.command is not None)
            await pilot.press("enter")
            await pilot.pause()
            hex_view = app.tour_screen.hex_view
            assert hex_view.space is hob_list.space and hex_view.cursor == hob_list.offset

    async def test_slash_searches_and_open_selects_the_first_node_of_a_kind(self, image):
        chapter = flash_chapter(image)
        app = TourApp([chapter], None, image)
        async with app.run_test(size=SIZE) as pilot:
            text = await started(pilot)
            screen = app.tour_screen
            await move_to_item(pilot, text, is_command("/ SECFV"))
            await pilot.press("enter")
            await pilot.pause()
            expected = [n for n in screen.index.order if "secfv" in "\n".join(
                [n.title, n.kind, *(f.text for f in n.fields)]).lower()]
            assert screen.search_bar.is_open and screen.search_bar.input.value == "SECFV"
            assert screen.current is expected[0]
            assert str(screen.search_bar.query_one("#search-status").render()) == f"1 of {len(expected)}"
            await pilot.press("escape")
            text.focus()
            await move_to_item(pilot, text, is_command("open fv"))
            await pilot.press("enter")
            await pilot.pause()
            # The first of the three volumes: the variable store at the start of the flash.
            first = next(n for n in image.root.children if n.kind == "fv")
            assert first.offset == 0
            assert screen.current is first and screen.node_tree.cursor_node.data is first


@pytest.mark.asyncio
class TestUnexpected:
    async def test_unexpected_lines_are_shown_in_the_warning_colour(self, image):
        """The line Writer.unexpected put in the prose, and a listed line the prose lacks (shown
        after it), are drawn in the theme's warning text colour; the usual prose is not."""
        chapter = flash_chapter(image)
        chapter.unexpected.append("a second line only in the list")
        app = TourApp([chapter], None, image)
        async with app.run_test(size=SIZE) as pilot:
            text = await started(pilot)
            warning = app.theme_variables["text-warning"].lower()
            rendered = text.render()

            def colours(needle: str) -> set[str | None]:
                start = text.plain.index(needle)
                styles = [rendered.get_style_at_offset(app.console, i) for i in range(start, start + len(needle))]
                return {None if s.color is None else s.color.triplet.hex for s in styles}

            assert colours(UNEXPECTED_PREFIX + UNUSUAL) == {warning}
            assert colours(UNEXPECTED_PREFIX + "a second line only in the list") == {warning}
            assert warning not in colours("firmware volumes")


@pytest.mark.asyncio
async def test_help_lists_the_tour_keys(image):
    app = TourApp([flash_chapter(image)], None, image)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        listed = app.screen.text().splitlines()
        for row in ("n\tNext chapter", "p\tPrevious chapter", "t\tContents", "/\tSearch nodes"):
            assert row in listed


def test_run_tour_without_chapters_says_so(capsys):
    assert run_tour([], None, None) == 1
    assert capsys.readouterr().err == "fwinspect tour: no chapter to tell\n"


class TestSnapshot:
    def test_tour_on_the_flash_image_with_a_length_chosen(self, snap_compare, image):
        """The offline chapter over OVMF.fd as load_image decodes it: the prose with its three
        values marked (the second one under the cursor), the unexpected line in the warning
        colour, the try-this commands; FVMAIN_COMPACT selected in the tree, FvLength in the
        fields and its bytes marked."""
        chapter = flash_chapter(image)

        async def run_before(pilot) -> None:
            text = await started(pilot)
            await move_to_item(pilot, text, is_value(chapter, "main"))
            await pilot.press("enter")
            await pilot.pause()

        assert snap_compare(TourApp([chapter], None, image), terminal_size=SIZE, run_before=run_before)
