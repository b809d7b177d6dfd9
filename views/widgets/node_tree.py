"""NodeTree: the tree of decoded Nodes, filled lazily as branches are expanded.

Only the root's children are added at start and a branch's children when it is first expanded:
Textual's Tree costs about 0.1 ms per line to build (measured here: 1 k leaves 112 ms, 100 k 5.5 s)
and an OVMF image decodes to thousands of nodes. A marker after the title says the node itself
(●) or something below it (○) has problems, in the theme's error or warning colour.

At each stop of a live session the tree is refilled in place (`show_index`), not remounted; and
`NodeSelected` replaces a pending one from the same tree (`can_replace`), so a held arrow key
fills the field table once for where the cursor ends up, not once per row passed.
"""
from __future__ import annotations

from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual import on
from textual.message import Message
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from decoders.model import Node, Severity
from views.index import TreeIndex

# A node with more children than this shows the first ones and a "… more" line: a hostile input
# with 100 k entries under one node would otherwise cost seconds on a single expand.
MAX_CHILDREN_SHOWN = 2000
# Labels are one line; a title from hostile input is cut to this many characters.
MAX_LABEL_CHARS = 160

# The marker's component class per severity; its colour is the theme's (DEFAULT_CSS below).
MARKER_CLASS = {Severity.ERROR: "node-tree--error", Severity.WARNING: "node-tree--warning"}


def clean_text(text: str, limit: int) -> str:
    """One printable line: control characters become U+FFFD, long text is cut with an ellipsis."""
    out = "".join(ch if ch.isprintable() else "\ufffd" for ch in text[:limit + 1])
    return out if len(out) <= limit else out[:limit - 1] + "…"


class NodeTree(Tree[Node]):
    """Shows `index.root` and posts `NodeTree.NodeSelected` as the cursor moves."""

    COMPONENT_CLASSES = {"node-tree--error", "node-tree--warning"}
    DEFAULT_CSS = """
    NodeTree {
        scrollbar-size-vertical: 1;
    }
    NodeTree > .node-tree--error { color: $text-error; text-style: bold; }
    NodeTree > .node-tree--warning { color: $text-warning; text-style: bold; }
    """

    @dataclass
    class NodeSelected(Message):
        """The cursor moved to `node`."""

        tree: "NodeTree"
        node: Node

        @property
        def control(self) -> "NodeTree":
            return self.tree

        def can_replace(self, message: Message) -> bool:
            # Textual drops this message when the next one queued satisfies this
            # (MessagePump._process_messages_loop): only the cursor's last position counts.
            return isinstance(message, NodeTree.NodeSelected) and message.tree is self.tree

    def __init__(self, index: TreeIndex, *, id: str | None = None, classes: str | None = None):
        self.index = index
        self._shown: dict[int, TreeNode[Node]] = {}
        self._filled: set[int] = set()
        super().__init__(self.label_for(index.root), data=index.root, id=id, classes=classes)
        self._shown[id_of(index.root)] = self.root
        self.guide_depth = 3

    def on_mount(self) -> None:
        self._fill(self.root)
        self.root.expand()
        self.move_cursor(self.root)

    def show_index(self, index: TreeIndex) -> None:
        """Show another tree in this widget (a new stop's): the lines are rebuilt, the widget and
        its focus stay."""
        self.index = index
        self._shown.clear()
        self._filled.clear()
        self.reset(self.label_for(index.root), index.root)
        self._shown[id_of(index.root)] = self.root
        self._fill(self.root)
        self.root.expand()
        self.move_cursor(self.root)
        self.scroll_home(animate=False)

    # -- labels -------------------------------------------------------------------
    @staticmethod
    def label_for(node: Node) -> Text:
        return Text(clean_text(node.title or node.kind, MAX_LABEL_CHARS))

    def marker(self, node: Node) -> tuple[str, str] | None:
        """(" ●", class) when `node` has problems, (" ○", class) when only nodes below it do."""
        own = self.index.own_severity(node)
        if own in MARKER_CLASS:
            return " ●", MARKER_CLASS[own]
        below = self.index.subtree_severity(node)
        if below in MARKER_CLASS:
            return " ○", MARKER_CLASS[below]
        return None

    def render_label(self, node: TreeNode[Node], base_style: Style, style: Style) -> Text:
        # The marker is styled at render time, so it takes the current theme's colours.
        text = super().render_label(node, base_style, style)
        marker = None if node.data is None else self.marker(node.data)
        if marker is not None:
            text.append(marker[0], style=self.get_component_rich_style(marker[1], partial=True))
        return text

    # -- lazy filling ---------------------------------------------------------------
    def _fill(self, tree_node: TreeNode[Node]) -> None:
        node = tree_node.data
        if node is None or id_of(node) in self._filled:
            return
        self._filled.add(id_of(node))
        children = self.index.children(node)
        for child in children[:MAX_CHILDREN_SHOWN]:
            has_children = bool(self.index.children(child))
            item = tree_node.add(self.label_for(child), data=child, allow_expand=has_children)
            self._shown[id_of(child)] = item
        if len(children) > MAX_CHILDREN_SHOWN:
            more = len(children) - MAX_CHILDREN_SHOWN
            tree_node.add_leaf(Text(f"… {more} more not shown", style="italic dim"), data=None)

    @on(Tree.NodeExpanded)
    def _expanded(self, event: Tree.NodeExpanded[Node]) -> None:
        self._fill(event.node)

    @on(Tree.NodeHighlighted)
    def _highlighted(self, event: Tree.NodeHighlighted[Node]) -> None:
        if event.node.data is not None:
            self.post_message(self.NodeSelected(self, event.node.data))

    # -- driven by the screen ---------------------------------------------------------
    @property
    def current(self) -> Node | None:
        node = self.cursor_node
        return None if node is None else node.data

    def reveal(self, node: Node) -> bool:
        """Expand the branches down to `node` and move the cursor to it; False when it cannot be
        shown (not in this tree, or beyond MAX_CHILDREN_SHOWN of its parent)."""
        path = self.index.path(node)
        if not path:
            return False
        for ancestor in path[:-1]:
            item = self._shown.get(id_of(ancestor))
            if item is None:
                return False
            self._fill(item)
            if not item.is_expanded:
                item.expand()
        item = self._shown.get(id_of(node))
        if item is None:
            return False
        # Expanding changes line numbers; reading the lines rebuilds them before the move.
        self._tree_lines  # noqa: B018
        self.move_cursor(item)
        self.scroll_to_node(item, animate=False)
        return True


def id_of(node: Node) -> int:
    return id(node)
