"""Which nodes hold a byte: the path from a byte of a space (the image, a decompressed blob) to the
structures it belongs to, innermost first.

`NodeIndex(root)` is built once per decoded tree. Per space it keeps a containment forest: a node's
index parent is its nearest tree ancestor in the same space whose range holds the node's whole
range, and a node with none is a root of that space. Within one parent the children are sorted by
offset with a running maximum of their ends, so a lookup bisects to the last child starting at or
before the byte and walks back only while an earlier child can still reach it (siblings do not
overlap in a sane tree, so that walk is one step). A lookup is O(depth x log(children)).

Zero-size nodes hold no byte and are left out; nodes without a space too. So is the subtree of a
summary node (SUMMARY_KINDS): it points at bytes other nodes already hold (the image summary spans
the whole image, its boot phases point at the entry modules, review findings at their evidence),
and would only repeat them.
"""
from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator

from decoders.model import Node, Space

# Nodes that describe other nodes rather than bytes of their own: inspector.classify's summary (with
# inspector.bootphases' handoffs under it) and inspector.review's findings, whose evidence nodes
# point at the bytes of the structures they are about.
SUMMARY_KINDS = frozenset({"image-info", "review"})


class _Level:
    """The children of one index node (or the roots of one space), sorted by offset."""

    __slots__ = ("nodes", "starts", "max_end")

    def __init__(self, nodes: list[Node]):
        nodes.sort(key=lambda n: n.offset)
        self.nodes = nodes
        self.starts = [n.offset for n in nodes]
        self.max_end = []
        most = -1
        for n in nodes:
            most = max(most, n.offset + n.size)
            self.max_end.append(most)

    def holding(self, offset: int) -> Iterator[Node]:
        """The nodes of this level whose range holds `offset`, last-starting first."""
        i = bisect_right(self.starts, offset) - 1
        nodes, max_end = self.nodes, self.max_end
        while i >= 0 and max_end[i] > offset:
            n = nodes[i]
            if n.offset + n.size > offset:
                yield n
            i -= 1


class NodeIndex:
    """Byte -> nodes for every space of one decoded tree."""

    def __init__(self, root: Node, skip_kinds: frozenset[str] = SUMMARY_KINDS):
        self.root = root
        self._spaces: list[Space] = []          # in tree (pre-order) order of first appearance
        self._parent: dict[int, Node] = {}      # id(node) -> tree parent
        self._depth: dict[int, int] = {}        # id(node) -> tree depth
        self._roots: dict[int, _Level] = {}     # id(space) -> its index roots
        self._below: dict[int, _Level] = {}     # id(node) -> its index children
        seen: set[int] = set()
        roots: dict[int, list[Node]] = {}
        below: dict[int, list[Node]] = {}
        # Iterative pre-order walk (hostile trees may be deep), remembering each node's ancestors'
        # nearest same-space container.
        stack: list[tuple[Node, Node | None, int]] = [(root, None, 0)]
        while stack:
            node, parent, depth = stack.pop()
            if node.kind in skip_kinds and node is not root:
                continue
            self._parent[id(node)] = parent
            self._depth[id(node)] = depth
            space = node.space
            if space is not None:
                if id(space) not in seen:
                    seen.add(id(space))
                    self._spaces.append(space)
                if node.size > 0:
                    holder = self._container(node, parent)
                    if holder is None:
                        roots.setdefault(id(space), []).append(node)
                    else:
                        below.setdefault(id(holder), []).append(node)
            for child in reversed(node.children):
                stack.append((child, node, depth + 1))
        self._roots = {k: _Level(v) for k, v in roots.items()}
        self._below = {k: _Level(v) for k, v in below.items()}

    def _container(self, node: Node, parent: Node | None) -> Node | None:
        """The nearest tree ancestor in node's space whose range holds node's whole range."""
        start, end, space = node.offset, node.offset + node.size, node.space
        while parent is not None:
            if (parent.space is space and parent.size > 0 and parent.offset <= start
                    and end <= parent.offset + parent.size):
                return parent
            parent = self._parent.get(id(parent))
        return None

    # -- reading ---------------------------------------------------------------------------------
    def spaces(self) -> list[Space]:
        """Every distinct space of the tree, in tree order (the image first, then each blob)."""
        return list(self._spaces)

    def path(self, space: Space, offset: int) -> list[Node]:
        """The nodes of `space` whose [offset, offset+size) holds byte `offset`, innermost first
        (smallest first; of equal ranges, the deeper in the tree first)."""
        level = self._roots.get(id(space))
        if level is None:
            return []
        found: list[Node] = []
        todo = [level]
        while todo:
            lv = todo.pop()
            for n in lv.holding(offset):
                found.append(n)
                sub = self._below.get(id(n))
                if sub is not None:
                    todo.append(sub)
        depth = self._depth
        found.sort(key=lambda n: (n.size, -depth.get(id(n), 0)))
        return found

    def path_range(self, space: Space, start: int, end: int) -> list[Node]:
        """The nodes of `space` that hold all of [start, end), innermost first."""
        return [n for n in self.path(space, start) if n.offset + n.size >= end]

    def parent(self, node: Node) -> Node | None:
        """The node's parent in the tree (None for the root and nodes not in it)."""
        return self._parent.get(id(node))

    def ancestors(self, node: Node) -> list[Node]:
        """The node's tree ancestors, nearest first."""
        out = []
        p = self._parent.get(id(node))
        while p is not None:
            out.append(p)
            p = self._parent.get(id(p))
        return out

    def chain(self, space: Space, offset: int, end: int | None = None) -> list[Node]:
        """Like path_range, continued out of a decompressed blob: after the nodes in `space`, the
        section the blob came out of (`space.parent`) and that section's tree ancestors, innermost
        first, so a hit in a decompressed volume names the file and volume it is packed in."""
        inner = self.path_range(space, offset, offset + 1 if end is None else end)
        outer = space.parent
        if outer is None or id(outer) not in self._parent:
            return inner
        have = {id(n) for n in inner}
        return inner + [n for n in [outer, *self.ancestors(outer)] if id(n) not in have]
