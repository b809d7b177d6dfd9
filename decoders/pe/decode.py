"""STUB, to be replaced: PE32/PE32+ and TE decoding into Nodes."""
from __future__ import annotations

from decoders.model import Node, Space


def decode_pe(space: Space, offset: int, size: int, load_address: int | None = None) -> Node:
    """Decode the PE32/PE32+ image at space[offset:offset+size]. `load_address` is where an
    execute-in-place image runs (its bytes' absolute address), when known."""
    return Node("pe", "PE32 image", space, offset, size)


def decode_te(space: Space, offset: int, size: int, load_address: int | None = None) -> Node:
    return Node("te", "TE image", space, offset, size)
