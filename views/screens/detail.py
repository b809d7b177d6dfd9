"""DetailScreen: one field (or problem) whole: its value wrapped, its raw value, and its bytes.

The field table cuts a value at the pane's edge (a 96-digit MRTD, a device path, a depex
expression); enter on a row opens this view, escape closes it. The bytes are a hex dump of the
field's offset and size in the node's space, when the field has a location and the space has
data.
"""
from __future__ import annotations

import uuid

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.markup import escape
from textual.screen import ModalScreen
from textual.widgets import Static

from decoders.model import Field, Node, Problem, Space

# A value is shown whole up to this many characters: more is a hostile string, not a value.
MAX_VALUE_CHARS = 100_000
# Bytes dumped: a field is at most a few KiB (a certificate); a bigger one shows its start.
MAX_DUMP_BYTES = 4096
BYTES_PER_ROW = 16


def printable(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    """`text` with control characters as U+FFFD (newlines kept: the view wraps), cut at `limit`."""
    out = "".join(ch if ch.isprintable() or ch == "\n" else "\ufffd" for ch in text[:limit])
    return out if len(text) <= limit else out + f"… ({len(text) - limit} more characters)"


def raw_text(value: object) -> str:
    """A field's raw value in full (Field.text cuts bytes at 32)."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"0x{value:x}"
    if isinstance(value, uuid.UUID):
        return str(value).upper()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value[:MAX_VALUE_CHARS // 2]).hex()
    return str(value)


def hex_dump(space: Space, start: int, size: int, limit: int = MAX_DUMP_BYTES) -> list[str]:
    """Rows of `offset  [address]  16 bytes  ascii` for [start, start + size) of `space`, at most
    `limit` bytes, then a line saying how many were left out."""
    data = space.data
    if data is None or size <= 0 or start >= len(data):
        return []
    end = min(start + size, len(data))
    shown = min(end, start + limit)
    space.need(shown)
    width = max(4, len(f"{max(len(data) - 1, 0):x}"))
    lines = []
    for row in range(start, shown, BYTES_PER_ROW):
        chunk = bytes(data[row:min(row + BYTES_PER_ROW, shown)])
        addr = space.address_of(row)
        where = f"{row:0{width}x}" + ("" if addr is None else f"  {addr:08x}")
        hexes = " ".join(f"{b:02x}" for b in chunk)
        ascii_ = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        lines.append(f"{where}  {hexes:<47}  {ascii_}")
    if end > shown:
        lines.append(f"… 0x{end - shown:x} more bytes")
    if start + size > len(data):
        lines.append(f"(the field runs 0x{start + size - len(data):x} bytes past the end of {space.name})")
    return lines


def detail_text(node: Node, item: Field | Problem) -> Text:
    """What the detail view shows for `item` of `node`: plain text with bold headings."""
    text = Text()

    def heading(title: str) -> None:
        if text:
            text.append("\n\n")
        text.append(title, style="bold underline")
        text.append("\n")

    if isinstance(item, Problem):
        heading(item.severity.value.capitalize())
        text.append(printable(item.message))
        offset, size = item.offset, None if item.offset is None else 1
    else:
        heading("Value")
        text.append(printable(item.text if item.display is not None else raw_text(item.value)))
        if item.display is not None and not isinstance(item.value, (list, dict, tuple)):
            raw = raw_text(item.value)
            if raw != item.display:
                heading("Raw value")
                text.append(printable(raw))
        offset, size = item.offset, item.size
    heading("Where")
    space = node.space
    if offset is None:
        text.append(f"no location recorded (node {node.kind} at 0x{node.offset:x})")
    else:
        where = f"offset 0x{offset:x}" + ("" if size is None else f"  size 0x{size:x}")
        addr = None if space is None else space.address_of(offset)
        if addr is not None:
            where += f"  address 0x{addr:x}"
        if space is not None:
            where += f"  in {printable(space.name, 200)}"
        text.append(where)
    if offset is not None and space is not None and space.data is not None:
        lines = hex_dump(space, offset, BYTES_PER_ROW if size is None else max(size, 1))
        if lines:
            heading("Bytes")
            text.append("\n".join(lines))
    return text


class DetailScreen(ModalScreen[None]):
    """The whole of one field: escape closes."""

    DEFAULT_CSS = """
    DetailScreen { align: center middle; }
    DetailScreen > VerticalScroll {
        width: 90; height: auto; max-height: 90%;
        border: round $primary; background: $panel; padding: 0 1;
        scrollbar-size-vertical: 1;
    }
    """

    BINDINGS = [
        Binding("escape", "dismiss", "Close", id="detail-close"),
        Binding("enter", "dismiss", "Close", show=False),
        Binding("q", "dismiss", "Close", show=False),
    ]

    def __init__(self, node: Node, item: Field | Problem):
        super().__init__()
        self.node = node
        self.item = item

    @property
    def heading(self) -> str:
        name = self.item.name if isinstance(self.item, Field) else self.item.severity.value
        return f"{name} of {self.node.title or self.node.kind}"

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="detail-box") as box:
            box.border_title = escape(printable(self.heading, 80).replace("\n", " "))
            box.border_subtitle = "escape closes"
            yield Static(self.text(), id="detail-text")

    def text(self) -> Text:
        return detail_text(self.node, self.item)

    @property
    def plain(self) -> str:
        """What the view shows, as plain text (for tests)."""
        return self.text().plain
