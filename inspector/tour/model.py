"""Chapters of a walkthrough: prose whose every value comes from a decoded node.

A chapter is written with a `Writer`: literal sentences with `{name}` holes, each filled by a
`Value` taken from a node of this image or this stop (a field, a count of children, a register),
never typed into the text. Each value keeps where it came from (the node's kind, its address, and
the path of child indexes from the chapter's root), so the app can jump the tree there and tests
can check the text against the tree.

Where the machine does not do what the usual story says (a phase skipped, a mode change that never
happens), the chapter says so with `Writer.unexpected`, and the story stops short of the usual
claim instead of telling it.
"""
from __future__ import annotations

import string
from dataclasses import dataclass, field

_field = field
from typing import Any, Iterable

from decoders.model import Node, json_value


@dataclass
class Value:
    """One value in a chapter's text and the node it came from."""

    name: str
    value: Any
    text: str                            # as it reads in the chapter
    kind: str | None = None              # the source node's kind
    address: int | None = None           # the source node's address (its space base + offset), if mapped
    path: tuple[int, ...] | None = None  # child indexes from the chapter's root to the source node
    field: str | None = None             # the field of that node, when the value is one
    node: Node | None = _field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "value": json_value(self.value), "text": self.text, "kind": self.kind,
                "address": self.address, "path": list(self.path) if self.path is not None else None,
                "field": self.field}


@dataclass
class Chapter:
    chapter: str                         # stable name: "flash-image", "reset", "to-long-mode", "sec", ...
    phase: str                           # the boot phase it is told at, or "offline"
    title: str
    text: str = ""
    values: list[Value] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)   # where this boot is not the usual story
    try_this: list[str] = field(default_factory=list)     # app commands: "g 0xFFFFFFF0", "open hob-list"
    command: str | None = None           # the fwinspect command that shows the same values
    stop: int | None = None              # the index of the stop it was told at (live and replay)
    # Where each value stands in `text`: (start, end, index into values), in text order.
    spans: list[tuple[int, int, int]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"chapter": self.chapter, "phase": self.phase, "title": self.title, "text": self.text,
                "values": [v.to_json() for v in self.values], "unexpected": self.unexpected,
                "try_this": self.try_this, "command": self.command, "stop": self.stop}


def node_path(root: Node, target: Node) -> tuple[int, ...] | None:
    """Child indexes from `root` down to `target`, or None when it is not below root (bounded by the
    tree, which the decoders' budget already bounds)."""
    stack: list[tuple[Node, tuple[int, ...]]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if node is target:
            return path
        for i, child in enumerate(node.children):
            stack.append((child, path + (i,)))
    return None


def node_address(node: Node) -> int | None:
    if node.space is None or node.offset is None:
        return None
    return node.space.address_of(node.offset)


def show(value: Any) -> str:
    """How a raw value reads in prose: integers of address size in hex, small ones in decimal."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"0x{value:x}" if value >= 0x10000 or value < 0 else str(value)
    return str(value)


class Writer:
    """Builds one chapter. `root` is the tree the values' paths start from (the stop's tree, or the
    image's)."""

    def __init__(self, chapter: str, phase: str, title: str, root: Node | None = None, stop: int | None = None):
        self.out = Chapter(chapter, phase, title, stop=stop)
        self.root = root
        self._sentences: list[str] = []

    def field(self, name: str, node: Node, field_name: str, text: str | None = None) -> Value:
        """A field of `node`: its value, shown as the field shows it unless `text` says otherwise."""
        f = node.field(field_name)
        value = f.value if f is not None else None
        return self._value(name, value, text if text is not None else (f.text if f is not None else "?"),
                           node, field_name)

    def count(self, name: str, node: Node, kind: str | None = None) -> Value:
        """How many children `node` has (of `kind`, when given)."""
        n = sum(1 for c in node.children if kind is None or c.kind == kind)
        return self._value(name, n, str(n), node, None)

    def value(self, name: str, value: Any, node: Node | None = None, text: str | None = None) -> Value:
        """A value computed from `node` (a register of the stop, a sum over children...)."""
        return self._value(name, value, text if text is not None else show(value), node, None)

    def _value(self, name: str, value: Any, text: str, node: Node | None, field_name: str | None) -> Value:
        v = Value(name, value, text, field=field_name, node=node)
        if node is not None:
            v.kind, v.address = node.kind, node_address(node)
            v.path = node_path(self.root, node) if self.root is not None else None
        return v

    def say(self, template: str, *values: Value) -> None:
        """One sentence: `template` with a `{name}` hole for each of `values` (and no other holes)."""
        by_name = {v.name: v for v in values}
        start = sum(len(t) + 1 for t in self._sentences)    # the sentences are joined with " "
        pieces: list[str] = []
        at = start
        for literal, name, spec, conv in string.Formatter().parse(template):
            pieces.append(literal)
            at += len(literal)
            if name is None:
                continue
            if spec or conv:
                raise ValueError(f"{{{name}}}: a value's text is the value's own, with no format spec")
            v = by_name[name]
            if v not in self.out.values:
                self.out.values.append(v)
            self.out.spans.append((at, at + len(v.text), self.out.values.index(v)))
            pieces.append(v.text)
            at += len(v.text)
        self._sentences.append("".join(pieces))
        self.out.values.extend(v for v in values if v not in self.out.values)

    def unexpected(self, text: str) -> None:
        """This boot is not the usual story here: said in the text and listed."""
        self.out.unexpected.append(text)
        self._sentences.append(f"Not as usual: {text}")

    def try_this(self, *commands: str) -> None:
        self.out.try_this.extend(commands)

    def done(self, command: str | None = None) -> Chapter:
        self.out.text = " ".join(self._sentences)
        self.out.command = command
        return self.out


def chapters_json(chapters: Iterable[Chapter]) -> list[dict[str, Any]]:
    return [c.to_json() for c in chapters]
