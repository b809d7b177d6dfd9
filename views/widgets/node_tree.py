"""NodeTree: the tree of decoded Nodes, filled lazily as branches are expanded.

Only the root's children are added at start and a branch's children when it is first expanded:
Textual's Tree costs about 0.1 ms per line to build (FACTS D.3.3: 1 k leaves 112 ms, 100 k 5.5 s)
and an OVMF image decodes to thousands of nodes. A marker after the title says the node itself
(●) or something below it (○) has problems, red for errors and yellow for warnings.
"""
from __future__ import annotations

from dataclasses import dataclass

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

MARKER_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "bold yellow"}


def clean_text(text: str, limit: int) -> str:
    """One printable line: control characters become U+FFFD, long text is cut with an ellipsis."""
    out = "".join(ch if ch.isprintable() else "\ufffd" for ch in text[:limit + 1])
    return out if len(out) <= limit else out[:limit - 1] + "…"


class NodeTree(Tree[Node]):
    """Shows `index.root` and posts `NodeTree.NodeSelected` as the cursor moves."""

    DEFAULT_CSS = """
    NodeTree {
        scrollbar-size-vertical: 1;
    }
    """

    @dataclass
    class NodeSelected(Message):
        """The cursor moved to `node`."""

        tree: "NodeTree"
        node: Node

        @property
        def control(self) -> "NodeTree":
            return self.tree

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

    # -- labels -------------------------------------------------------------------
    def label_for(self, node: Node) -> Text:
        label = Text(clean_text(node.title or node.kind, MAX_LABEL_CHARS))
        own = self.index.own_severity(node)
        below = self.index.subtree_severity(node)
        if own in MARKER_STYLE:
            label.append(" ●", style=MARKER_STYLE[own])
        elif below in MARKER_STYLE:
            label.append(" ○", style=MARKER_STYLE[below])
        return label

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
