"""NodeScreen: what every screen with the tree, the field table and the hex view shares.

Selecting a node fills the fields and points the hex view at its bytes; selecting a field marks
its bytes; `p` shows the bytes a decompressed space came from. The inspect screen and the live
screen both build on it, so a node looks the same wherever it is shown.
"""
from __future__ import annotations

import json
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.binding import Binding
from textual.markup import escape
from textual.screen import Screen
from textual.widgets import Static

from decoders.model import Node
from views.index import parse_number
from views.screens.prompt import PromptScreen
from views.widgets.field_table import FieldTable
from views.widgets.hex_view import HexView
from views.widgets.node_tree import MAX_LABEL_CHARS, NodeTree, clean_text


def export_json(root: Node, path: Path) -> int:
    """Write `root.to_json()` to `path`; returns the number of bytes written."""
    text = json.dumps(root.to_json(), indent=1)
    path.write_text(text, encoding="utf-8")
    return len(text.encode())



def describe_node(node: Node) -> Text:
    """One line about where a node's bytes are: kind, title, offset, size, address, space."""
    text = Text()
    text.append(node.kind, style="bold")
    text.append("  ")
    text.append(clean_text(node.title or "", MAX_LABEL_CHARS))
    where = f"\noffset 0x{node.offset:x}  size 0x{node.size:x}"
    if node.address is not None:
        where += f"  address 0x{node.address:x}"
    if node.space is not None:
        where += f"  in {clean_text(node.space.name, 60)}"
        if node.space.parent is not None:
            where += f" (from {clean_text(node.space.parent.title or '', 60)})"
    text.append(where, style="dim")
    return text


class NodeScreen(Screen):
    """A screen with a NodeTree, a FieldTable, a HexView and a `#node-info` Static; `g` goes to
    an offset or address in the bytes, `x`/`X` export the tree shown as JSON."""

    BINDINGS = [
        Binding("g", "goto", "Go to offset/address", id="goto"),
        Binding("x", "export", "Export JSON", id="export"),
        Binding("X", "export_as", "Export JSON to…", show=False, id="export-as"),
    ]
    current: Node | None = None
    root: Node | None = None
    source_name: str = "fwinspect"

    @property
    def fields(self) -> FieldTable:
        return self.query_one(FieldTable)

    @property
    def hex_view(self) -> HexView:
        return self.query_one(HexView)

    @on(NodeTree.NodeSelected)
    def _node_selected(self, event: NodeTree.NodeSelected) -> None:
        if event.node is not self.current:
            self.show_node(event.node)

    def show_node(self, node: Node, cursor: int | None = None) -> None:
        """Fill the field table and point the hex view at `node` (and at `cursor`, a byte in it)."""
        self.current = node
        # Fixed-size line (fwinspect.tcss): no layout pass needed, which keeps a key under 50 ms.
        self.query_one("#node-info", Static).update(describe_node(node), layout=False)
        self.fields.node = node
        hex_view = self.hex_view
        if hex_view.space is not node.space:
            hex_view.space = node.space
        hex_view.mark = None
        hex_view.cursor = cursor
        hex_view.span = (node.offset, node.offset + node.size) if node.size > 0 else None
        self._title_hex(node)
        if node.space is not None and node.space.data is not None:
            hex_view.scroll_to_offset(node.offset if cursor is None else cursor)

    def _title_hex(self, node: Node) -> None:
        hex_view, space = self.hex_view, node.space
        if space is None:
            hex_view.border_title, hex_view.border_subtitle = "Bytes", ""
            return
        base = "" if space.base is None else f" @ 0x{space.base:x}"
        # Border titles are Textual markup; names come from the input, so escape them.
        hex_view.border_title = escape(f"Bytes: {clean_text(space.name, 60)}{base}")
        hex_view.border_subtitle = f"0x{node.offset:x}..0x{node.offset + node.size:x}"

    def action_parent_space(self) -> None:
        """Show the bytes a decompressed space came from: its parent section, in that section's
        own space (a decompressed section's children live in a new space whose parent is that
        section)."""
        space = self.hex_view.space
        parent = None if space is None else space.parent
        if parent is None or parent.space is None:
            self.notify("the bytes shown are not inside another space", severity="information")
            return
        hex_view = self.hex_view
        hex_view.space = parent.space
        hex_view.mark = hex_view.cursor = None
        hex_view.span = (parent.offset, parent.offset + parent.size) if parent.size > 0 else None
        self._title_hex(parent)
        if parent.space.data is not None:
            hex_view.scroll_to_offset(parent.offset)

    @on(FieldTable.FieldOpened)
    def _field_opened(self, event: FieldTable.FieldOpened) -> None:
        """Enter on a field, in every screen with a fields pane: its whole value and bytes."""
        from views.screens.detail import DetailScreen

        self.app.push_screen(DetailScreen(event.node, event.item))

    @on(FieldTable.FieldSelected)
    def _field_selected(self, event: FieldTable.FieldSelected) -> None:
        hex_view = self.hex_view
        if event.offset is None or event.node is not self.current:
            hex_view.mark = None
            return
        if hex_view.space is not event.node.space:
            # `p` showed an enclosing space; field offsets are in the node's own space.
            self.show_node(event.node)
        # A field of size 0 or unknown size still marks the byte it starts at.
        hex_view.mark = (event.offset, event.offset + max(1, event.size or 1))
        hex_view.scroll_to_offset(event.offset, only_if_hidden=True)

    # -- go to --------------------------------------------------------------------
    def action_goto(self) -> None:
        def done(text: str | None) -> None:
            if text:
                self.goto(text)

        self.app.push_screen(PromptScreen("Go to offset or address in the hex view (hex)",
                                          placeholder="0x20000 or 0xffe20000"), done)

    def goto(self, text: str) -> int | None:
        """Scroll the hex view to an offset of its space, or an address when the space has a base.
        Returns the offset gone to."""
        value = parse_number(text)
        hex_view = self.hex_view
        space = hex_view.space
        if value is None:
            self.notify(f"{text!r} is not a hex number", severity="error", markup=False)
            return None
        if space is None or space.data is None:
            self.notify("the hex view has no bytes to go to", severity="warning")
            return None
        size = len(space.data)
        offset_of = getattr(space, "offset_of", None)
        if offset_of is not None:
            # A space whose addresses are not base + offset (the two canonical halves of a virtual
            # space, decoders/paging_translate.py VirtualSpace): it maps an address itself.
            offset = offset_of(value)
            if offset is None:
                self.notify(f"0x{value:x} is not a canonical address of {space.name}", severity="error",
                            markup=False)
                return None
        elif value < size:
            offset = value
        elif space.base is not None and space.base <= value < space.base + size:
            offset = value - space.base
        else:
            end = "" if space.base is None else f", addresses 0x{space.base:x}..0x{space.base + size:x}"
            self.notify(f"0x{value:x} is outside {space.name} (offsets 0..0x{size:x}{end})", severity="error",
                        markup=False)
            return None
        hex_view.cursor = offset
        hex_view.scroll_to_offset(offset)
        hex_view.focus()
        return offset

    # -- export -------------------------------------------------------------------
    def default_export_path(self) -> Path:
        return Path.cwd() / f"{Path(self.source_name).name or 'fwinspect'}.json"

    def action_export(self) -> None:
        self.export(self.default_export_path())

    def action_export_as(self) -> None:
        def done(text: str | None) -> None:
            if text:
                self.export(Path(text).expanduser())

        self.app.push_screen(PromptScreen("Export the tree as JSON to", value=str(self.default_export_path())),
                             done)

    @work(thread=True, exclusive=True, group="export", exit_on_error=False)
    def export(self, path: Path) -> None:
        if self.root is None:
            return
        # to_json of a big tree and the write are slow enough to run off the UI thread.
        try:
            written = export_json(self.root, path)
        except OSError as e:
            self.app.call_from_thread(self.notify, f"export failed: {path}: {e.strerror}", severity="error",
                                      markup=False)
            return
        self.app.call_from_thread(self.notify, f"wrote {path} ({written} bytes)", title="Exported JSON",
                                  markup=False)
