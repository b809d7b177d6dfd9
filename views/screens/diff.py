"""DiffScreen: the differences between two firmware images (inspector/diff.py), as one tree.

Left: the diff tree (DiffTree), each node marked added (+), removed (-), changed (~) or
unchanged (=, dimmed, hidden until `u`). Right: the selected node's fields side by side (Field |
A | B, DiffFieldTable), then A's bytes of the node over B's (two DiffHexViews), the bytes that
differ highlighted in both. `n` / `N` go to the next / previous change (a changed node with no
changed child, or an added or removed one); `/` searches as in the inspector (enter in the bar
walks the matches, since `n` is taken). It is an InspectScreen, so search, `g` (in the hex view
that has focus, else B's), `x` and `p` are the inspector's own.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from pathlib import Path

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.markup import escape
from textual.widgets import Footer, Header, Static

from decoders.model import Node
from views.screens.inspect import InspectScreen
from views.widgets.diff_fields import DiffFieldTable
from views.widgets.diff_hex import NO_COUNTERPART, DiffHexView
from views.widgets.diff_sides import Side, Sides
from views.widgets.diff_tree import MARKERS, DiffIndex, DiffTree, change_of, changes_of
from views.widgets.node_tree import clean_text
from views.widgets.search_bar import SearchBar


def describe_diff(node: Node, a: Side | None, b: Side | None) -> Text:
    """Two lines: the change, kind and title; where the node's bytes are in A and in B."""
    change = change_of(node)
    # One line each, cut at the pane's edge: a long title must not push the places out of view.
    text = Text(no_wrap=True, overflow="ellipsis")
    if change in MARKERS:
        text.append(f"{MARKERS[change]} {change}  ", style="bold")
    text.append(node.kind, style="bold")
    text.append("  ")
    text.append(DiffTree.label_for(node))

    def where(label: str, side: Side | None) -> str:
        if side is None:
            return f"{label}: absent"
        return f"{label}: 0x{side.offset:x}+0x{side.size:x}"

    line = f"\n{where('A', a)}   {where('B', b)}"
    what = changes_of(node)
    if what:
        line += "   changed: " + ", ".join(what)
    text.append(line, style="dim")
    return text


class DiffScreen(InspectScreen):
    BINDINGS = [
        Binding("n", "next_change", "Next change", id="diff-next"),
        Binding("N", "previous_change", "Previous change", show=False, id="diff-previous"),
        Binding("u", "toggle_unchanged", "Show/hide unchanged", id="diff-unchanged"),
    ]

    def __init__(self, root: Node, name_a: str, name_b: str, sides: Sides, index: DiffIndex | None = None):
        index = index if isinstance(index, DiffIndex) and index.root is root else DiffIndex(root)
        super().__init__(root, f"{name_a} vs {name_b}", index=index)
        self.name_a, self.name_b = name_a, name_b
        self.sides = sides
        self._changes: list[Node] | None = None
        self._change_pos: list[int] = []
        self._pos: dict[int, int] = {}
        self._change_number: dict[int, int] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="panes"):
            yield DiffTree(self.index, id="tree")
            with Vertical(id="details"):
                yield Static(id="node-info")
                headers = (f"A: {clean_text(self.name_a, 30)}", f"B: {clean_text(self.name_b, 30)}")
                yield DiffFieldTable(self.sides, headers, id="fields")
                yield DiffHexView(id="hex-a")
                yield DiffHexView(id="hex-b")
        yield SearchBar(id="search")
        yield Footer()

    def on_mount(self, event: events.Mount) -> None:
        # The inspect screen's on_mount titles widgets this screen does not have.
        event.prevent_default()
        tree = self.node_tree
        tree.border_title = "Differences"
        self._tree_subtitle()
        self.fields.border_title = "Fields"
        self.hex_a.border_title = "A"
        self.hex_b.border_title = "B"
        tree.focus()
        # The first change is what one opens a diff for: select it once the tree has its lines.
        self.call_after_refresh(self._first_change)

    def _first_change(self) -> None:
        # Unless the cursor was moved already (a search or a test before this first refresh).
        cursor = self.node_tree.current
        if cursor is None or cursor is self.root:
            self.step_change(+1)

    # -- widgets ------------------------------------------------------------------
    @property
    def node_tree(self) -> DiffTree:
        return self.query_one(DiffTree)

    @property
    def fields(self) -> DiffFieldTable:
        return self.query_one(DiffFieldTable)

    @property
    def hex_a(self) -> DiffHexView:
        return self.query_one("#hex-a", DiffHexView)

    @property
    def hex_b(self) -> DiffHexView:
        return self.query_one("#hex-b", DiffHexView)

    @property
    def hex_view(self) -> DiffHexView:
        """The hex view `g` and `p` act on: the one with focus, else the side the node has (B's
        unless it was removed)."""
        a, b = self.hex_a, self.hex_b
        if a.has_focus:
            return a
        if b.has_focus:
            return b
        return a if b.space is None and a.space is not None else b

    # -- showing a node -------------------------------------------------------------
    def show_node(self, node: Node, cursor: int | None = None) -> None:
        self.current = node
        a, b = self.sides.a(node), self.sides.b(node)
        self.query_one("#node-info", Static).update(describe_diff(node, a, b), layout=False)
        self.fields.node = node
        # A node without bytes (the summary, the measurements) compares values, not bytes.
        no_bytes = "no bytes of its own: it compares values" if node.space is None else None
        self._show_side(self.hex_a, "A", self.name_a, a, b, no_bytes or "not in A: added in B")
        self._show_side(self.hex_b, "B", self.name_b, b, a, no_bytes or "not in B: removed in B")
        self._tree_subtitle()
        if cursor is not None and b is not None and b.offset <= cursor < b.end:
            self.hex_b.cursor = cursor
            self.hex_b.scroll_to_offset(cursor)

    def _show_side(self, view: DiffHexView, label: str, name: str, side: Side | None, other: Side | None,
                   absent: str) -> None:
        view.mark = view.cursor = None
        if side is None or side.space is None:
            view.absent = absent if side is None else f"{label}'s bytes of this node are not known"
            view.span = view.against = None
            if view.space is not None:
                view.space = None
            view.border_title = escape(f"{label}: {clean_text(name, 40)}")
            view.border_subtitle = ""
            return
        view.absent = None
        if view.space is not side.space:
            view.space = side.space
        view.span = (side.offset, side.end) if side.size > 0 else None
        if other is None:
            view.against = NO_COUNTERPART
        else:
            # Bytes of the other side that are not known (a space read through a target): not compared.
            view.against = None if other.data is None else (other.data, other.offset, other.end)
        base = "" if side.space.base is None else f" @ 0x{side.space.base:x}"
        # The space's name only when it is not the file's own (a decompressed blob's).
        space_name = "" if side.space.name == Path(name).name else f" · {clean_text(side.space.name, 30)}"
        view.border_title = escape(f"{label}: {clean_text(name, 30)}{space_name}{base}")
        view.border_subtitle = f"0x{side.offset:x}..0x{side.end:x}"
        if side.space.data is not None:
            first = view.first_differing()
            view.scroll_to_offset(side.offset if first is None else first)

    def _title_hex(self, node: Node) -> None:
        # `p` (NodeScreen.action_parent_space) titles the hex view it changed by its node.
        view = self.hex_view
        label, name = ("A", self.name_a) if view is self.hex_a else ("B", self.name_b)
        space = node.space
        base = "" if space is None or space.base is None else f" @ 0x{space.base:x}"
        where = "" if space is None else f" · {clean_text(space.name, 30)}{base}"
        view.border_title = escape(f"{label}: {clean_text(name, 30)}{where}")
        view.border_subtitle = f"0x{node.offset:x}..0x{node.offset + node.size:x}"
        view.against = None  # the enclosing bytes are shown as they are, not compared

    @on(DiffFieldTable.RowSelected)
    def _row_selected(self, event: DiffFieldTable.RowSelected) -> None:
        if event.node is not self.current:
            return
        for view, span in ((self.hex_a, event.row.a_span), (self.hex_b, event.row.b_span)):
            view.mark = span
            if span is not None and view.data is not None:
                view.scroll_to_offset(span[0], only_if_hidden=True)

    # -- changes ------------------------------------------------------------------
    def changes(self) -> list[Node]:
        """What `n` / `N` step through, in tree order (DiffIndex.changes)."""
        if self._changes is None:
            self._pos = {id(n): i for i, n in enumerate(self.index.order)}
            self._changes = self.index.changes()
            self._change_pos = [self._pos[id(n)] for n in self._changes]
            self._change_number = {id(n): i for i, n in enumerate(self._changes)}
        return self._changes

    def step_change(self, delta: int) -> Node | None:
        """Select the next (delta > 0) or previous change after the node selected now, wrapping."""
        changes = self.changes()
        if not changes:
            self.notify("no differences: A and B hold the same", severity="information")
            return None
        here = -1 if self.current is None else self._pos.get(id(self.current), -1)
        if delta > 0:
            i = bisect_right(self._change_pos, here)
            i = 0 if i >= len(changes) else i
        else:
            i = bisect_left(self._change_pos, here) - 1
            i = len(changes) - 1 if i < 0 else i
        node = changes[i]
        self.node_tree.reveal(node)
        self.show_node(node)
        return node

    def _tree_subtitle(self) -> None:
        """Which change is selected (when one is) and whether unchanged nodes are hidden."""
        changes = self.changes()
        position = None if self.current is None else self._change_number.get(id(self.current))
        hidden = "" if self.index.show_unchanged else " · = hidden"
        where = f"change {position + 1} of {len(changes)}" if position is not None else f"{len(changes)} changes"
        self.node_tree.border_subtitle = where + hidden

    def action_next_change(self) -> None:
        self.step_change(+1)

    def action_previous_change(self) -> None:
        self.step_change(-1)

    def action_toggle_unchanged(self) -> None:
        tree = self.node_tree
        tree.set_show_unchanged(not self.index.show_unchanged)
        self._tree_subtitle()

    # -- export -------------------------------------------------------------------
    def default_export_path(self) -> Path:
        return Path.cwd() / f"diff-{Path(self.name_a).stem}-{Path(self.name_b).stem}.json"


__all__ = ["DiffScreen", "describe_diff"]
