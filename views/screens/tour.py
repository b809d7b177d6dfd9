"""TourScreen: a guided walkthrough of a boot, one chapter at a time, beside the decoded tree.

Left: the chapter (ChapterText): its prose with every value marked, what was not as usual, and
the "try this" commands. Right: the same tree, field table and hex view as the inspect screen
(it is an InspectScreen, so `/`, `g` and `x` are the inspector's own), showing the chapter's root:
the tree decoded at the chapter's stop, or the image's tree for an offline chapter. Choosing a
value jumps the tree to its node (the value's path of child indexes from that root) and selects
its field; `n` / `p` move through the chapters and `t` lists them.

A chapter switch reuses every widget: the tree widget is refilled in place (NodeTree.show_index)
only when the root changes, and each root's TreeIndex is built the first time a chapter shows it
and kept.
"""
from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.reactive import reactive
from textual.screen import ModalScreen
from textual.widgets import Footer, Header, Input, OptionList, Static
from textual.widgets.option_list import Option

from decoders.model import Node
from inspector.live.session_api import Stop
from inspector.tour.model import Chapter, Value
from views.index import TreeIndex, parse_number
from views.screens.inspect import InspectScreen
from views.widgets.chapter_text import ChapterText
from views.widgets.field_table import MAX_ROWS, FieldTable
from views.widgets.hex_view import HexView
from views.widgets.node_tree import NodeTree, clean_text
from views.widgets.search_bar import SearchBar

# Shown as the tree of a chapter that has nothing decoded to point at.
NO_IMAGE = Node("tour", "no image decoded for this chapter")


def stop_root(stop: Stop) -> Node:
    return stop.tree if stop.tree is not None else Node("stop", f"stop {stop.index}: nothing decoded here")


def node_at(root: Node, path: tuple[int, ...] | list[int]) -> Node | None:
    """The node reached from `root` by child indexes `path`; None when the tree has no such node."""
    node = root
    for i in path:
        if not 0 <= i < len(node.children):
            return None
        node = node.children[i]
    return node


def space_holds(space, value: int) -> bool:
    """Whether NodeScreen.goto can go to `value` in `space` (as an offset, or an address)."""
    if space is None or space.data is None:
        return False
    offset_of = getattr(space, "offset_of", None)
    if offset_of is not None:
        return offset_of(value) is not None
    size = len(space.data)
    return value < size or (space.base is not None and space.base <= value < space.base + size)


@dataclass(frozen=True)
class Contents:
    """What the table of contents lists: every chapter's title, and the one shown now."""

    titles: list[str]
    current: int


class ContentsScreen(ModalScreen[int | None]):
    """The chapters, one line each; enter goes to the highlighted one, escape closes."""

    DEFAULT_CSS = """
    ContentsScreen { align: center middle; }
    ContentsScreen > OptionList {
        width: 80; height: auto; max-height: 80%;
        border: round $primary; background: $panel;
    }
    """
    BINDINGS = [
        Binding("escape", "cancel", "Close", id="contents-close"),
        Binding("t", "cancel", "Close", show=False),
    ]

    def __init__(self, contents: Contents):
        super().__init__()
        self.contents = contents

    def compose(self) -> ComposeResult:
        width = len(str(len(self.contents.titles)))
        options = [Option(f"{i + 1:>{width}}. {clean_text(title, 150)}", id=str(i))
                   for i, title in enumerate(self.contents.titles)]
        box = OptionList(*options, id="contents")
        box.border_title = "Chapters"
        box.border_subtitle = "enter goes there · escape closes"
        yield box

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        options.highlighted = self.contents.current
        options.focus()

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option_index)

    def action_cancel(self) -> None:
        self.dismiss(None)


class TourScreen(InspectScreen):
    # n and p replace the inspector's next search match and parent space here (a subclass's
    # binding of a key replaces its bases', DOMNode._merge_bindings); enter in the search bar
    # still steps through matches and the palette still shows the enclosing bytes.
    BINDINGS = [
        Binding("n", "next_chapter", "Next chapter", id="tour-next"),
        Binding("p", "previous_chapter", "Previous chapter", id="tour-previous"),
        Binding("t", "contents", "Contents", id="tour-contents"),
    ]

    position: reactive[int] = reactive(0, init=False)

    def __init__(self, chapters: list[Chapter], stops: list[Stop] | None, image_root: Node | None,
                 source_name: str = "tour"):
        if not chapters:
            raise ValueError("a tour needs at least one chapter")
        self.chapters = chapters
        self.stops = {s.index: s for s in stops or ()}
        self.image_root = image_root
        self._indexes: dict[int, TreeIndex] = {}
        self._stop_roots: dict[int, Node] = {}
        root = self.chapter_root(chapters[0])
        super().__init__(root, source_name, index=self.index_for(root))
        self.chapters_shown = 0  # chapter switches done (tests and benchmarks wait on it)

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="panes"):
            with VerticalScroll(id="chapter-box", can_focus=False):
                yield ChapterText(id="chapter")
            with Vertical(id="tour-right"):
                yield NodeTree(self.index, id="tree")
                yield Static(id="node-info")
                yield FieldTable(id="fields")
                yield HexView(id="hex")
        yield SearchBar(id="search")
        yield Footer()

    def on_mount(self) -> None:
        # InspectScreen.on_mount runs after this one (Textual dispatches a handler of every class
        # in the MRO) and focuses the tree: the chapter takes the focus once both have run.
        self.show_chapter(self.position)
        self.call_after_refresh(self.chapter_text.focus)
        self.query_one("#chapter-box").border_title = "Chapter"

    # -- widgets ------------------------------------------------------------------
    @property
    def chapter_text(self) -> ChapterText:
        return self.query_one(ChapterText)

    @property
    def chapter(self) -> Chapter:
        return self.chapters[self.position]

    # -- roots and their indexes ------------------------------------------------------
    def chapter_root(self, chapter: Chapter) -> Node:
        """The tree a chapter's value paths start from: its stop's tree, else the image's."""
        if chapter.stop is None:
            return self.image_root if self.image_root is not None else NO_IMAGE
        root = self._stop_roots.get(chapter.stop)
        if root is None:
            stop = self.stops.get(chapter.stop)
            root = stop_root(stop) if stop is not None else \
                Node("stop", f"stop {chapter.stop}: not among the stops of this tour")
            self._stop_roots[chapter.stop] = root
        return root

    def index_for(self, root: Node) -> TreeIndex:
        """The root's index, built the first time a chapter shows it (one walk of its tree)."""
        index = self._indexes.get(id(root))
        if index is None:
            index = self._indexes[id(root)] = TreeIndex(root)
        return index

    # -- chapters -----------------------------------------------------------------
    def watch_position(self, before: int, position: int) -> None:
        self.show_chapter(position)
        # The footer is rebuilt on a bindings refresh (a good part of a switch's time): only when
        # n or p becomes available or unavailable, that is at the ends.
        if self.edges(before) != self.edges(position):
            self.refresh_bindings()

    def edges(self, position: int) -> tuple[bool, bool]:
        """(p can run, n can run) at `position`."""
        return position > 0, position < len(self.chapters) - 1

    def show_chapter(self, position: int) -> None:
        chapter = self.chapters[position]
        root = self.chapter_root(chapter)
        tree = self.node_tree
        with self.app.batch_update():
            if root is not self.root:
                self.index = self.index_for(root)
                self.root = root
                # A search restarts in the new tree.
                self._query, self._matches, self._truncated, self._position = None, [], False, -1
                tree.show_index(self.index)
            elif tree.cursor_node is not tree.root:
                tree.move_cursor(tree.root)
                tree.scroll_home(animate=False)
            self.show_node(root)
            text = self.chapter_text
            text.set_reactive(ChapterText.heading, self.heading(position))
            text.chapter = chapter
            self.query_one("#chapter-box").scroll_home(animate=False)
        self.chapters_shown += 1

    def heading(self, position: int) -> str:
        chapter = self.chapters[position]
        where = "from the image" if chapter.stop is None else f"{chapter.phase}, stop {chapter.stop}"
        return f"chapter {position + 1} of {len(self.chapters)} · {where}"

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """None greys n at the last chapter and p at the first (Textual's dynamic actions)."""
        can_previous, can_next = self.edges(self.position)
        if action == "next_chapter":
            return True if can_next else None
        if action == "previous_chapter":
            return True if can_previous else None
        return True

    def action_next_chapter(self) -> None:
        if self.position < len(self.chapters) - 1:
            self.position += 1

    def action_previous_chapter(self) -> None:
        if self.position > 0:
            self.position -= 1

    def go_to_chapter(self, position: int) -> None:
        if 0 <= position < len(self.chapters):
            self.position = position

    def action_contents(self) -> None:
        def done(position: int | None) -> None:
            if position is not None:
                self.go_to_chapter(position)

        contents = Contents([c.title for c in self.chapters], self.position)
        self.app.push_screen(ContentsScreen(contents), done)

    # -- values -------------------------------------------------------------------
    @on(ChapterText.ValueChosen)
    def _value_chosen(self, event: ChapterText.ValueChosen) -> None:
        self.jump(event.value)

    def value_node(self, value: Value) -> Node | None:
        """The node a value came from: by its path from the chapter's root, else the node itself
        (a value computed into a node of its own, outside the tree, has no path)."""
        if value.path is not None:
            return node_at(self.root, value.path)
        return value.node

    def jump(self, value: Value) -> Node | None:
        """Show the value's node in the tree, fields and bytes, with its field selected. A node
        outside the tree shown (an MRTD computed from the image) fills the fields and bytes only."""
        node = self.value_node(value)
        if node is None:
            # A register of the stop, say: a value of the machine, not of a decoded structure.
            self.notify(f"{value.name} = {clean_text(value.text, 80)}: not taken from a node of the tree",
                        severity="information", markup=False)
            return None
        if node not in self.index:
            self.notify(f"{clean_text(node.title, 80)}: not in the tree shown (computed, or the stop's registers); "
                        "its fields are shown",
                        severity="information", markup=False)
        elif not self.node_tree.reveal(node):
            self.notify(f"{node.title}: not shown in the tree (its parent lists too many children)",
                        severity="warning", markup=False)
        self.show_node(node)
        if value.field is not None:
            self.select_field(node, value.field)
        return node

    def select_field(self, node: Node, name: str) -> bool:
        """Move the field table's cursor to `name` and mark its bytes, as selecting it does."""
        rows = node.fields[:MAX_ROWS]  # FieldTable lists the fields first, in order
        row = next((i for i, f in enumerate(rows) if f.name == name), None)
        if row is None:
            return False
        table = self.fields
        table.move_cursor(row=row, animate=False)
        f = rows[row]
        self._field_selected(FieldTable.FieldSelected(table, node, f.name, f.offset, f.size))
        return True

    # -- try this -----------------------------------------------------------------
    @on(ChapterText.CommandChosen)
    def _command_chosen(self, event: ChapterText.CommandChosen) -> None:
        self.run_command(event.command)

    def run_command(self, line: str) -> bool:
        """`g ADDRESS` goes there in the hex view, `/ TEXT` searches the tree, `open KIND` selects
        the first node of that kind. False (and a notification) when it could not run."""
        verb, _, arg = line.strip().partition(" ")
        arg = arg.strip()
        if verb == "g" and arg:
            return self.goto_anywhere(arg) is not None
        if verb == "/" and arg:
            bar = self.search_bar
            bar.open()
            # As if typed, without the Changed message that would clear the "n of m" just shown.
            with bar.input.prevent(Input.Changed):
                bar.input.value = arg
            return self.find(arg) is not None
        if verb == "open" and arg:
            node = next((n for n in self.index.order if n.kind == arg), None)
            if node is None:
                self.notify(f"no {arg} node in this tree", severity="warning", markup=False)
                return False
            self.node_tree.reveal(node)
            self.show_node(node)
            return True
        self.notify(f"{line!r}: not a command the tour runs (g ADDRESS, / TEXT, open KIND)", severity="error",
                    markup=False)
        return False

    def goto_anywhere(self, text: str) -> int | None:
        """NodeScreen.goto, after showing a node whose bytes hold the address when the bytes shown
        do not: the chapter's root when its space does, else the deepest node that holds it."""
        value = parse_number(text)
        if value is not None and not space_holds(self.hex_view.space, value):
            if space_holds(self.root.space, value):
                self.show_node(self.root)
            else:
                node = next((n for n in self.index.containing(value) if space_holds(n.space, value)), None)
                if node is not None:
                    self.node_tree.reveal(node)
                    self.show_node(node)
        return self.goto(text)


__all__ = ["TourScreen", "ContentsScreen", "Contents", "node_at"]
