"""An index over one decoded Node tree: parents, depths, worst problem per subtree, and search.

The tree view needs a node's ancestors (to expand down to a search hit) and whether anything
below a node has problems (its marker) without walking the subtree on every expand; search needs
a node's searchable text. All of it comes from one iterative pre-order walk (trees decoded from
hostile input may be deep, so nothing here recurses). The searchable text is built on the first
search only, so opening the app costs one cheap walk.
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from decoders.model import Node, Severity

# A decoder's tree is already bounded by the decoders' own caps; this bounds what one search
# returns so that "n of m" and the jump list stay small even for a query like "0".
MAX_SEARCH_RESULTS = 10_000

# Rank of a severity for the tree markers: the worst problem in a subtree wins.
RANK = {None: 0, Severity.INFO: 1, Severity.WARNING: 2, Severity.ERROR: 3}
SEVERITY_OF_RANK = {v: k for k, v in RANK.items()}

_HEX = re.compile(r"^\s*0x([0-9a-f]+)\s*$", re.IGNORECASE)


def parse_number(text: str) -> int | None:
    """`0x1ff7c0` or bare hex digits `1ff7c0` as an int; None when it is not hex."""
    t = text.strip().lower().replace("_", "")
    if t.startswith("0x"):
        t = t[2:]
    if not t or any(c not in "0123456789abcdef" for c in t):
        return None
    return int(t, 16)


@dataclass(frozen=True)
class SearchResult:
    matches: list[Node]
    truncated: bool


class TreeIndex:
    """Parents, depths and subtree severities of every node under `root`, by node identity."""

    def __init__(self, root: Node) -> None:
        self.root = root
        self.order: list[Node] = []
        self._parent: dict[int, Node | None] = {id(root): None}
        self._depth: dict[int, int] = {id(root): 0}
        self._own: dict[int, int] = {}
        self._subtree: dict[int, int] = {}
        self._children: dict[int, list[Node]] = {}
        self._haystack: list[str] | None = None
        self._build()

    def _build(self) -> None:
        stack = [self.root]
        while stack:
            node = stack.pop()
            self.order.append(node)
            d = self._depth[id(node)] + 1
            fresh = []
            for child in node.children:
                # A child listed twice (a decoder bug or a cycle) is indexed once, so the
                # walk ends and the tree view cannot loop.
                if id(child) in self._depth:
                    continue
                self._parent[id(child)] = node
                self._depth[id(child)] = d
                fresh.append(child)
            self._children[id(node)] = fresh
            stack.extend(reversed(fresh))
            self._own[id(node)] = max((RANK[p.severity] for p in node.problems), default=0)
        # Reverse pre-order visits children before parents: fold each subtree's worst rank up.
        for node in reversed(self.order):
            rank = max(self._own[id(node)], self._subtree.get(id(node), 0))
            self._subtree[id(node)] = rank
            parent = self._parent[id(node)]
            if parent is not None and rank > self._subtree.get(id(parent), 0):
                self._subtree[id(parent)] = rank

    def __len__(self) -> int:
        return len(self.order)

    def __contains__(self, node: Node) -> bool:
        return id(node) in self._depth

    def parent(self, node: Node) -> Node | None:
        return self._parent.get(id(node))

    def children(self, node: Node) -> list[Node]:
        """`node`'s children as indexed (each node once, whatever the decoder's lists hold)."""
        return self._children.get(id(node), [])

    def depth(self, node: Node) -> int:
        return self._depth.get(id(node), 0)

    def path(self, node: Node) -> list[Node]:
        """Root first, `node` last; empty when `node` is not in this tree."""
        if id(node) not in self._depth:
            return []
        out = [node]
        while (p := self._parent[id(out[-1])]) is not None:
            out.append(p)
        return out[::-1]

    def own_severity(self, node: Node) -> Severity | None:
        return SEVERITY_OF_RANK[self._own.get(id(node), 0)]

    def subtree_severity(self, node: Node) -> Severity | None:
        """The worst problem of `node` or anything below it."""
        return SEVERITY_OF_RANK[self._subtree.get(id(node), 0)]

    # -- search -------------------------------------------------------------------
    def _texts(self) -> list[str]:
        if self._haystack is None:
            hay = []
            for node in self.order:
                parts = [node.title, node.kind]
                for f in node.fields:
                    parts.append(f.text)
                    # `display` may show only a name (a GUID's, an enum's): keep the raw GUID or
                    # number findable too. Not bytes: str() of a big blob would be huge.
                    if f.display is not None and isinstance(f.value, uuid.UUID):
                        parts.append(str(f.value))
                    elif f.display is not None and isinstance(f.value, int) and not isinstance(f.value, bool):
                        parts.append(f"0x{f.value:x}")
                # Lower-case once: GUIDs are found whichever case the user types.
                hay.append("\n".join(parts).lower())
            self._haystack = hay
        return self._haystack

    def containing(self, value: int) -> list[Node]:
        """Nodes whose byte range holds `value` as an offset in their space or as an address,
        deepest first (the most specific structure first); ties in tree order."""
        hits = []
        for i, node in enumerate(self.order):
            if node.size <= 0:
                continue
            inside = node.offset <= value < node.offset + node.size
            addr = node.address
            if not inside and addr is not None:
                inside = addr <= value < addr + node.size
            if inside:
                # Nodes in the root's own space (the image) before those in decompressed blobs,
                # whose offsets start again at 0 and would otherwise crowd out the image.
                other_space = node.space is not self.root.space
                hits.append((other_space, -self._depth[id(node)], i, node))
        hits.sort(key=lambda h: h[:3])
        return [h[3] for h in hits]

    def search(self, query: str) -> SearchResult:
        """Nodes matching `query`: for a hex number, those containing it as offset or address
        (deepest first), else those whose title, kind or any field's text contains it."""
        q = query.strip()
        if not q:
            return SearchResult([], False)
        matches: list[Node] = []
        # Only an explicit 0x prefix makes a query a number: "beef" or "dec" are words too.
        number = parse_number(q) if _HEX.match(q) else None
        if number is not None:
            matches = self.containing(number)
        if not matches:
            needle = q.lower()
            matches = [n for n, text in zip(self.order, self._texts()) if needle in text]
        truncated = len(matches) > MAX_SEARCH_RESULTS
        return SearchResult(matches[:MAX_SEARCH_RESULTS], truncated)
