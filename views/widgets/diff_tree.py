"""DiffTree: the tree of an image diff (inspector/diff.py), each node marked by its `Change`.

A diff node carries a `Change` field: added, removed, changed or unchanged. The tree shows a
marker before the title (+ added, - removed, ~ changed, = unchanged) in the theme's success,
error and warning colours, the short names of what changed (`Changes`: code, data, …) after it,
and unchanged nodes dimmed. Unchanged nodes are hidden until `DiffIndex.show_unchanged` is set;
hiding filters the children lists at lookup time, so toggling costs one refill of the lines, not
a new walk of the tree.
"""
from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.widgets.tree import TreeNode

from decoders.model import Node
from views.index import TreeIndex
from views.widgets.node_tree import MAX_LABEL_CHARS, NodeTree, clean_text

ADDED, REMOVED, CHANGED, UNCHANGED = "added", "removed", "changed", "unchanged"
MARKERS = {ADDED: "+", REMOVED: "-", CHANGED: "~", UNCHANGED: "="}
# What `n` stops at: a whole module, variable or metadata entry, whatever changed inside it, and
# the measurements once, not each MRTD page (inspector/diff.py, inspector/diff_measure.py kinds).
UNIT_KINDS = frozenset({"diff-file", "diff-variable", "diff-metadata", "diff-measurements"})
# Details of a unit, or no change of their own: `n` passes them.
DETAIL_KINDS = frozenset({"diff-section", "diff-signature", "diff-summary"})
# A node's "what changed" list is cut to this many characters in its label.
MAX_CHANGES_CHARS = 40


def change_of(node: Node) -> str | None:
    """The node's `Change` (added/removed/changed/unchanged), or None for a node without one."""
    value = node.get("Change")
    if value is None:
        return None
    value = getattr(value, "value", value)  # an Enum of the four names reads as its value
    return str(value).lower()


def changes_of(node: Node) -> list[str]:
    """The short names of what changed (`Changes`: code, data, debug-only, …)."""
    value = node.get("Changes")
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(getattr(v, "value", v)) for v in value]


def is_change(node: Node) -> bool:
    return change_of(node) in (ADDED, REMOVED, CHANGED)


class DiffIndex(TreeIndex):
    """A TreeIndex whose `children()` leave out unchanged nodes unless `show_unchanged` is set.
    Search (`order`) still covers every node."""

    def __init__(self, root: Node, show_unchanged: bool = False) -> None:
        super().__init__(root)
        self.show_unchanged = show_unchanged

    def hidden(self, node: Node) -> bool:
        return not self.show_unchanged and change_of(node) == UNCHANGED and node is not self.root

    def children(self, node: Node) -> list[Node]:
        kids = super().children(node)
        if self.show_unchanged:
            return kids
        return [c for c in kids if change_of(c) != UNCHANGED]

    def changes(self) -> list[Node]:
        """The changes `n`/`N` step through, in tree order: each file, variable or metadata entry
        that differs (its sections are details, seen by expanding it); any other node that differs
        while none of its children does (a volume whose size alone changed); an added or removed
        node once, not its contents. The summary is no change of its own."""
        out = []
        for node in self.order:
            change = change_of(node)
            if change not in (ADDED, REMOVED, CHANGED) or node.kind in DETAIL_KINDS:
                continue
            if any(change_of(n) in (ADDED, REMOVED) or n.kind in UNIT_KINDS for n in self.path(node)[:-1]):
                continue
            if node.kind not in UNIT_KINDS and any(is_change(c) for c in TreeIndex.children(self, node)):
                continue
            out.append(node)
        return out


class DiffTree(NodeTree):
    """A NodeTree over a DiffIndex: change markers and colours, unchanged nodes dimmed."""

    COMPONENT_CLASSES = NodeTree.COMPONENT_CLASSES | {
        "diff-tree--added", "diff-tree--removed", "diff-tree--changed", "diff-tree--unchanged",
        "diff-tree--what",
    }
    DEFAULT_CSS = """
    DiffTree > .diff-tree--added { color: $text-success; text-style: bold; }
    DiffTree > .diff-tree--removed { color: $text-error; text-style: bold; }
    DiffTree > .diff-tree--changed { color: $text-warning; text-style: bold; }
    DiffTree > .diff-tree--unchanged { color: $text-muted; }
    DiffTree > .diff-tree--what { color: $text-muted; text-style: italic; }
    """

    index: DiffIndex

    @staticmethod
    def label_for(node: Node) -> Text:
        # inspector/diff.py starts some titles with the change's mark; the tree draws its own.
        title = node.title or node.kind
        change = change_of(node)
        if change in MARKERS and title.startswith(MARKERS[change] + " "):
            title = title[2:]
        return Text(clean_text(title, MAX_LABEL_CHARS))

    def render_label(self, node: TreeNode[Node], base_style: Style, style: Style) -> Text:
        text = super().render_label(node, base_style, style)
        data = node.data
        change = None if data is None else change_of(data)
        if change not in MARKERS:
            return text
        get = self.get_component_rich_style
        colour = get(f"diff-tree--{change}", partial=True)
        if change == UNCHANGED:
            text.stylize(colour)
        what = changes_of(data)
        if what and ", ".join(what) not in (data.title or ""):
            text.append("  " + ", ".join(what)[:MAX_CHANGES_CHARS], style=get("diff-tree--what", partial=True))
        return Text.assemble((MARKERS[change] + " ", colour), text)

    def set_show_unchanged(self, show: bool) -> None:
        """Show or hide the unchanged nodes; the cursor stays on its node when that is still shown,
        else on its nearest shown ancestor."""
        if self.index.show_unchanged == show:
            return
        current = self.current
        self.index.show_unchanged = show
        self.show_index(self.index)
        if current is not None:
            path = self.index.path(current)
            while path and any(self.index.hidden(n) for n in path):
                path.pop()
            if path and path[-1] is not self.index.root:
                self.reveal(path[-1])

    def reveal(self, node: Node) -> bool:
        # A search hit or a jump to an unchanged node shows the unchanged nodes first.
        if any(self.index.hidden(n) for n in self.index.path(node)):
            self.set_show_unchanged(True)
        return super().reveal(node)


__all__ = ["DiffIndex", "DiffTree", "change_of", "changes_of", "is_change", "MARKERS"]
