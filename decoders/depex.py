"""STUB, to be replaced: DEPEX opcode streams as readable expressions."""
from __future__ import annotations

from decoders.model import Node, Space


def decode_depex(space: Space, offset: int, size: int, phase: str) -> Node:
    """`phase` is 'pei', 'dxe' or 'mm' (section types 0x1B, 0x13, 0x1C)."""
    return Node("depex", f"{phase.upper()} dependency expression", space, offset, size)
