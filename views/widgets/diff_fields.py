"""DiffFieldTable: a diff node's fields, side by side: Field | A | B.

A field that has a value per side (`SizeA` and `SizeB`, or `OffsetA` beside the node's own
offset in B) is one row with A's value and B's; a row whose two values differ is coloured (A's as
removed, B's as added). A field that is about the pair (Change, Name, Changes) is one value, in
the A column, read across both. Problems follow, as in the FieldTable.
"""
from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import DataTable

from decoders.model import Node, format_value
from views.widgets.diff_sides import Side, Sides
from views.widgets.diff_tree import REMOVED, change_of
from views.widgets.field_table import MAX_ROWS, MAX_VALUE_CHARS, SEVERITY_CLASS
from views.widgets.node_tree import clean_text

Span = tuple[int, int]


@dataclass(frozen=True)
class Row:
    """One row: the field's name, A's text, B's text (None: one value for both, in `a`), and
    where each side's bytes of it are (None when not located)."""

    name: str
    a: str
    b: str | None
    a_span: Span | None = None
    b_span: Span | None = None
    severity: str | None = None

    @property
    def differs(self) -> bool:
        return self.b is not None and self.a != self.b


def _text(value) -> str:
    return "" if value is None else format_value(value)


def _span(side: Side | None) -> Span | None:
    return None if side is None or side.size <= 0 else (side.offset, side.end)


def diff_rows(node: Node, sides: Sides | None) -> list[Row]:
    """The rows of `node`: per-side pairs from the `…A`/`…B` fields and from where each side's
    bytes are (Offset, Size), the rest as one value."""
    names = [f.name for f in node.fields]
    by_name = {f.name: f for f in node.fields}
    a = sides.a(node) if sides is not None else None
    b = sides.b(node) if sides is not None else None
    rows: list[Row] = []
    used: set[str] = set()
    where_done = False

    def own(span: Span | None) -> tuple[Span | None, Span | None]:
        # A field's or problem's offset is in the node's own space: A's for a removed node, else B's.
        return (span, None) if change_of(node) == REMOVED else (None, span)

    def where() -> None:
        # Offset and Size of each side, from the Sides (a removed node has no B, an added no A).
        rows.append(Row("Offset", "" if a is None else f"0x{a.offset:x}", "" if b is None else f"0x{b.offset:x}",
                        _span(a), _span(b)))
        rows.append(Row("Size", "" if a is None else f"0x{a.size:x}", "" if b is None else f"0x{b.size:x}",
                        _span(a), _span(b)))
        used.update({"OffsetA", "OffsetB", "SizeA", "SizeB"})

    for name in names:
        if name in used:
            continue
        field = by_name[name]
        if name in ("OffsetA", "OffsetB", "SizeA", "SizeB") and sides is not None:
            if not where_done:
                where()
                where_done = True
            continue
        stem = name[:-1] if len(name) > 1 and name[-1] in "AB" else None
        other = None if stem is None else by_name.get(stem + ("B" if name[-1] == "A" else "A"))
        if other is not None:
            fa, fb = (field, other) if name[-1] == "A" else (other, field)
            rows.append(Row(stem, clean_text(fa.text, MAX_VALUE_CHARS), clean_text(fb.text, MAX_VALUE_CHARS)))
            used.update({fa.name, fb.name})
            continue
        span = None if field.offset is None else (field.offset, field.offset + max(1, field.size or 1))
        rows.append(Row(name, clean_text(field.text, MAX_VALUE_CHARS), None, *own(span)))
        used.add(name)
        if name == "Change" and not where_done and sides is not None:
            where()
            where_done = True
    if not where_done and sides is not None:
        where()
    for p in node.problems:
        span = None if p.offset is None else (p.offset, p.offset + 1)
        rows.append(Row(p.severity.value, clean_text(p.message, MAX_VALUE_CHARS), None, *own(span),
                        severity=p.severity.value))
    return rows[:MAX_ROWS]


class DiffFieldTable(DataTable):
    """Set `sides` once, then `node` to show it; posts `DiffFieldTable.RowSelected` when the user
    moves over a row."""

    COMPONENT_CLASSES = set(SEVERITY_CLASS.values()) | {"diff-fields--a", "diff-fields--b", "diff-fields--same"}
    DEFAULT_CSS = """
    DiffFieldTable {
        scrollbar-size-vertical: 1;
        scrollbar-size-horizontal: 1;
    }
    DiffFieldTable > .field-table--error { color: $text-error; text-style: bold; }
    DiffFieldTable > .field-table--warning { color: $text-warning; }
    DiffFieldTable > .field-table--info { color: $text-accent; }
    DiffFieldTable > .diff-fields--a { color: $text-error; text-style: bold; }
    DiffFieldTable > .diff-fields--b { color: $text-success; text-style: bold; }
    DiffFieldTable > .diff-fields--same { color: $text-muted; }
    """

    @dataclass
    class RowSelected(Message):
        """A row was chosen: `a_span`/`b_span` are its bytes on each side (None: not located)."""

        table: "DiffFieldTable"
        node: Node
        row: Row

        @property
        def control(self) -> "DiffFieldTable":
            return self.table

    node: reactive[Node | None] = reactive(None, always_update=True)

    def __init__(self, *, id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=True)
        self.sides: Sides | None = None
        self.rows_shown: list[Row] = []
        self.headers = ("A", "B")

    def on_mount(self) -> None:
        self.add_column("Field", key="name")
        self.add_column(self.headers[0], key="a")
        self.add_column(self.headers[1], key="b")

    def watch_node(self, node: Node | None) -> None:
        self.clear()
        self.rows_shown = [] if node is None else diff_rows(node, self.sides)
        get = self.get_component_rich_style
        out = []
        for row in self.rows_shown:
            if row.severity is not None:
                cls = next((c for s, c in SEVERITY_CLASS.items() if s.value == row.severity), None)
                style = get(cls, partial=True) if cls else ""
                out.append((Text(row.name, style=style), Text(row.a, style=style), Text("")))
            elif row.b is None:
                out.append((Text(row.name), Text(row.a), Text("")))
            elif row.differs:
                out.append((Text(row.name, style="bold"), Text(row.a, style=get("diff-fields--a", partial=True)),
                            Text(row.b, style=get("diff-fields--b", partial=True))))
            else:
                same = get("diff-fields--same", partial=True)
                out.append((Text(row.name), Text(row.a), Text(row.b, style=same)))
        self.add_rows(out)

    def row_texts(self) -> list[tuple[str, str, str]]:
        """(Field, A, B) as shown (for tests)."""
        return [tuple(str(c) for c in self.get_row_at(i)) for i in range(self.row_count)]

    def _post_current(self) -> None:
        row = self.cursor_row
        if self.node is None or not 0 <= row < len(self.rows_shown):
            return
        self.post_message(self.RowSelected(self, self.node, self.rows_shown[row]))

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        # Refilling highlights the first row; only a user moving in the table selects a row.
        if self.has_focus:
            self._post_current()

    def on_focus(self) -> None:
        self._post_current()


__all__ = ["DiffFieldTable", "Row", "diff_rows"]
