"""A decoders.layout record read through a Memory into a node: the node's space becomes the bytes
read, its fields the record's members (the record itself adds them: decoders.layout)."""
from __future__ import annotations

from decoders.layout import Layout
from decoders.memory import Memory, Unreadable
from decoders.model import Node, Space


def read_fields(node: Node, memory: Memory, address: int, struct: Layout, label: str, **options) -> object:
    """Read the record `struct` at `address` through `memory` into `node`: the node's space becomes
    the bytes read (named `label@address`, based there) and its fields the record's members
    (`options` as for Layout.add_fields). Returns the parsed record, or None with a located problem
    when the memory is not readable."""
    try:
        raw = memory.read(address, struct.size)
    except Unreadable as e:
        node.problem(None, f"{label} at 0x{address:x} not readable: {e}")
        return None
    node.space, node.offset, node.size = Space(f"{label}@0x{address:x}", raw, address), 0, len(raw)
    parsed = struct.parse(raw, 0, label)
    struct.add_fields(node, parsed, 0, **options)
    return parsed
