"""Parsed construct Structs and decoders.layout records as located Node fields: the one place that
walks a record's members.

Every decoder that parses a fixed-size header turns it into fields the same way: one field per
named member, at its absolute offset in the node's space, with its size and display text. Nested
Structs give dotted names (`Certificate.dwLength`), or their own names when flattened (a HOB's
body after its generic header). construct is imported only when a construct Struct comes in: the
Layout records of the fast paths never load it.
"""
from __future__ import annotations

import sys
import uuid
import weakref
from collections.abc import Callable

from decoders import guids
from decoders.errors import parse_at, static_size
from decoders.layout import Layout
from decoders.memory import Memory, Unreadable
from decoders.model import Node, Space

Display = str | Callable[[object], str]
Convert = Callable[[object, object], tuple[object, str | None]]   # (construct member or None, value)

# (name, offset in the struct, size, the member's construct without its name): per struct, once;
# weakly keyed by the struct itself, like errors.static_size.
_LAYOUTS: "weakref.WeakKeyDictionary[construct.Construct, tuple]" = weakref.WeakKeyDictionary()


def layout(struct: construct.Construct) -> tuple[tuple[str | None, int, int, construct.Construct], ...]:
    found = _LAYOUTS.get(struct)
    if found is None:
        import construct

        out, pos = [], 0
        for sc in struct.subcons:
            size = static_size(sc)
            out.append((sc.name, pos, size, sc.subcon if isinstance(sc, construct.Renamed) else sc))
            pos += size
        found = _LAYOUTS[struct] = tuple(out)
    return found


def spec_value(member: construct.Construct, value: object) -> tuple[object, str | None]:
    """(value, display) of a parsed member as every decoder shows it: an EFI_GUID with its name,
    an Enum member as its int with its label (an unknown one in hex)."""
    if isinstance(value, uuid.UUID):
        return value, guids.describe(value)
    construct = sys.modules.get("construct")      # a construct value exists only once it is loaded
    if construct is None:
        return value, None
    if isinstance(value, construct.EnumIntegerString):
        return int(value), str(value)
    if isinstance(member, construct.Enum) and isinstance(value, int):
        return value, f"0x{value:x} (unknown)"
    return value, None


def add_fields(node: Node, struct: construct.Construct, parsed: object, offset: int, *, prefix: str = "",
               flatten: bool = False, skip: tuple[str, ...] = (), only: tuple[str, ...] | None = None,
               whole: tuple[str, ...] = (), displays: dict[str, Display] | None = None,
               convert: Convert = spec_value) -> int:
    """Add the members of `parsed` (`struct` parsed at absolute `offset`) to `node`; returns the
    offset just past the struct. Unnamed members (padding) and `skip`ped ones are left out; with
    `only`, just those names. Nested structs named in `whole` stay one field (a dict, e.g. an
    EFI_TIME). `convert(member, value)` turns a value into (value, display), by default
    `spec_value`; a `displays` entry (text, or a function of the value) wins."""
    if isinstance(struct, Layout):
        return struct.add_fields(node, parsed, offset, prefix=prefix, skip=skip, only=only, displays=displays)
    import construct

    end = offset
    for name, rel, size, inner in layout(struct):
        end = offset + rel + size
        if name is None or name in skip:
            continue
        value = parsed[name]
        full = prefix + name
        if isinstance(inner, construct.Struct):
            if full not in whole:
                add_fields(node, inner, value, offset + rel, prefix="" if flatten else f"{full}.", flatten=flatten,
                           skip=skip, only=only, whole=whole, displays=displays, convert=convert)
                continue
            value = {k: v for k, v in value.items() if not k.startswith("_")}
        if only is not None and full not in only:
            continue
        value, text = convert(inner, value)
        shown = displays.get(full) if displays else None
        if shown is not None:
            text = shown(value) if callable(shown) else shown
        if isinstance(value, list):  # construct ListContainers of Containers: plain lists of dicts
            value = [dict(v) if isinstance(v, dict) else v for v in value]
        node.add(full, value, offset + rel, size, text)
    return end


def read_fields(node: Node, memory: Memory, address: int, struct: construct.Construct, label: str,
                **options) -> object:
    """Read a fixed-size `struct` at `address` through `memory` into `node`: the node's space becomes
    the bytes read (named `label@address`, based there) and its fields the struct's members
    (`options` as for add_fields). Returns the parsed struct, or None with a located problem when
    the memory is not readable."""
    size = static_size(struct)
    try:
        raw = memory.read(address, size)
    except Unreadable as e:
        node.problem(None, f"{label} at 0x{address:x} not readable: {e}")
        return None
    node.space, node.offset, node.size = Space(f"{label}@0x{address:x}", raw, address), 0, len(raw)
    parsed = parse_at(struct, raw, 0, label)
    add_fields(node, struct, parsed, 0, **options)
    return parsed
