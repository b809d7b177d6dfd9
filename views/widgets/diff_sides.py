"""Where a diff node's bytes are on each side: A's (the old image) and B's (the new one).

inspector/diff.py points each diff node at B's bytes (`space`, `offset`, `size`), with the A
side in fields (`OffsetA`, `SizeA`); a removed node points at A's bytes and has no B side, an
added one has no A side. No Textual here: the screen and the tests both use it.
"""
from __future__ import annotations

from dataclasses import dataclass

from decoders.model import Node, Space
from views.widgets.diff_tree import ADDED, REMOVED, change_of


@dataclass(frozen=True)
class Side:
    """One side's bytes of a diff node: `offset`/`size` in `space`."""

    space: Space | None
    offset: int
    size: int

    @property
    def end(self) -> int:
        return self.offset + self.size

    @property
    def data(self):
        return None if self.space is None else self.space.data


class Sides:
    """Finds both sides of diff nodes whose trees decoded `space_a` (A's image) and `space_b`
    (B's). A node in a space of B other than the image (a decompressed blob) has its A side in
    A's space of the same name, when A has one: `spaces_a` names A's spaces."""

    def __init__(self, space_a: Space | None, space_b: Space | None, spaces_a: dict[str, Space] | None = None):
        self.space_a = space_a
        self.space_b = space_b
        self.spaces_a = dict(spaces_a or {})
        if space_a is not None:
            self.spaces_a.setdefault(space_a.name, space_a)

    def a_space_for(self, b_space: Space | None) -> Space | None:
        if b_space is None:
            return None
        if b_space is self.space_b:
            return self.space_a
        return self.spaces_a.get(b_space.name)

    def a(self, node: Node) -> Side | None:
        change = change_of(node)
        if change == ADDED:
            return None
        if change == REMOVED:
            return Side(node.space, node.offset, node.size)
        offset = node.get("OffsetA")
        if offset is None:
            return None
        size = node.get("SizeA", node.size)
        return Side(self.a_space_for(node.space), int(offset), int(size))

    def b(self, node: Node) -> Side | None:
        if change_of(node) == REMOVED:
            return None
        return Side(node.space, node.offset, node.size)


__all__ = ["Side", "Sides"]
