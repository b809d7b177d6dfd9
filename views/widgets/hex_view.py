"""HexView: a virtual hex dump of one Space, with the selected node and field highlighted.

A Line-API `ScrollView` (Textual docs/guide/widgets.md, "Line API"; the pattern of Toolong's
`log_lines.py`): the virtual height is the row count of the whole space and `render_line` builds
only the rows on screen, so a 16 MiB decompressed blob scrolls like 4 KiB (measured here headless
with run_test at 120×40: 34 ms per jump-scroll at 1 M rows, against 9.4 s just to fill a
DataTable with 100 k rows). Built rows are kept in an LRU cache that is cleared whenever what
is shown or highlighted changes.
"""
from __future__ import annotations

from dataclasses import dataclass

from rich.segment import Segment
from textual import events
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from decoders.model import Space

BYTES_PER_ROW = 16
# Rows kept built: a few screens' worth, enough for scrolling back and forth without rebuilding.
STRIP_CACHE_ROWS = 1024
# Rows shown above a node or field that is scrolled to, so its start is seen in context.
CONTEXT_ROWS = 1

Span = tuple[int, int]  # [start, end) offsets in the space


def _runs(cells: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Join neighbouring cells of the same highlight level."""
    out: list[tuple[str, int]] = []
    for text, level in cells:
        if out and out[-1][1] == level:
            out[-1] = (out[-1][0] + text, level)
        else:
            out.append((text, level))
    return out


def _hex_digits(value: int, minimum: int) -> int:
    return max(minimum, len(f"{max(value, 0):x}"))


class HexView(ScrollView, can_focus=True):
    """Offset, address (when the space has a base), 16 bytes in hex, and ASCII, per row.

    Attributes set by the screen: `space`, `span` (the node's bytes), `mark` (the selected
    field's bytes, highlighted more strongly) and `cursor` (one byte, from "go to"). The user moves
    the cursor with the arrows, page keys, home/end and a mouse click; each move posts
    `CursorMoved`, and enter posts `CursorChosen` (the screen selects the node holding that byte).
    """

    BINDINGS = [
        Binding("left", "cursor(-1)", "Previous byte", show=False),
        Binding("right", "cursor(1)", "Next byte", show=False),
        Binding("up", "cursor(-16)", "Previous row", show=False),
        Binding("down", "cursor(16)", "Next row", show=False),
        Binding("pageup", "cursor_page(-1)", "Page up", show=False),
        Binding("pagedown", "cursor_page(1)", "Page down", show=False),
        Binding("home", "cursor_to('start')", "Start of the space", show=False),
        Binding("end", "cursor_to('end')", "End of the space", show=False),
        Binding("enter", "choose", "Select the node holding the cursor byte", show=False, id="hex-choose"),
    ]

    @dataclass
    class CursorMoved(Message):
        """The cursor is now on byte `offset` of `space` (None: no cursor)."""

        hex_view: "HexView"
        space: Space | None
        offset: int | None

        @property
        def control(self) -> "HexView":
            return self.hex_view

        def can_replace(self, message: Message) -> bool:
            # A held arrow key: only where the cursor ends up is looked up and drawn.
            return isinstance(message, HexView.CursorMoved) and message.hex_view is self.hex_view

    @dataclass
    class CursorChosen(Message):
        """Enter on byte `offset` of `space`."""

        hex_view: "HexView"
        space: Space
        offset: int

        @property
        def control(self) -> "HexView":
            return self.hex_view

    COMPONENT_CLASSES = {
        "hex-view--offset",
        "hex-view--address",
        "hex-view--ascii",
        "hex-view--span",
        "hex-view--mark",
        "hex-view--cursor",
        "hex-view--message",
    }

    DEFAULT_CSS = """
    HexView {
        scrollbar-size-vertical: 1;
        background: $surface;
    }
    HexView > .hex-view--offset { color: $text-muted; }
    HexView > .hex-view--address { color: $secondary; }
    HexView > .hex-view--ascii { color: $text-muted; }
    HexView > .hex-view--span { background: $primary 30%; color: $text; }
    HexView > .hex-view--mark { background: $warning 70%; color: $text; text-style: bold; }
    HexView > .hex-view--cursor { text-style: reverse bold; }
    HexView > .hex-view--message { color: $text-muted; text-style: italic; }
    """

    space: reactive[Space | None] = reactive(None, always_update=True)
    span: reactive[Span | None] = reactive(None)
    mark: reactive[Span | None] = reactive(None)
    # No repaint of the whole view on a move: watch_cursor refreshes the two rows that change.
    cursor: reactive[int | None] = reactive(None, repaint=False)

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None):
        super().__init__(name=name, id=id, classes=classes)
        self._cache: LRUCache[int, Strip] = LRUCache(STRIP_CACHE_ROWS)
        self._offset_digits = 4
        self._address_digits = 0
        self._style_memo: dict | None = None

    # -- what is shown ------------------------------------------------------------
    @property
    def data(self):
        return None if self.space is None else self.space.data

    @property
    def row_count(self) -> int:
        data = self.data
        return 1 if data is None else max(1, (len(data) + BYTES_PER_ROW - 1) // BYTES_PER_ROW)

    def message(self) -> str:
        if self.space is None:
            return "nothing selected"
        return f"no bytes to show: space {self.space.name!r} has no data here (read through a target)"

    def row_width(self) -> int:
        # offset, " ", [address, " "], " ", 16 × "xx " with an extra space mid-row, " ", 16 ASCII
        addr = self._address_digits + 1 if self._address_digits else 0
        offset = self._offset_digits + 1 if self._offset_digits else 0
        return offset + addr + 1 + BYTES_PER_ROW * 3 + 1 + 1 + BYTES_PER_ROW

    def watch_space(self, space: Space | None) -> None:
        data = self.data
        size = 0 if data is None else len(data)
        # A space that maps addresses itself (offset_of: the two canonical halves of a virtual
        # space, decoders/paging_translate.py) shows its addresses only: its offsets are an
        # artefact of laying the halves end to end.
        self._offset_digits = 0 if getattr(space, "offset_of", None) else _hex_digits(size - 1, 4)
        base = None if space is None else space.base
        # The widest address is the last offset's (a virtual space's upper half ends at 2^64 - 1).
        self._address_digits = 0 if base is None or data is None else \
            _hex_digits(space.address_of(max(size - 1, 0)), 8)
        width = len(self.message()) if data is None else self.row_width()
        self.virtual_size = Size(width, self.row_count)
        self._invalidate()

    def watch_span(self) -> None:
        self._invalidate()

    def watch_mark(self) -> None:
        self._invalidate()

    def watch_cursor(self, old: int | None, new: int | None) -> None:
        # Only the rows the cursor left and entered change: a move redraws two rows, not the view.
        for offset in {old, new}:
            if offset is not None:
                row = offset // BYTES_PER_ROW
                self._cache.discard(row)
                self.refresh_line(row)
        self.post_message(self.CursorMoved(self, self.space, new))

    def _invalidate(self) -> None:
        self._cache.clear()
        self._style_memo = None
        self.refresh()

    def notify_style_update(self) -> None:
        # Theme or CSS changed: cached strips carry the old colours.
        super().notify_style_update()
        self._cache.clear()
        self._style_memo = None

    # -- scrolling ----------------------------------------------------------------
    def scroll_to_offset(self, offset: int, *, only_if_hidden: bool = False) -> None:
        """Bring the row holding `offset` to the top (with a row of context above it)."""
        row = max(0, offset) // BYTES_PER_ROW
        top = int(self.scroll_offset.y)
        if only_if_hidden and top <= row < top + max(1, self.scrollable_content_region.height):
            return
        self.scroll_to(y=max(0, row - CONTEXT_ROWS), animate=False, immediate=True)

    def _reveal_row(self, row: int) -> None:
        """Scroll as little as needed for `row` to be on screen."""
        top = int(self.scroll_offset.y)
        height = max(1, self.scrollable_content_region.height)
        if row < top:
            self.scroll_to(y=row, animate=False, immediate=True)
        elif row >= top + height:
            self.scroll_to(y=row - height + 1, animate=False, immediate=True)

    # -- the cursor ---------------------------------------------------------------
    def _byte_count(self) -> int:
        data = self.data
        return 0 if data is None else len(data)

    def _start(self) -> int:
        """Where the cursor appears on its first move: the node's first byte when it is on
        screen, else the first byte shown."""
        top = int(self.scroll_offset.y) * BYTES_PER_ROW
        height = max(1, self.scrollable_content_region.height) * BYTES_PER_ROW
        if self.span is not None and top <= self.span[0] < top + height:
            return self.span[0]
        return top

    def move_cursor_to(self, offset: int) -> None:
        size = self._byte_count()
        if not size:
            return
        offset = min(max(0, offset), size - 1)
        self.cursor = offset
        self._reveal_row(offset // BYTES_PER_ROW)

    def action_cursor(self, delta: int) -> None:
        if not self._byte_count():
            return
        if self.cursor is None:
            self.move_cursor_to(self._start())
        else:
            self.move_cursor_to(self.cursor + delta)

    def action_cursor_page(self, pages: int) -> None:
        rows = max(1, self.scrollable_content_region.height)
        if self.cursor is None:
            self.action_cursor(0)
            return
        self.move_cursor_to(self.cursor + pages * rows * BYTES_PER_ROW)

    def action_cursor_to(self, where: str) -> None:
        self.move_cursor_to(0 if where == "start" else self._byte_count() - 1)

    def action_choose(self) -> None:
        if self.cursor is not None and self.space is not None:
            self.post_message(self.CursorChosen(self, self.space, self.cursor))

    def offset_at(self, x: int, y: int) -> int | None:
        """The byte under content cell (x, y), in the hex or the ASCII column; None elsewhere."""
        size = self._byte_count()
        if not size:
            return None
        row = int(self.scroll_offset.y) + y
        col = int(self.scroll_offset.x) + x
        prefix = (self._offset_digits + 1 if self._offset_digits else 0) + \
            (self._address_digits + 1 if self._address_digits else 0) + 1
        ascii_start = prefix + BYTES_PER_ROW * 3 + 1 + 1
        if ascii_start <= col < ascii_start + BYTES_PER_ROW:
            index = col - ascii_start
        else:
            rel = col - prefix
            if rel >= 8 * 3:
                rel -= 1  # the extra space mid-row
            if not 0 <= rel < BYTES_PER_ROW * 3 or rel % 3 == 2:
                return None
            index = rel // 3
        offset = row * BYTES_PER_ROW + index
        return offset if 0 <= offset < size else None

    def on_click(self, event: events.Click) -> None:
        where = event.get_content_offset(self)
        if where is None:
            return
        offset = self.offset_at(where.x, where.y)
        if offset is not None:
            self.cursor = offset

    # -- rendering ----------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        row = int(scroll_y) + y
        width = self.scrollable_content_region.width
        base = self._styles()["base"]
        if row >= self.row_count:
            return Strip.blank(width, base)
        strip = self._cache.get(row)
        if strip is None:
            strip = self.render_row(row)
            self._cache[row] = strip
        return strip.crop_extend(int(scroll_x), int(scroll_x) + width, base)

    def _styles(self) -> dict:
        """Rich styles of the parts of a row, looked up once per invalidation, not per byte."""
        if self._style_memo is None:
            base = self.rich_style
            get = self.get_component_rich_style
            span, mark, cursor = base + get("hex-view--span"), base + get("hex-view--mark"), get("hex-view--cursor")
            self._style_memo = {
                "base": base,
                "offset": base + get("hex-view--offset"),
                "address": base + get("hex-view--address"),
                "ascii": base + get("hex-view--ascii"),
                "message": base + get("hex-view--message"),
                # by highlight level: 0 plain, 1 node span, 2 field mark; +4 with the cursor on it
                "levels": {0: base, 1: span, 2: mark, 4: base + cursor, 5: span + cursor, 6: mark + cursor},
            }
        return self._style_memo

    def _level(self, offset: int) -> int:
        mark, span, cursor = self.mark, self.span, self.cursor
        if mark is not None and mark[0] <= offset < mark[1]:
            level = 2
        elif span is not None and span[0] <= offset < span[1]:
            level = 1
        else:
            level = 0
        return level + 4 if offset == cursor else level

    def render_row(self, row: int) -> Strip:
        """The whole (uncropped) row `row`: also what tests read."""
        st = self._styles()
        base = st["base"]
        data = self.data
        if data is None:
            text = self.message() if row == 0 else ""
            return Strip([Segment(text, st["message"])], len(text))

        start = row * BYTES_PER_ROW
        chunk = bytes(data[start:start + BYTES_PER_ROW])
        n = len(chunk)
        segments = [Segment(f"{start:0{self._offset_digits}x} ", st["offset"])] if self._offset_digits else []
        if self._address_digits:
            segments.append(Segment(f"{self.space.address_of(start):0{self._address_digits}x} ", st["address"]))
        segments.append(Segment(" ", base))

        levels = [self._level(start + i) for i in range(n)]
        # (text, level) cells, merged below into one segment per run of equal highlight.
        cells: list[tuple[str, int]] = []
        for i in range(BYTES_PER_ROW):
            gap = "  " if i == 7 else " "
            if i < n:
                lv = levels[i]
                cells.append((f"{chunk[i]:02x}", lv))
                # A gap takes the highlight both neighbours share (never the cursor's), so a
                # range reads as one bar.
                cells.append((gap, min(lv & 3, levels[i + 1] & 3) if i + 1 < n else 0))
            else:
                cells.append(("  " + gap, 0))
        cells.append((" ", 0))
        by_level = st["levels"]
        segments.extend(Segment(text, by_level[lv]) for text, lv in _runs(cells))

        ascii_cells = [(chr(b) if 0x20 <= b < 0x7F else ".", levels[i]) for i, b in enumerate(chunk)]
        for text, lv in _runs(ascii_cells):
            segments.append(Segment(text, st["ascii"] if lv == 0 else by_level[lv]))
        if n < BYTES_PER_ROW:
            segments.append(Segment(" " * (BYTES_PER_ROW - n), base))
        return Strip(segments, self.row_width())

    def row_text(self, row: int) -> str:
        """Plain text of row `row` (for tests and copying)."""
        return self.render_row(row).text
