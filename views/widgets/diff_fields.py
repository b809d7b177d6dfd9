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

from decoders.model import Field, Node
from views.widgets.diff_sides import Side, Sides, location_a
from views.widgets.diff_tree import REMOVED, change_of
from views.widgets.field_table import MAX_ROWS, MAX_VALUE_CHARS, SEVERITY_CLASS, table_css
from views.widgets.node_tree import clean_text

Span = tuple[int, int]
# The row between the diff's own fields and the decoded nodes' fields that differ.
DECODED = "≠ decoded"


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


def _span(side: Side | None) -> Span | None:
    return None if side is None or side.size <= 0 else (side.offset, side.end)


def _field_span(f: Field) -> Span | None:
    # A field of size 0 or unknown size still marks the byte it starts at (as NodeScreen does).
    return None if f.offset is None else (f.offset, f.offset + max(1, f.size or 1))


def _cell(f: Field) -> str:
    value = f.value
    if f.display is None and isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return clean_text(", ".join(value), MAX_VALUE_CHARS)  # Changes, Fields: short names
    return clean_text(f.text, MAX_VALUE_CHARS)


def decoded_rows(node_a: Node | None, node_b: Node | None) -> list[Row]:
    """The decoded nodes' own fields that differ (by spec name), each side's bytes located."""
    if node_a is None or node_b is None:
        return []
    fields_a = {}
    for f in node_a.fields:
        fields_a.setdefault(f.name, f)
    rows = []
    for fb in node_b.fields:
        fa = fields_a.get(fb.name)
        if fa is None or fa.text == fb.text:
            continue
        rows.append(Row(fb.name, _cell(fa), _cell(fb), _field_span(fa), _field_span(fb)))
    return rows


def diff_rows(node: Node, sides: Sides | None) -> list[Row]:
    """The rows of `node`: Change; where each side's bytes are (Offset, Size); the diff node's
    per-side pairs (`UsedA`/`UsedB` as one row `Used`) and its other fields as one value; then
    the fields of the decoded nodes behind the two sides that differ; then its problems."""
    a = b = None
    located = sides is not None and node.space is not None
    if located:
        a, b = sides.a(node), sides.b(node)
    done: set[int] = set()  # ids of the fields already shown (names may repeat: OffsetA)
    if located:
        loc = location_a(node)
        done.update(id(f) for f in node.fields
                    if f is loc or f.name == "SpaceA" or (f.name in ("SizeA", "SizeB") and not isinstance(f.value, str)))
    rows: list[Row] = []

    def where() -> None:
        rows.append(Row("Offset", "" if a is None else f"0x{a.offset:x}", "" if b is None else f"0x{b.offset:x}",
                        _span(a), _span(b)))
        rows.append(Row("Size", "" if a is None else f"0x{a.size:x}", "" if b is None else f"0x{b.size:x}",
                        _span(a), _span(b)))

    def own(span: Span | None) -> tuple[Span | None, Span | None]:
        # A diff node's field or problem offset is in its own space: A's for a removed node.
        return (span, None) if change_of(node) == REMOVED else (None, span)

    if located and node.field("Change") is None:
        where()
    for f in node.fields:
        if id(f) in done:
            continue
        done.add(id(f))
        name = f.name
        if len(name) > 1 and name[-1] in "AB":
            want = name[:-1] + ("B" if name[-1] == "A" else "A")
            other = next((g for g in node.fields if g.name == want and id(g) not in done), None)
            if other is not None:
                done.add(id(other))
                fa, fb = (f, other) if name[-1] == "A" else (other, f)
                # `MRTD.per-page.A` / `.B` (inspector/diff_measure.py) read as `MRTD.per-page`.
                rows.append(Row(name[:-1].rstrip(".") or name, _cell(fa), _cell(fb)))
                continue
        rows.append(Row(name, _cell(f), None, *own(_field_span(f))))
        if name == "Change" and located:
            where()
    if sides is not None:
        decoded = decoded_rows(*sides.decoded(node))
        if decoded:
            rows.append(Row(DECODED, "", None))
            rows.extend(decoded)
    for p in node.problems:
        span = None if p.offset is None else (p.offset, p.offset + 1)
        rows.append(Row(p.severity.value, clean_text(p.message, MAX_VALUE_CHARS), None, *own(span),
                        severity=p.severity.value))
    return rows[:MAX_ROWS]


class DiffFieldTable(DataTable):
    """Set `node` to show it (its sides found by `sides`); posts `DiffFieldTable.RowSelected` when the user
    moves over a row."""

    COMPONENT_CLASSES = set(SEVERITY_CLASS.values()) | {"diff-fields--a", "diff-fields--b", "diff-fields--same"}
    DEFAULT_CSS = table_css("DiffFieldTable") + """
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

    def __init__(self, sides: Sides | None = None, headers: tuple[str, str] = ("A", "B"), *, id: str | None = None,
                 classes: str | None = None):
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=True)
        self.sides = sides
        self.headers = headers
        self.rows_shown: list[Row] = []

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
            elif row.name == DECODED:
                out.append((Text(DECODED, style="dim italic"), Text("fields that differ", style="dim italic"),
                            Text("")))
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
