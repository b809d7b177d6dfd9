"""Printing Node trees without the app: rich trees for people, JSON for scripts."""
from __future__ import annotations

import json
import sys
from typing import IO

from decoders.model import Node, Severity

# A rich tree of a whole OVMF image has ~3,000 rows; deeper nesting than this is shown collapsed.
MAX_PRINT_DEPTH = 64
# Summaries whose fields are the point: printed even without --fields.
SUMMARY_KINDS = {"image-info", "mrtd", "replay-bank", "comparison", "memory-map"}


def has_problems(root: Node, include_info: bool = False) -> bool:
    for _, p in root.all_problems():
        if include_info or p.severity is not Severity.INFO:
            return True
    return False


def write_json(root: Node, out: IO[str] | None = None) -> None:
    out = out or sys.stdout
    # json.dumps, not json.dump: only dumps uses the C encoder (dump streams through the Python one,
    # five times slower on a 3,000-node tree).
    out.write(json.dumps(root.to_json(), separators=(",", ":")))
    out.write("\n")


def _label(node: Node, fields: bool):
    from rich.text import Text

    t = Text()
    t.append(node.title, style="bold" if node.children else "")
    if node.space is None:
        where = f"  [{node.kind}"  # a computed node (a merged range, a replay): no bytes of its own
    else:
        where = f"  [{node.kind} @0x{node.offset:x}+0x{node.size:x}"
    if node.address is not None and node.address != node.offset:
        where += f" addr 0x{node.address:x}"
    if node.space is not None and node.space.parent is not None:
        where += f" in {node.space.name}"
    t.append(where + "]", style="dim")
    for p in node.problems:
        style = {"error": "red", "warning": "yellow", "info": "cyan"}[p.severity.value]
        t.append(f"\n{p}", style=style)
    if fields or node.kind in SUMMARY_KINDS:
        for f in node.fields:
            t.append(f"\n  {f.name} = ", style="green")
            t.append(f.text)
    return t


def print_tree(root: Node, *, fields: bool = False, console=None) -> None:
    from rich.console import Console
    from rich.tree import Tree

    console = console or Console()
    tree = Tree(_label(root, fields))
    stack = [(root, tree, 0)]
    while stack:
        node, branch, depth = stack.pop()
        if depth >= MAX_PRINT_DEPTH:
            branch.add(f"… {len(node.children)} more levels not shown")
            continue
        for child in node.children:
            stack.append((child, branch.add(_label(child, fields)), depth + 1))
    console.print(tree)


def print_problems(root: Node, console=None) -> None:
    from rich.console import Console

    console = console or Console(stderr=True)
    for node, p in root.all_problems():
        if p.severity is Severity.INFO:
            continue
        space = node.space.name if node.space else "-"
        console.print(f"[{'red' if p.severity is Severity.ERROR else 'yellow'}]{p.severity.value}[/] "
                      f"{space} 0x{p.offset if p.offset is not None else node.offset:x} {node.kind} "
                      f"'{node.title}': {p.message}", highlight=False)
