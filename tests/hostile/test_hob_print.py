"""Printing large trees: the text and JSON writers stream (one line per node, iteratively), stop at
the output budget with well-formed output, and print 16,000 HOBs from a whole process within the
memory budget. (Times are measured in benchmarks/run.py, not asserted here.)

HOB layouts: PI spec vol. 3, 5.2 (EFI_HOB_GENERIC_HEADER {HobType u16, HobLength u16, Reserved
u32}); EFI_HOB_TYPE_UNUSED is 0xFFFE, END_OF_HOB_LIST 0xFFFF.
"""
from __future__ import annotations

import io
import json
import struct

from decoders.model import Node
from inspector.render import MAX_PRINT_DEPTH, print_tree, write_json
from tests.hostile.harness import run_fwinspect

UNUSED, END = 0xFFFE, 0xFFFF


def wide_tree(count: int) -> Node:
    root = Node("root", "root")
    for i in range(count):
        n = root.append(Node("leaf", f"leaf {i}", offset=i, size=1))
        n.add("Index", i)
    return root


def test_fifty_thousand_nodes_print_one_line_each_and_json_equals_to_json():
    root = wide_tree(50_000)
    text = io.StringIO()
    assert print_tree(root, out=text, color=False)
    lines = text.getvalue().splitlines()
    assert len(lines) == 50_001
    assert lines[1] == "├── leaf 0  [leaf]" and lines[-1] == "└── leaf 49999  [leaf]"
    out = io.StringIO()
    assert write_json(root, out)
    assert out.getvalue() == json.dumps(root.to_json(), separators=(",", ":")) + "\n"


def test_a_tree_deeper_than_the_print_depth_is_summarised_not_recursed():
    root = node = Node("n", "0")
    for i in range(1, 5000):
        node = node.append(Node("n", str(i)))
    text = io.StringIO()
    print_tree(root, out=text, color=False)
    lines = text.getvalue().splitlines()
    assert len(lines) == MAX_PRINT_DEPTH + 2
    hidden = 4999 - MAX_PRINT_DEPTH
    assert lines[-1].endswith(f"└── … {hidden:,} nodes deeper than {MAX_PRINT_DEPTH} levels not shown")
    out = io.StringIO()
    write_json(root, out)  # JSON keeps every level, written without recursion
    text = out.getvalue()
    assert text.count('"children":[') == 5000 and text.endswith('"children":[]}' + "]}" * 4999 + "\n")


def test_output_budget_cuts_between_nodes_and_closes_every_bracket(capsys):
    root = wide_tree(1000)
    out = io.StringIO()
    assert not write_json(root, out, limit=10_000)
    cut = json.loads(out.getvalue())
    full = root.to_json()["children"]
    assert 0 < len(cut["children"]) < 1000 and cut["children"] == full[:len(cut["children"])]
    assert len(out.getvalue()) <= 10_000 + 3  # the closing "]}" and newline go past the budget
    assert capsys.readouterr().err.startswith("fwinspect: output stopped after ")
    text = io.StringIO()
    assert not print_tree(root, out=text, limit=2_000, color=False)
    assert text.getvalue().splitlines()[-1].startswith("… output stopped after ")


def test_sixteen_thousand_hobs_print_whole_from_a_process(tmp_path):
    hobs = tmp_path / "hobs.bin"
    hobs.write_bytes(struct.pack("<HHI", UNUSED, 8, 0) * 16_000 + struct.pack("<HHI", END, 8, 0))
    out = run_fwinspect(["hob", hobs, "--no-td"], stdout_to=tmp_path / "out.txt")
    out.check()
    lines = (tmp_path / "out.txt").read_text().splitlines()
    assert sum(1 for line in lines if line.startswith("├── UNUSED  [hob @0x")) == 16_000
    js = run_fwinspect(["hob", hobs, "--no-td", "--json"], stdout_to=tmp_path / "out.json")
    js.check()
    tree = json.loads((tmp_path / "out.json").read_text())
    assert sum(1 for n in tree["children"] if n["kind"] == "hob") == 16_001
