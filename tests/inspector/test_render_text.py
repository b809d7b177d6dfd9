"""The text renderer never hands input bytes' control characters to the terminal: an event string,
a UI name or an ACPI OEM ID holding ESC sequences, BEL, C1 controls or bidirectional overrides
is printed with U+FFFD in their place (as the app's tree shows them), in titles, fields, problems
and the one-line problem list."""
from __future__ import annotations

import io

from decoders.model import Node, Space
from inspector.render import print_problems, print_tree

HOSTILE = "a\x1b]0;pwned\x07b\x1b[2Jc\x9b31md\u202eevil\u2066e\u2028f\x7fg\x00h"
SAFE = "a\ufffd]0;pwned\ufffdb\ufffd[2Jc\ufffd31md\ufffdevil\ufffde\ufffdf\ufffdg\ufffdh"


def _tree() -> Node:
    space = Space("img\x1b[1m", b"\0" * 16)
    root = Node("image", HOSTILE, space, 0, 16)
    child = root.append(Node("ffs", "child " + HOSTILE, space, 4, 8))
    child.add("UiName", HOSTILE, 4, 8, HOSTILE)
    child.warn(4, "bad " + HOSTILE)
    return root


def _unsafe(text: str) -> list[str]:
    return [c for c in text if (ord(c) < 0x20 and c not in "\n\t") or 0x7F <= ord(c) < 0xA0
            or c in "\u2028\u2029" or 0x202A <= ord(c) <= 0x202E or 0x2066 <= ord(c) <= 0x2069]


def test_titles_fields_and_problems_print_no_control_characters():
    out = io.StringIO()
    print_tree(_tree(), fields=True, out=out, color=False)
    text = out.getvalue()
    assert _unsafe(text) == []
    lines = text.splitlines()
    assert lines[0] == f"{SAFE}  [image @0x0+0x10]"
    assert lines[1] == f"└── child {SAFE}  [ffs @0x4+0x8]"
    assert lines[2] == f"    warning: 0x4: bad {SAFE}"
    assert lines[3] == f"      UiName = {SAFE}"


def test_colour_codes_are_ours_only():
    out = io.StringIO()
    print_tree(_tree(), fields=True, out=out, color=True)
    escapes = out.getvalue().count("\x1b[")
    # bold and dim around the root's title and place, dim around the child's place (a leaf's title
    # is plain), yellow the warning, green the field name: each one opening and one reset.
    assert escapes == 2 * 5
    assert "pwned\x07" not in out.getvalue() and "\x9b" not in out.getvalue()


def test_problem_list_is_one_safe_line_per_problem():
    root = _tree()
    root.children[0].problem(5, "two\nlines " + HOSTILE)
    out = io.StringIO()
    print_problems(root, out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and _unsafe(out.getvalue()) == []
    assert lines[1] == f"error img\ufffd[1m 0x5 ffs 'child {SAFE}': two lines {SAFE}"
