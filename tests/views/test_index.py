"""TreeIndex (views/index.py): parents, subtree problems and search, on the hand-built OVMF tree."""
from __future__ import annotations

import pytest

from decoders.model import Node, Severity, Space
from tests.realdata import bookworm
from tests.views.handtree import hand_tree
from views.index import MAX_SEARCH_RESULTS, TreeIndex, parse_number


@pytest.fixture(scope="module")
def tree() -> Node:
    return hand_tree(bookworm("OVMF.fd").read_bytes())


def test_parse_number_reads_hex_only():
    assert parse_number("0x1FF7C0") == 0x1FF7C0
    assert parse_number("ffe20000") == 0xFFE20000
    assert parse_number("0x") is None and parse_number("zz") is None and parse_number("") is None


def test_path_and_depth_follow_the_tree(tree):
    index = TreeIndex(tree)
    secfv = tree.children[2]
    last = secfv.children[-1]
    assert index.path(last) == [tree, secfv, last]
    assert index.depth(last) == 2 and index.parent(secfv) is tree
    assert index.path(Node("x", "not in tree")) == []


def test_address_search_is_deepest_first(tree):
    index = TreeIndex(tree)
    # 0xFFFFF7C0 is offset 0x1FF7C0 of the 2 MiB image (its last byte at 4 GiB - 1):
    # SECFV's last file (UEFIExtract: 1BA0062E… at 0x1FF648), then SECFV, then the image.
    hits = index.search("0xfffff7c0").matches
    assert [n.kind for n in hits] == ["ffs", "fv", "image"]
    assert hits[0].offset == 0x1FF648 and hits[1].offset == 0x1CC000


def test_guid_search_ignores_case(tree):
    index = TreeIndex(tree)
    lower = index.search("763bed0d-de9f-48f5-81f1-3e90e1b1a015").matches
    assert lower == index.search("763BED0D-DE9F-48F5-81F1-3E90E1B1A015").matches
    assert [n.offset for n in lower] == [0x1CC000]


def test_worst_problem_folds_up_to_the_root():
    space = Space("s", b"\0" * 64)
    root = Node("r", "root", space, 0, 64)
    a = root.append(Node("a", "a", space, 0, 8))
    b = a.append(Node("b", "b", space, 0, 4))
    b.warn(0, "w")
    a.note(0, "n")
    index = TreeIndex(root)
    assert index.own_severity(a) == Severity.INFO
    assert index.subtree_severity(a) == Severity.WARNING
    assert index.subtree_severity(root) == Severity.WARNING and index.own_severity(root) is None


def test_cycles_and_repeats_are_indexed_once():
    root = Node("r", "root")
    child = root.append(Node("c", "c"))
    root.children.append(child)   # listed twice
    child.children.append(root)   # and a cycle back to the root
    index = TreeIndex(root)
    assert len(index) == 2 and index.children(root) == [child] and index.children(child) == []


def test_search_results_are_capped():
    root = Node("r", "root")
    root.children = [Node("k", f"item {i}") for i in range(MAX_SEARCH_RESULTS + 5)]
    result = TreeIndex(root).search("item")
    assert result.truncated and len(result.matches) == MAX_SEARCH_RESULTS
