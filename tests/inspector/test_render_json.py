"""The JSON writer writes each node's text itself (inspector.render._node_json) instead of calling
json.dumps on Node.to_json: the bytes must be exactly what json.dumps gives, for every node of a
real image and for every kind of value a field may hold."""
from __future__ import annotations

import enum
import io
import json
import math
import uuid

from decoders.model import Node, Severity, Space
from inspector.image import load_image
from inspector.render import _leaf_json, write_json
from tests.realdata import bookworm


def _reference(node: Node) -> str:
    shallow = Node(node.kind, node.title, node.space, node.offset, node.size, node.fields, [], node.problems)
    return json.dumps(shallow.to_json(), separators=(",", ":"))


class Colour(enum.Enum):
    RED = 1


class Label(str):
    pass


def test_every_node_of_debian_ovmf_is_written_as_json_dumps_writes_it():
    root = load_image(bookworm("OVMF.fd")).root
    count = 0
    for node in root.walk():
        assert _leaf_json(node) == _reference(node)
        count += 1
    assert count > 1000


def test_odd_field_values_are_written_as_json_dumps_writes_them():
    node = Node("k\u00e9ind", "title \"quoted\" \\ \u2603 \x01", Space("s\u00fcb", b"", base=0x1000), 3, 4)
    values = [True, False, None, 0, -5, 1 << 70, 1.5, math.inf, "t\u00e9xt", Label("sub"), b"\x00\xff",
              bytearray(b"ab"), memoryview(b"cd"), uuid.UUID(int=7), Colour.RED, Severity.ERROR, [1, "a", None],
              (0, 0), [1, 2, 3], [], (), {"VirtualAddress": 1, "Size": 2}, {"a": [1, {"b": b"x"}]}, {1: 2}, {"x": True}, object]
    for i, v in enumerate(values):
        node.add(f"F{i}", v, i if i % 3 else None, None if i % 2 else i, None if i % 4 else f"d\u00e9{i}")
    node.problem(None, "no offset \u2603")
    node.warn(5, "w")
    node.note(6, "n")
    assert _leaf_json(node) == _reference(node)


def test_a_tree_is_written_as_json_dumps_writes_the_whole():
    root = load_image(bookworm("OVMF.fd")).root
    out = io.StringIO()
    write_json(root, out)
    assert out.getvalue() == json.dumps(root.to_json(), separators=(",", ":")) + "\n"
