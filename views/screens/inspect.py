"""InspectScreen: tree on the left; the selected node's fields and its bytes on the right.

Messages up, attributes down (Textual docs/guide/widgets.md, "Data flow"): NodeTree and
FieldTable post what the user chose, this screen handles it and sets the other widgets' reactive
attributes. Search, go-to and export live here too, so the app class stays small (Posting's 1,674-line app.py is the thing to avoid).
"""
from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Header, Static

from decoders.model import Node
from views.index import TreeIndex, parse_number
from views.screens.node_screen import NodeScreen
from views.widgets.field_table import FieldTable
from views.widgets.hex_view import HexView
from views.widgets.node_tree import NodeTree
from views.widgets.search_bar import SearchBar


class InspectScreen(NodeScreen):
    BINDINGS = [
        Binding("slash", "search", "Search", id="search"),
        Binding("n", "next_match", "Next match", show=False, id="next-match"),
        Binding("N", "previous_match", "Previous match", show=False, id="previous-match"),
        Binding("p", "parent_space", "Bytes of the enclosing space", show=False, id="parent-space"),
    ]

    def __init__(self, root: Node, source_name: str, index: TreeIndex | None = None):
        super().__init__()
        self.root = root
        self.source_name = source_name
        self.index = index if index is not None and index.root is root else TreeIndex(root)
        self.current: Node | None = None
        self._query: str | None = None
        self._matches: list[Node] = []
        self._truncated = False
        self._position = -1

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="panes"):
            yield NodeTree(self.index, id="tree")
            with Vertical(id="details"):
                yield Static(id="node-info")
                yield FieldTable(id="fields")
                yield HexView(id="hex")
        yield SearchBar(id="search")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(NodeTree).border_title = "Tree"
        self.query_one(FieldTable).border_title = "Fields"
        self.query_one(HexView).border_title = "Bytes"
        self.query_one(NodeTree).focus()

    # -- widgets ------------------------------------------------------------------
    @property
    def node_tree(self) -> NodeTree:
        return self.query_one(NodeTree)

    @property
    def search_bar(self) -> SearchBar:
        return self.query_one(SearchBar)

    # -- search -------------------------------------------------------------------
    def action_search(self) -> None:
        self.search_bar.open()

    @on(SearchBar.Find)
    def _find(self, event: SearchBar.Find) -> None:
        self.find(event.query)

    @on(SearchBar.Closed)
    def _search_closed(self) -> None:
        self.node_tree.focus()

    def find(self, query: str) -> Node | None:
        """Jump to the next node matching `query` (a new query starts at its first match)."""
        q = query.strip()
        if q != self._query:
            result = self.index.search(q)
            self._query, self._matches, self._truncated = q, result.matches, result.truncated
            self._position = -1
        return self.step_match(+1)

    def step_match(self, delta: int) -> Node | None:
        bar = self.search_bar
        if not self._matches:
            bar.status = "no match" if self._query else ""
            return None
        self._position = (self._position + delta) % len(self._matches)
        node = self._matches[self._position]
        more = "+" if self._truncated else ""
        bar.status = f"{self._position + 1} of {len(self._matches)}{more}"
        if not self.node_tree.reveal(node):
            self.notify(f"{node.title}: not shown in the tree (its parent lists too many children)",
                        severity="warning", markup=False)
        number = parse_number(self._query or "") if (self._query or "").lower().startswith("0x") else None
        cursor = None
        if number is not None:
            if node.offset <= number < node.offset + node.size:
                cursor = number
            elif node.address is not None and node.address <= number < node.address + node.size:
                cursor = number - node.address + node.offset
        self.show_node(node, cursor)
        return node

    def action_next_match(self) -> None:
        self.step_match(+1)

    def action_previous_match(self) -> None:
        self.step_match(-1)
