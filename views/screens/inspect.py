"""InspectScreen: tree on the left; the selected node's fields and its bytes on the right.

Messages up, attributes down (Textual docs/guide/widgets.md, "Data flow"): NodeTree, FieldTable
and HexView post what the user chose, this screen handles it and sets the other widgets' reactive
attributes. The daily interactions live here too, so the app class stays small (Posting's
1,674-line app.py is the thing to avoid): `/` node search, `f` byte search, the hex cursor's path
line (which nodes hold the byte, innermost first; enter selects the innermost), `w`/`W` save a
node's bytes, `y` copy, enter on a field for its whole value, `d` disassemble, `o` open.
"""
from __future__ import annotations

import os
import re
import tempfile
import uuid
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Header, Static

from decoders.model import Field, Node, Problem, Space
from views.index import TreeIndex, parse_number
from views.screens.detail import raw_text
from views.screens.disasm import DisasmScreen
from views.screens.node_screen import NodeScreen
from views.screens.prompt import PromptScreen
from views.widgets.field_table import FieldTable
from views.widgets.hex_view import HexView
from views.widgets.node_tree import NodeTree, clean_text
from views.widgets.search_bar import SearchBar

# Byte-search hits kept: a pattern that matches everywhere (`??`) lists the first ones, bounded.
MAX_HITS = 10_000
# Nodes named on the path line: a sane tree is under 15 deep; the line is cut at the pane's edge.
MAX_PATH_NODES = 16
MAX_PATH_TITLE = 48
MAX_PATH_CHARS = 400
# A default file name is built from the node's title, cut to this many characters.
MAX_NAME_CHARS = 80
# Image kinds `d` disassembles, and how far below the selected node it looks for one (a file ->
# its PE32 section -> the image).
IMAGE_KINDS = ("pe", "te")
IMAGE_SEARCH_DEPTH = 3

# Fields whose GUID names the node itself (PI vol 3: FvName of a volume, Name of an FFS file; a
# variable's VendorGuid), copied by `y` before any other GUID the node holds.
IDENTITY_FIELDS = ("FvName", "Name", "VendorGuid")

# `/` queries with these prefixes (inspector.find's pattern syntax) search bytes, not nodes.
BYTE_PREFIXES = ("hex:", "text:", "ascii:", "utf16:", "guid:", "u8:", "u16:", "u32:", "u64:")

FIND_HINT = "hex bytes (?? any byte), a GUID, text (ASCII and UTF-16LE); prefixes force a reading: " \
            "hex: text: ascii: utf16: guid: u8: u16: u32: u64:"


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder, renamed over `path` at
    the end: a failed write leaves no partial file and an existing file untouched."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def file_name_for(node: Node, suffix: str) -> str:
    """A file name from the node's title: `SecMain_SECURITY_CORE_DF1CCEF6-….bin`."""
    name = re.sub(r"[^A-Za-z0-9.-]+", "_", node.title or node.kind).strip("_.")[:MAX_NAME_CHARS]
    return f"{name or node.kind}{suffix}"


def decompressed_space(node: Node) -> Space | None:
    """The space decompressed out of `node` (DESIGN.md: a decompressed section's children live in
    a new space whose parent is that section), None when it has none."""
    for child in node.children:
        space = child.space
        if space is not None and space is not node.space and space.parent is node and space.data is not None:
            return space
    return None


def copy_text(item: Field | Problem) -> str:
    """What `y` copies for a field: its raw value in full (a GUID, 0x number, hex of bytes)."""
    if isinstance(item, Problem):
        return str(item)
    if isinstance(item.value, (bool, int, uuid.UUID, bytes, bytearray, memoryview, str)):
        return raw_text(item.value)
    return item.text


def node_handle(node: Node) -> tuple[str, str] | None:
    """(what, text) `y` copies for a node: its GUID when a field holds one, else its address,
    else its offset."""
    guids = [f for f in node.fields if isinstance(f.value, uuid.UUID)]
    # The GUID naming the node (a volume's FvName, a file's Name) before any other it holds.
    guids.sort(key=lambda f: f.name not in IDENTITY_FIELDS)
    if guids:
        return guids[0].name, str(guids[0].value).upper()
    if node.address is not None:
        return "address", f"0x{node.address:x}"
    if node.space is not None:
        return "offset", f"0x{node.offset:x}"
    return None


def path_text(space: Space, offset: int, nodes: list[Node]) -> Text:
    """The path line: the byte (offset, address), then the nodes holding it, innermost first."""
    text = Text()
    addr = space.address_of(offset)
    text.append(f"0x{offset:x}" + ("" if addr is None else f" @0x{addr:x}"), style="bold")
    if not nodes:
        text.append("  no node holds this byte", style="italic")
        return text
    for i, n in enumerate(nodes[:MAX_PATH_NODES]):
        text.append(" ‹ " if i else "  ")
        text.append(clean_text(n.title or n.kind, MAX_PATH_TITLE))
        text.append(f" [{n.kind} 0x{n.offset:x}..0x{n.offset + n.size:x}]", style="dim")
    # One line, cut at the pane's edge: what is past any terminal's width need not be laid out.
    text.truncate(MAX_PATH_CHARS, overflow="ellipsis")
    return text


class InspectScreen(NodeScreen):
    DEFAULT_CSS = """
    InspectScreen #hex-path, InspectScreen #find-status {
        height: 1;
        padding: 0 1;
        background: $boost;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    InspectScreen #find-status { display: none; color: $text-accent; }
    InspectScreen #find-status.-shown { display: block; }
    InspectScreen #find-status.-error { color: $text-error; }
    """

    BINDINGS = [
        Binding("slash", "search", "Search", id="search"),
        Binding("f", "find_bytes", "Find bytes", show=False, id="find-bytes"),
        Binding("n", "next_match", "Next match", show=False, id="next-match"),
        Binding("N", "previous_match", "Previous match", show=False, id="previous-match"),
        Binding("p", "parent_space", "Bytes of the enclosing space", show=False, id="parent-space"),
        Binding("w", "save", "Save bytes", show=False, id="save"),
        Binding("W", "save_decompressed", "Save decompressed bytes", show=False, id="save-decompressed"),
        Binding("y", "copy", "Copy", show=False, id="copy"),
        Binding("d", "disassemble", "Disassemble", show=False, id="disassemble"),
        Binding("o", "open", "Open", show=False, id="open"),
    ]

    def __init__(self, root: Node, source_name: str, index: TreeIndex | None = None, node_index=None):
        super().__init__()
        self.root = root
        self.source_name = source_name
        self.index = index if index is not None and index.root is root else TreeIndex(root)
        self._node_index = node_index if node_index is not None and node_index.root is root else None
        self.current: Node | None = None
        self._query: str | None = None
        self._matches: list[Node] = []
        self._truncated = False
        self._position = -1
        # n/N step through the last search made: "nodes" (/) or "bytes" (f).
        self._last_search = "nodes"
        self.find_result = None
        self.find_pattern = None
        self._hit = -1
        self.path_nodes: list[Node] = []

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="panes"):
            yield NodeTree(self.index, id="tree")
            with Vertical(id="details"):
                yield Static(id="node-info")
                yield FieldTable(id="fields")
                yield HexView(id="hex")
                yield Static(id="hex-path", markup=False)
                yield Static(id="find-status", markup=False)
        yield SearchBar(id="search")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(NodeTree).border_title = "Tree"
        self.query_one(FieldTable).border_title = "Fields"
        self.query_one(HexView).border_title = "Bytes"
        self._show_path(None, None)
        self.query_one(NodeTree).focus()

    def show_tree(self, root: Node, source_name: str, index: TreeIndex, node_index=None) -> None:
        """Show another decoded tree in this screen (`o`): searches and the cursor start again."""
        self.root, self.source_name, self.index = root, source_name, index
        self._node_index = node_index if node_index is not None and node_index.root is root else None
        self._query, self._matches, self._truncated, self._position = None, [], False, -1
        self._last_search, self.find_result, self.find_pattern, self._hit = "nodes", None, None, -1
        self.search_bar.status = ""
        for status in self.query("#find-status"):
            status.set_class(False, "-shown")
        self.node_tree.show_index(index)
        self.show_node(root)
        self._show_path(None, None)

    # -- widgets ------------------------------------------------------------------
    @property
    def node_tree(self) -> NodeTree:
        return self.query_one(NodeTree)

    @property
    def search_bar(self) -> SearchBar:
        return self.query_one(SearchBar)

    @property
    def node_index(self):
        """Byte -> nodes (inspector.nodes_at) of the tree shown, built on first use unless the
        loader built it (again when the root changes, as the tour's chapters do)."""
        if self._node_index is None or self._node_index.root is not self.root:
            from inspector.nodes_at import NodeIndex

            self._node_index = NodeIndex(self.root)
        return self._node_index

    def select(self, node: Node, cursor: int | None = None) -> bool:
        """Select `node` in the tree (expanding its parents) and show it, the hex cursor at
        `cursor`; False when the tree cannot show it (the node is still shown on the right)."""
        shown = self.node_tree.reveal(node)
        if not shown:
            self.notify(f"{clean_text(node.title, 80)}: not shown in the tree (its parent lists too many children)",
                        severity="warning", markup=False)
        self.show_node(node, cursor)
        return shown

    # -- the hex cursor and its path line ----------------------------------------------
    @on(HexView.CursorMoved)
    def _cursor_moved(self, event: HexView.CursorMoved) -> None:
        self._show_path(event.space, event.offset)

    def _show_path(self, space: Space | None, offset: int | None) -> None:
        found = self.query("#hex-path")
        if not found:
            return  # a screen built on this one without the path line (the tour's)
        line = found.first(Static)
        if space is None or offset is None:
            self.path_nodes = []
            line.update(Text("Bytes: arrows or a click move the cursor; the nodes holding its byte show here",
                             style="dim italic"), layout=False)
            return
        index = self.node_index
        chain = getattr(index, "chain", None)
        self.path_nodes = chain(space, offset) if chain is not None else index.path(space, offset)
        line.update(path_text(space, offset, self.path_nodes), layout=False)

    @on(HexView.CursorChosen)
    def _cursor_chosen(self, event: HexView.CursorChosen) -> None:
        nodes = self.node_index.path(event.space, event.offset)
        if not nodes:
            self.notify(f"no node holds byte 0x{event.offset:x} of {event.space.name}", severity="warning",
                        markup=False)
            return
        self.select(nodes[0], event.offset)

    # -- node search (/) ----------------------------------------------------------------
    def action_search(self) -> None:
        self.search_bar.open()

    @on(SearchBar.Find)
    def _find(self, event: SearchBar.Find) -> None:
        self.find(event.query)

    @on(SearchBar.Closed)
    def _search_closed(self) -> None:
        self.node_tree.focus()

    def find(self, query: str) -> Node | None:
        """Jump to the next node matching `query` (a new query starts at its first match). A query
        with a byte-pattern prefix (`hex:`, `text:`, `guid:`, `u32:` …) is a byte search instead:
        enter again steps to its next hit."""
        q = query.strip()
        if q.lower().startswith(BYTE_PREFIXES):
            if self.find_result is not None and getattr(self.find_pattern, "source", None) == q:
                self._last_search = "bytes"
                self.step_hit(+1)
            else:
                self.find_bytes(q)
            return self.current
        self._last_search = "nodes"
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
        number = parse_number(self._query or "") if (self._query or "").lower().startswith("0x") else None
        cursor = None
        if number is not None:
            if node.offset <= number < node.offset + node.size:
                cursor = number
            elif node.address is not None and node.address <= number < node.address + node.size:
                cursor = number - node.address + node.offset
        self.select(node, cursor)
        return node

    def action_next_match(self) -> None:
        if self._last_search == "bytes":
            self.step_hit(+1)
        else:
            self.step_match(+1)

    def action_previous_match(self) -> None:
        if self._last_search == "bytes":
            self.step_hit(-1)
        else:
            self.step_match(-1)

    # -- byte search (f) ----------------------------------------------------------------
    def _status(self, text: str, *, error: bool = False) -> None:
        found = self.query("#find-status")
        if not found:  # a screen built on this one without the status line (the tour's)
            self.notify(text, title="Find bytes", severity="error" if error else "information", markup=False)
            return
        status = found.first(Static)
        status.set_class(True, "-shown")
        status.set_class(error, "-error")
        status.update(text)

    @property
    def find_status(self) -> str:
        """The byte search's status line as shown (for tests)."""
        found = self.query("#find-status")
        return str(found.first(Static).render()) if found else ""

    def action_find_bytes(self) -> None:
        def done(text: str | None) -> None:
            if text is not None:
                self.find_bytes(text)

        self.app.push_screen(PromptScreen("Find bytes in the image and its decompressed volumes",
                                          value=getattr(self.find_pattern, "source", "") or "",
                                          placeholder="4d 5a ?? 00  or  SecMain  or  a GUID  or  u32:0x1000", hint=FIND_HINT),
                             done)

    def find_bytes(self, text: str) -> None:
        """Parse `text` as a byte pattern and search every space of the tree for it, in a worker."""
        from inspector.find import PatternError, parse_pattern

        self._last_search = "bytes"
        try:
            pattern = parse_pattern(text)
        except PatternError as e:
            self._status(f"find: {e}", error=True)
            self.notify(str(e), title="Find bytes", severity="error", markup=False)
            return
        self.find_pattern = pattern
        self.find_result, self._hit = None, -1
        self._status(f"searching for {pattern.describe()} …")
        self._search_bytes(pattern)

    @work(thread=True, exclusive=True, group="find-bytes", exit_on_error=False)
    def _search_bytes(self, pattern) -> None:
        from inspector.find import find

        result = find(self.root, pattern, limit=MAX_HITS, index=self.node_index)
        self.app.call_from_thread(self._found, pattern, result)

    def _found(self, pattern, result) -> None:
        if pattern is not self.find_pattern:
            return  # a newer search replaced this one
        self.find_result = result
        if not result.hits:
            why = f"; {result.problems[0]}" if result.problems else ""
            self._status(f"no hit in {result.spaces} spaces: {pattern.describe()}{why}", error=True)
            return
        self.step_hit(+1)

    def hit_status(self) -> str:
        result, i = self.find_result, self._hit
        hit = result.hits[i]
        total = f"the first {len(result.hits):,} hits" if result.truncated else f"{len(result.hits):,}"
        where = f"{hit.space.name}, 0x{hit.offset:x}, {hit.variant}"
        inner = f" in {clean_text(hit.path[0].title or hit.path[0].kind, MAX_PATH_TITLE)}" if hit.path else ""
        # The hit first: the line is cut at the pane's edge, and how the pattern was read is known.
        return f"hit {i + 1:,} of {total} ({where}){inner} · {self.find_pattern.describe()}"

    def step_hit(self, delta: int):
        """Go to the next (+1) or previous (-1) byte-search hit: the innermost node holding it is
        selected and the hex cursor put on its first byte, the hit's bytes marked."""
        result = self.find_result
        if result is None or not result.hits:
            return None
        self._hit = (self._hit + delta) % len(result.hits)
        hit = result.hits[self._hit]
        if hit.path:
            self.select(hit.path[0], hit.offset)
        else:
            hex_view = self.hex_view
            hex_view.space = hit.space
            hex_view.span = None
            hex_view.cursor = hit.offset
            hex_view.scroll_to_offset(hit.offset)
        self.hex_view.mark = (hit.offset, hit.offset + max(1, hit.length))
        self._status(self.hit_status())
        # The search bar's own "n of m", when the search came from it.
        self.search_bar.status = f"{self._hit + 1} of {len(result.hits)}{'+' if result.truncated else ''}"
        return hit

    # -- fields: copy (y); enter on a field is NodeScreen's ---------------------------------
    def action_copy(self) -> str | None:
        """Copy the selected field's value (the fields pane focused), the cursor byte's address
        (the bytes pane focused), else the node's GUID or address, to the terminal's clipboard."""
        node = self.current
        fields, hex_view = self.fields, self.hex_view
        what, text = None, None
        if fields.has_focus and fields.current_item is not None:
            item = fields.current_item
            what = item.name if isinstance(item, Field) else item.severity.value
            text = copy_text(item)
        elif hex_view.has_focus and hex_view.cursor is not None and hex_view.space is not None:
            offset = hex_view.cursor
            addr = hex_view.space.address_of(offset)
            what, text = ("offset", f"0x{offset:x}") if addr is None else ("address", f"0x{addr:x}")
        elif node is not None:
            handle = node_handle(node)
            if handle is not None:
                what, text = handle
        if text is None:
            self.notify("nothing to copy here", severity="warning")
            return None
        # OSC 52 (App.copy_to_clipboard): the terminal puts it on the clipboard, over ssh too.
        self.app.copy_to_clipboard(text)
        self.notify(clean_text(text, 120), title=f"Copied {clean_text(what, 40)}", markup=False)
        return text

    # -- save (w, W) ------------------------------------------------------------------
    def action_save(self) -> None:
        self.ask_save(decompressed=False)

    def action_save_decompressed(self) -> None:
        self.ask_save(decompressed=True)

    def ask_save(self, *, decompressed: bool) -> None:
        node = self.current
        if node is None:
            return
        title = clean_text(node.title or node.kind, 60)
        if decompressed:
            space = decompressed_space(node)
            if space is None:
                self.notify(f"{title} has no decompressed content: w saves its bytes as stored",
                            severity="warning", markup=False)
                return
            what, size, suffix = "decompressed content", space.size, ".decompressed.bin"
        else:
            if node.space is None or node.space.data is None or node.size <= 0:
                self.notify(f"{title} has no bytes to save", severity="warning", markup=False)
                return
            what, size, suffix = "bytes as stored", node.size, ".bin"
        default = Path.cwd() / file_name_for(node, suffix)

        def done(text: str | None) -> None:
            if text:
                self.save(node, Path(text).expanduser(), decompressed=decompressed)

        hint = "" if decompressed or decompressed_space(node) is None else \
            "W saves its decompressed content instead"
        self.app.push_screen(PromptScreen(f"Save the {what} of {title} (0x{size:x} bytes) to",
                                          value=str(default), hint=hint), done)

    @work(thread=True, exclusive=True, group="save", exit_on_error=False)
    def save(self, node: Node, path: Path, *, decompressed: bool = False) -> None:
        """Write the node's stored bytes (or its decompressed space) to `path`, atomically."""
        if decompressed:
            space = decompressed_space(node)
            if space is None:
                return
            space.need(space.size)
            data = bytes(space.data)
        else:
            node.space.need(node.offset + node.size)
            data = node.bytes
        if path.is_dir():
            self.app.call_from_thread(self.notify, f"not saved: {path} is a folder", severity="error",
                                      markup=False)
            return
        try:
            write_atomic(path, data)
        except OSError as e:
            self.app.call_from_thread(self.notify, f"not saved: {path}: {e.strerror or e}", severity="error",
                                      markup=False)
            return
        self.app.call_from_thread(self.notify, f"wrote {path} (0x{len(data):x} bytes)", title="Saved",
                                  markup=False)

    # -- disassemble (d) ----------------------------------------------------------------
    def image_node(self, node: Node | None) -> Node | None:
        """The PE/TE image `node` is, is inside, or holds a few levels down (a file, its PE32
        section); None when there is none."""
        up = node
        while up is not None:
            if up.kind in IMAGE_KINDS:
                return up
            up = self.index.parent(up)
        level = [] if node is None else list(node.children)
        for _ in range(IMAGE_SEARCH_DEPTH):
            for child in level:
                if child.kind in IMAGE_KINDS:
                    return child
            level = [c for n in level for c in n.children]
        return None

    def action_disassemble(self) -> None:
        image = self.image_node(self.current)
        if image is None:
            title = "nothing" if self.current is None else clean_text(self.current.title, 60)
            self.notify(f"{title}: no PE or TE image here (select a driver, its PE32/TE section or the image)",
                        severity="warning", markup=False)
            return
        # The FFS file holding the image, when there is one: its UI name finds the module's .debug file.
        owner = self.index.parent(image)
        while owner is not None and owner.kind != "ffs":
            owner = self.index.parent(owner)
        target = owner if owner is not None and self.image_node(owner) is image else image
        symbols = getattr(self.app, "symbol_index", lambda: None)()
        self.app.push_screen(DisasmScreen(target, symbols=symbols))

    # -- open (o) -----------------------------------------------------------------------
    def action_open(self) -> None:
        if not hasattr(self.app, "open_source"):
            self.notify("this app shows one source: quit and run fwinspect on another", severity="warning")
            return

        def done(text: str | None) -> None:
            if text and text.strip():
                # Later: the prompt calls this before it is popped, and the loading screen goes on
                # top of what is open, not under the prompt.
                self.app.call_later(self.app.open_source, str(Path(text.strip()).expanduser()))

        start = str(Path(self.source_name).parent) if os.sep in self.source_name else str(Path.cwd())
        self.app.push_screen(PromptScreen("Open a firmware image, dump, event log, HOB list or ACPI tables",
                                          value=start.rstrip(os.sep) + os.sep), done)
