"""Where a diff node's bytes are on each side: A's (the old image) and B's (the new one).

inspector/diff.py points each diff node at B's bytes (`space`, `offset`, `size`) and carries the
A side in fields `OffsetA`, `SpaceA` (the name of A's space) and `SizeA`; a removed node points
at A's bytes and has no B side, an added one has no A side; the root (`diff`) covers both whole
images. The decoded node behind each side (an FFS file, a section, a volume) is found by where
its bytes are, so its own fields can be compared too. No Textual here: the screen and the tests
both use it.
"""
from __future__ import annotations

from dataclasses import dataclass

from decoders.model import Field, Node, Space
from views.widgets.diff_tree import ADDED, REMOVED, change_of

Place = tuple[int, int, int]  # (id of the space, offset, size)


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


def location_a(node: Node) -> Field | None:
    """The `OffsetA` field that locates the node in A: the last one holding a number (a metadata
    entry may also compare a field of its own called `Offset`, as `OffsetA`/`OffsetB` text)."""
    found = None
    for f in node.fields:
        if f.name == "OffsetA" and isinstance(f.value, int) and not isinstance(f.value, bool):
            found = f
    return found


def _places(root: Node | None) -> tuple[dict[str, Space], dict[Place, Node]]:
    """A decoded tree's spaces by name (the image's own first) and its nodes by where their bytes
    are (the shallowest node at a place wins: the file before its only section of the same size)."""
    spaces: dict[str, Space] = {}
    places: dict[Place, Node] = {}
    if root is None:
        return spaces, places
    for node in root.walk():
        space = node.space
        if space is None:
            continue
        spaces.setdefault(space.name, space)
        places.setdefault((id(space), node.offset, node.size), node)
    return spaces, places


class Sides:
    """Both sides of the diff nodes of two decoded images, `root_a` (A) and `root_b` (B): the
    roots inspector.image.load_image gives. Building it walks both trees (do it off the UI
    thread)."""

    def __init__(self, root_a: Node | None, root_b: Node | None):
        self.space_a = None if root_a is None else root_a.space
        self.space_b = None if root_b is None else root_b.space
        self.spaces_a, self._places_a = _places(root_a)
        _, self._places_b = _places(root_b)

    def a_space_for(self, node: Node) -> Space | None:
        name = node.get("SpaceA")
        if name is not None:
            return self.spaces_a.get(str(name))
        # No SpaceA (a metadata entry): A's space of the same standing as B's (the image).
        if node.space is self.space_b:
            return self.space_a
        return None if node.space is None else self.spaces_a.get(node.space.name)

    def a(self, node: Node) -> Side | None:
        if node.space is None:
            return None
        change = change_of(node)
        if change == ADDED:
            return None
        if change == REMOVED:
            return Side(node.space, node.offset, node.size)
        if node.kind == "diff":
            size = node.get("SizeA")
            return None if self.space_a is None else Side(self.space_a, 0, size if isinstance(size, int) else 0)
        located = location_a(node)
        if located is None:
            return None
        size = node.get("SizeA")
        return Side(self.a_space_for(node), located.value, size if isinstance(size, int) else node.size)

    def b(self, node: Node) -> Side | None:
        if node.space is None or change_of(node) == REMOVED:
            return None
        return Side(node.space, node.offset, node.size)

    def decoded(self, node: Node) -> tuple[Node | None, Node | None]:
        """The decoded nodes (A's, B's) whose bytes the diff node points at; None where not found.
        The diff root is no decoded node's match (its sides are the whole images)."""
        if node.kind == "diff":
            return None, None
        a, b = self.a(node), self.b(node)
        na = None if a is None or a.space is None else self._places_a.get((id(a.space), a.offset, a.size))
        nb = None if b is None or b.space is None else self._places_b.get((id(b.space), b.offset, b.size))
        return na, nb


__all__ = ["Side", "Sides", "location_a"]
