"""FieldTable: the selected node's fields (spec name, value, offset, size) and its problems.

A DataTable is right here: a node has tens of fields, not thousands (measured here with Textual's
DataTable: 1 k rows cost 257 ms; a node's table costs a few ms). Problems follow the fields, coloured by severity, so a
checksum mismatch sits next to the `Checksum` field it is about.
"""
from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import DataTable

from decoders.model import Field, Node, Problem, Severity
from views.widgets.node_tree import clean_text

# Values are one line in a cell; longer text (a long device path, a hostile string) is cut.
MAX_VALUE_CHARS = 200
# A node with more fields than this (none of ours, but a hostile variable store could try) shows
# the first ones and says how many were left out.
MAX_ROWS = 1000

# A problem row's component class per severity; the colours are the theme's (DEFAULT_CSS below).
SEVERITY_CLASS = {
    Severity.ERROR: "field-table--error",
    Severity.WARNING: "field-table--warning",
    Severity.INFO: "field-table--info",
}


def table_css(widget: str) -> str:
    """The field tables' common style: thin scrollbars and the problem rows' colours per severity."""
    return f"""
    {widget} {{
        scrollbar-size-vertical: 1;
        scrollbar-size-horizontal: 1;
    }}
    {widget} > .field-table--error {{ color: $text-error; text-style: bold; }}
    {widget} > .field-table--warning {{ color: $text-warning; }}
    {widget} > .field-table--info {{ color: $text-accent; }}
    """


def hex_or_blank(value: int | None) -> str:
    return "" if value is None else f"0x{value:x}"


class FieldTable(DataTable):
    """Set `node` to show it; posts `FieldTable.FieldSelected` when the user moves over a row and
    `FieldTable.FieldOpened` on enter (the screen shows the whole value)."""

    COMPONENT_CLASSES = set(SEVERITY_CLASS.values())
    DEFAULT_CSS = table_css("FieldTable")

    @dataclass
    class FieldSelected(Message):
        """A field or problem row was chosen; `offset`/`size` locate its bytes in the node's space
        (None when the row has no location)."""

        table: "FieldTable"
        node: Node
        name: str
        offset: int | None
        size: int | None

        @property
        def control(self) -> "FieldTable":
            return self.table

    @dataclass
    class FieldOpened(Message):
        """Enter on a row: `item` is its Field or Problem."""

        table: "FieldTable"
        node: Node
        item: Field | Problem

        @property
        def control(self) -> "FieldTable":
            return self.table

    node: reactive[Node | None] = reactive(None, always_update=True)

    def __init__(self, *, id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=True)
        self._rows: list[tuple[str, int | None, int | None]] = []
        self._items: list[Field | Problem | None] = []

    def on_mount(self) -> None:
        # Value last: it is the one column that can be long, and the others stay in view.
        self.add_column("Field", key="name")
        self.add_column("Offset", key="offset")
        self.add_column("Size", key="size")
        self.add_column("Value", key="value")

    def watch_node(self, node: Node | None) -> None:
        self.clear()
        self._rows = []
        self._items = []
        if node is None:
            return
        rows = []
        for f in node.fields[:MAX_ROWS]:
            rows.append((Text(clean_text(f.name, MAX_VALUE_CHARS)), hex_or_blank(f.offset), hex_or_blank(f.size),
                         Text(clean_text(f.text, MAX_VALUE_CHARS))))
            self._rows.append((f.name, f.offset, f.size))
            self._items.append(f)
        for p in node.problems[:MAX_ROWS]:
            name = SEVERITY_CLASS.get(p.severity)
            style = self.get_component_rich_style(name, partial=True) if name else ""
            rows.append((Text(p.severity.value, style=style), hex_or_blank(p.offset), "",
                         Text(clean_text(p.message, MAX_VALUE_CHARS), style=style)))
            self._rows.append((f"{p.severity.value}: {p.message}", p.offset, None if p.offset is None else 1))
            self._items.append(p)
        left_out = max(0, len(node.fields) - MAX_ROWS) + max(0, len(node.problems) - MAX_ROWS)
        if left_out:
            rows.append((Text("…", style="dim"), "", "", Text(f"{left_out} more rows not shown", style="dim italic")))
            self._rows.append(("", None, None))
            self._items.append(None)
        self.add_rows(rows)

    def _update_dimensions(self, new_rows) -> None:
        super()._update_dimensions(new_rows)
        # Textual's DataTable measures new rows' columns here, on its idle event, but keeps the
        # cells it drew before at the old widths (its render caches are not keyed by width): a node
        # shown just before a frame kept the last node's column widths, cut, until the next key
        # in the table. Redraw with the widths just measured.
        self._clear_caches()
        self.refresh()

    @property
    def current_item(self) -> Field | Problem | None:
        """The Field or Problem of the row under the cursor."""
        row = self.cursor_row
        return self._items[row] if 0 <= row < len(self._items) else None

    def _post_current(self) -> None:
        node = self.node
        row = self.cursor_row
        if node is None or not (0 <= row < len(self._rows)):
            return
        name, offset, size = self._rows[row]
        self.post_message(self.FieldSelected(self, node, name, offset, size))

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        # The table highlights its first row whenever it is refilled; only a user moving in the
        # table (it has focus) selects a field.
        if self.has_focus:
            self._post_current()

    def on_focus(self) -> None:
        self._post_current()

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        item = self.current_item
        if self.node is not None and item is not None:
            self.post_message(self.FieldOpened(self, self.node, item))
